import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { startServer, TEST_BACKEND, uniqueName, type TestServer } from "./helpers";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ loginMaxFailures: 3, loginMaxFailuresPerAddress: 8 });
});
afterAll(() => s.stop());

describe("register", () => {
  test("creates a user, returns a token and the public profile, stores only an Argon2id hash", async () => {
    const res = await s.api("POST", "/api/auth/register", { body: { username: "Carol.W_1", password: "password123", display_name: "Carol W" } });
    expect(res.status).toBe(201);
    expect(res.body.token).toBeString();
    expect(Date.parse(res.body.expires_at)).toBeGreaterThan(Date.now() + 6 * 86400_000);
    expect(res.body.user).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      username: "carol.w_1",
      display_name: "Carol W",
      profile_image_url: null,
      last_active_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      created_at: expect.any(String),
    });
    expect(JSON.stringify(res.body)).not.toContain("argon2");
    const [row] = await s.rows<{ password_hash: string }>("SELECT password_hash FROM users WHERE username = 'carol.w_1'");
    expect(row!.password_hash).toStartWith("$argon2id$");
  });

  test("display name defaults to the username", async () => {
    const { user } = await s.register("dora_default");
    expect(user.display_name).toBe("dora_default");
  });

  test("a taken username, in any case, is 409", async () => {
    await s.register("taken_name");
    const res = await s.api("POST", "/api/auth/register", { body: { username: "TAKEN_name", password: "password123" } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("conflict");
  });

  test("two concurrent registrations of one name: exactly one wins", async () => {
    const name = uniqueName("race");
    const results = await Promise.all([1, 2, 3].map(() => s.api("POST", "/api/auth/register", { body: { username: name, password: "password123" } })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
  });

  test.each([
    [{ username: "ab", password: "password123" }, "username"],
    [{ username: "has space", password: "password123" }, "username"],
    [{ username: "x".repeat(33), password: "password123" }, "username"],
    [{ username: "okname", password: "short" }, "password"],
    [{ username: "okname", password: "p".repeat(129) }, "password"],
    // Characters, not UTF-16 units: 4 emoji are 8 units (enough for a units-only check) but 4 characters.
    [{ username: "okname", password: "😀".repeat(4) }, "password"],
    [{ username: "okname", password: "password123", display_name: "" }, "display_name"],
    [{ password: "password123" }, "username"],
    [{ username: 42, password: "password123" }, "username"],
  ])("invalid body %j → 422 naming %s", async (body, field) => {
    const res = await s.api("POST", "/api/auth/register", { body });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
    const [count] = await s.rows<{ n: number }>("SELECT count(*) AS n FROM users WHERE username = 'okname'");
    expect(count!.n).toBe(0);
  });

  test("a password of 128 characters outside the BMP (256 UTF-16 units) is accepted and logs in", async () => {
    const password = "😀".repeat(128);
    const name = uniqueName();
    expect((await s.api("POST", "/api/auth/register", { body: { username: name, password } })).status).toBe(201);
    expect((await s.api("POST", "/api/auth/login", { body: { username: name, password } })).status).toBe(200);
  });

  test("a blank display name is 422", async () => {
    const res = await s.api("POST", "/api/auth/register", { body: { username: uniqueName(), password: "password123", display_name: "   " } });
    expect(res.status).toBe(422);
  });

  test("malformed JSON is 400, a missing body 422, a body over 64 KiB 413", async () => {
    const bad = await s.api("POST", "/api/auth/register", { raw: '{"username":', headers: { "content-type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("bad_request");
    const empty = await s.api("POST", "/api/auth/register", { raw: "", headers: { "content-type": "application/json" } });
    expect(empty.status).toBe(422);
    const big = await s.api("POST", "/api/auth/register", { body: { username: "bigbody", password: "x".repeat(70_000) } });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe("payload_too_large");
  });

  test("a chunked body (no Content-Length) over 64 KiB in bytes is 413, even when it has fewer characters", async () => {
    // 30,000 three-byte characters: under 65,536 characters, about 90 KB.
    const payload = JSON.stringify({ username: "chunked", password: "€".repeat(30_000) });
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(payload));
        c.close();
      },
    });
    const res = await fetch(`${s.base}/api/auth/register`, { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(413);
  });

  test("registrations are limited per client address (REGISTRATIONS_PER_ADDRESS an hour): 429 with Retry-After, nothing created", async () => {
    const own = await startServer({ registrationsPerAddress: 2 });
    try {
      for (let i = 0; i < 2; i++) expect((await own.api("POST", "/api/auth/register", { body: { username: `reg_limit${i}`, password: "password123" } })).status).toBe(201);
      const res = await own.api("POST", "/api/auth/register", { body: { username: "reg_limit2", password: "password123" } });
      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe("rate_limited");
      // A token a minute-and-a-half away at 2 an hour: 30 minutes.
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(1700);
      const [count] = await own.rows<{ n: number }>("SELECT count(*) AS n FROM users WHERE username = 'reg_limit2'");
      expect(count!.n).toBe(0);
      // Logging in is a separate budget.
      expect((await own.api("POST", "/api/auth/login", { body: { username: "reg_limit0", password: "password123" } })).status).toBe(200);
    } finally {
      await own.stop();
    }
  });

  test("behind a trusted proxy (TRUSTED_PROXIES) the limit is per X-Forwarded-For client, read from the right; without it the header is ignored", async () => {
    const register = (t: TestServer, name: string, forwardedFor?: string) =>
      t.api("POST", "/api/auth/register", { body: { username: uniqueName(name), password: "password123" }, headers: forwardedFor ? { "x-forwarded-for": forwardedFor } : {} });
    const proxied = await startServer({ registrationsPerAddress: 1, trustedProxies: ["127.0.0.0/8", "10.9.0.0/16"] });
    const direct = await startServer({ registrationsPerAddress: 1 });
    try {
      expect((await register(proxied, "px", "203.0.113.1")).status).toBe(201);
      expect((await register(proxied, "px", "203.0.113.1")).status).toBe(429);
      // Another client behind the same proxy has a budget of its own.
      expect((await register(proxied, "px", "203.0.113.2")).status).toBe(201);
      // A client naming a fake address first is still the address its proxy saw (past a second trusted hop).
      expect((await register(proxied, "px", "198.51.100.7, 203.0.113.2, 10.9.0.1")).status).toBe(429);
      // A hop that is no address ends the chain at the proxy itself.
      expect((await register(proxied, "px", "203.0.113.3, garbage")).status).toBe(201);
      expect((await register(proxied, "px", "203.0.113.4, garbage")).status).toBe(429);
      // No trusted proxies: the header is the client's to forge, and ignored.
      expect((await register(direct, "dx", "203.0.113.5")).status).toBe(201);
      expect((await register(direct, "dx", "203.0.113.6")).status).toBe(429);
    } finally {
      await proxied.stop();
      await direct.stop();
    }
  });

  test("JSON without a content type is still read as JSON", async () => {
    const res = await s.api("POST", "/api/auth/register", { raw: JSON.stringify({ username: uniqueName(), password: "password123" }) });
    expect(res.status).toBe(201);
  });
});

describe("login", () => {
  test("right credentials give a working token; username is case-insensitive", async () => {
    const a = await s.register("login_ok");
    const res = await s.api("POST", "/api/auth/login", { body: { username: "LOGIN_OK", password: a.password } });
    expect(res.status).toBe(200);
    expect(res.body.user.id).toBe(a.user.id);
    const me = await s.api("GET", "/api/users/me", { token: res.body.token });
    expect(me.body.id).toBe(a.user.id);
  });

  test("only A–Z fold: the Kelvin sign (U+212A, which toLowerCase() makes 'k') does not stand for k", async () => {
    const a = await s.register("kelvin_ok");
    const res = await s.api("POST", "/api/auth/login", { body: { username: "\u212Aelvin_ok", password: a.password } });
    expect(res.status).toBe(401);
    expect((await s.api("POST", "/api/auth/login", { body: { username: "Kelvin_OK", password: a.password } })).status).toBe(200);
  });

  test("wrong password and unknown user get the same 401 message", async () => {
    await s.register("login_pw");
    const wrong = await s.api("POST", "/api/auth/login", { body: { username: "login_pw", password: "wrongwrong" } });
    const unknown = await s.api("POST", "/api/auth/login", { body: { username: "nobody_here", password: "wrongwrong" } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual(unknown.body);
  });

  test("failures are rate limited per username with 429 and Retry-After, even for the right password", async () => {
    const a = await s.register("login_limited");
    for (let i = 0; i < 3; i++) {
      const r = await s.api("POST", "/api/auth/login", { body: { username: "login_limited", password: "wrongwrong" } });
      expect(r.status).toBe(401);
    }
    const limited = await s.api("POST", "/api/auth/login", { body: { username: "login_limited", password: a.password } });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe("rate_limited");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  test("parallel guesses cannot slip past the limit", async () => {
    await s.register("login_parallel");
    const results = await Promise.all(Array.from({ length: 12 }, () => s.api("POST", "/api/auth/login", { body: { username: "login_parallel", password: "wrongwrong" } })));
    expect(results.filter((r) => r.status === 401).length).toBeLessThanOrEqual(3);
    expect(results.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(9);
  });

  test("failures are rate limited per client address across usernames", async () => {
    const own = await startServer({ loginMaxFailures: 100, loginMaxFailuresPerAddress: 4 });
    try {
      for (let i = 0; i < 4; i++) expect((await own.api("POST", "/api/auth/login", { body: { username: `who${i}`, password: "wrongwrong" } })).status).toBe(401);
      const res = await own.api("POST", "/api/auth/login", { body: { username: "who9", password: "wrongwrong" } });
      expect(res.status).toBe(429);
    } finally {
      await own.stop();
    }
  });
});

describe("refresh", () => {
  test("a valid token gets a new one with a full lifetime; a missing or bad token is 401 and gets nothing", async () => {
    const a = await s.register();
    const res = await s.api("POST", "/api/auth/refresh", { token: a.token });
    expect(res.status).toBe(200);
    expect(res.body.user.id).toBe(a.user.id);
    expect(Date.parse(res.body.expires_at)).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    expect((await s.api("GET", "/api/users/me", { token: res.body.token })).status).toBe(200);
    for (const token of [undefined, "not-a-token", a.token.slice(0, -2) + "xx"]) {
      const bad = await s.api("POST", "/api/auth/refresh", { token });
      expect(bad.status).toBe(401);
      expect(bad.body.error.code).toBe("unauthorized");
    }
  });

  test("register stays open without a token (the refresh route's guard is its own)", async () => {
    expect((await s.api("POST", "/api/auth/register", { body: { username: uniqueName(), password: "password123" } })).status).toBe(201);
  });
});

describe("the caller's row", () => {
  // SQLite answers it from memory while the users table is unchanged (users/service.ts
  // cachedUserRows): any change to a user row, however it is made, is seen by the next request.
  test("a change to the row, by any statement, is seen by the next request; a deleted user is 401 at once", async () => {
    const a = await s.register();
    expect((await s.api("GET", "/api/users/me", { token: a.token })).body.display_name).toBe(a.user.display_name);
    await s.rows("UPDATE users SET display_name = ? WHERE id = ?", "Renamed Elsewhere", a.user.id);
    expect((await s.api("GET", "/api/users/me", { token: a.token })).body.display_name).toBe("Renamed Elsewhere");
    // A send carries the sender's current name too.
    const group = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "names", member_ids: [] } });
    const sent = await s.api("POST", `/api/conversations/${group.body.id}/messages`, { token: a.token, body: { content: "hello" } });
    expect(sent.body.sender_name).toBe("Renamed Elsewhere");
    await s.rows("DELETE FROM users WHERE id = ?", a.user.id);
    const gone = await s.api("GET", "/api/users/me", { token: a.token });
    expect(gone.status).toBe(401);
    expect(gone.body.error.message).toBe("user no longer exists");
  });

  /** SQL run as an operator runs it: on a connection of its own (the sqlite3 shell); on PostgreSQL `rows` already is one. */
  async function asOperator(query: string, ...params: string[]) {
    if (TEST_BACKEND === "postgres") return void (await s.rows(query, ...params));
    const db = new Database(join(s.dataDir, "parley.db"));
    try {
      db.run("PRAGMA foreign_keys = ON");
      db.run("PRAGMA busy_timeout = 5000");
      db.query(query).run(...params);
    } finally {
      db.close();
    }
  }

  /** The first answer to GET /api/users/me that `ok` accepts, asked again for up to 2 s. */
  async function meUntil(token: string, ok: (res: { status: number; body: any }) => boolean) {
    const deadline = Date.now() + 2000;
    for (;;) {
      const res = await s.api("GET", "/api/users/me", { token });
      if (ok(res) || Date.now() > deadline) return res;
      await Bun.sleep(20);
    }
  }

  test("an operator's change made with another connection (the sqlite3 shell) is seen too: a rename, and a deleted user is 401, on every write as well", async () => {
    const a = await s.register();
    expect((await s.api("GET", "/api/users/me", { token: a.token })).status).toBe(200);
    await asOperator("UPDATE users SET display_name = ? WHERE id = ?", "Renamed By The Operator", a.user.id);
    expect((await meUntil(a.token, (r) => r.body.display_name === "Renamed By The Operator")).body.display_name).toBe("Renamed By The Operator");
    await asOperator("DELETE FROM users WHERE id = ?", a.user.id);
    const gone = await meUntil(a.token, (r) => r.status === 401);
    expect(gone.status).toBe(401);
    expect(gone.body.error.message).toBe("user no longer exists");
    // Writes too (they answered 500, a foreign key failing, while the row was remembered).
    expect((await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "x", member_ids: [] } })).status).toBe(401);
    expect((await s.api("POST", "/api/ws/ticket", { token: a.token })).status).toBe(401);
  });
});
