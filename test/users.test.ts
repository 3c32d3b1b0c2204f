import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startServer, waitFor, type Account, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";

let s: TestServer;
let alice: Account;
beforeAll(async () => {
  s = await startServer();
  alice = await s.register("alice");
});
afterAll(() => s.stop());

describe("authentication on /api", () => {
  test("no token, garbage, tampered and expired tokens are 401", async () => {
    const { sign } = s.app.ctx.tokens.plugin.decorator.jwt;
    const expired = await sign({ sub: alice.user.id, exp: Math.floor(Date.now() / 1000) - 10 });
    const [head, payload, sig] = alice.token.split(".");
    const forged = Buffer.from(JSON.stringify({ sub: "someone-else", exp: 9999999999 })).toString("base64url");
    // Signed with the server's secret but without `exp` (found by an acceptance pass, 2026-12-02): it would never expire.
    const timeless = await sign({ sub: alice.user.id });
    expect(JSON.parse(Buffer.from(timeless.split(".")[1]!, "base64url").toString()).exp).toBeUndefined();
    for (const token of [undefined, "garbage", `${head}.${forged}.${sig}`, `${head}.${payload}.${sig}x`, expired, timeless]) {
      const res = await s.api("GET", "/api/users/me", { token });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("unauthorized");
    }
  });

  test("without a valid token, a bad body or query is still 401 (authentication comes before validation)", async () => {
    const cases: [string, string, unknown][] = [
      ["PATCH", "/api/users/me", { display_name: 5 }],
      ["POST", "/api/friendships", { friend_id: 5 }],
      ["GET", "/api/friendships?status=bogus", undefined],
      ["POST", "/api/conversations", { type: "channel" }],
      ["GET", "/api/conversations?limit=0", undefined],
    ];
    for (const token of [undefined, "garbage"])
      for (const [method, path, body] of cases) {
        const res = await s.api(method, path, { token, body });
        expect({ path, status: res.status }).toEqual({ path, status: 401 });
      }
  });

  test("a token that was accepted before still expires on time (JWT_TTL)", async () => {
    const short = await startServer({ jwtTtlSeconds: 2 });
    try {
      // `exp` is in whole seconds: a 1 s token made late in a second had expired before its
      // first use (a flake, once in CI). Made just after a second begins, it has ~2 s left.
      await Bun.sleep(1000 - (Date.now() % 1000) + 10);
      const a = await short.register();
      expect((await short.api("GET", "/api/users/me", { token: a.token })).status).toBe(200);
      await Bun.sleep(2500);
      expect((await short.api("GET", "/api/users/me", { token: a.token })).status).toBe(401);
    } finally {
      await short.stop();
    }
  });

  test("a token of a user that no longer exists is 401", async () => {
    const gone = await s.register("gone_user");
    await s.rows("DELETE FROM users WHERE id = ?", gone.user.id);
    expect((await s.api("GET", "/api/users/me", { token: gone.token })).status).toBe(401);
  });
});

describe("profile", () => {
  test("GET /me and GET /:id return the public view, never the hash", async () => {
    const me = await s.api("GET", "/api/users/me", { token: alice.token });
    expect(me.status).toBe(200);
    expect(me.body.username).toBe("alice");
    expect(Object.keys(me.body).sort()).toEqual(["created_at", "display_name", "id", "last_active_at", "profile_image_url", "username"]);
    const byId = await s.api("GET", `/api/users/${alice.user.id}`, { token: alice.token });
    expect(byId.body).toEqual(me.body);
    expect((await s.api("GET", "/api/users/nope", { token: alice.token })).status).toBe(404);
  });

  test("PATCH /me updates display name and image, and can clear the image", async () => {
    const res = await s.api("PATCH", "/api/users/me", { token: alice.token, body: { display_name: "  Alice A ", profile_image_url: "https://img.example/a.png" } });
    expect(res.status).toBe(200);
    expect(res.body.display_name).toBe("Alice A");
    expect(res.body.profile_image_url).toBe("https://img.example/a.png");
    const cleared = await s.api("PATCH", "/api/users/me", { token: alice.token, body: { profile_image_url: null } });
    expect(cleared.body.profile_image_url).toBeNull();
    expect(cleared.body.display_name).toBe("Alice A");
    // URL schemes are case-insensitive.
    expect((await s.api("PATCH", "/api/users/me", { token: alice.token, body: { profile_image_url: "HTTPS://IMG.EXAMPLE/A.png" } })).status).toBe(200);
    await s.api("PATCH", "/api/users/me", { token: alice.token, body: { profile_image_url: null } });
  });

  // Found by an acceptance pass (2026-12-02): the details said "Expected string to match '^[Hh][Tt]…'".
  test("a value that does not match its pattern is said in words (avatar URL, username)", async () => {
    const avatar = await s.api("PATCH", "/api/users/me", { token: alice.token, body: { profile_image_url: "ftp://img.example/a.png" } });
    expect([avatar.status, avatar.body.error.details]).toEqual([422, [{ field: "profile_image_url", message: "must be an http:// or https:// address without spaces or invisible characters" }]]);
    // An address turned around by a direction control, or hiding a zero-width space (both were stored).
    for (const url of ["https://exa\u202Emple.com/a.png", "https://img.example/a\u200B.png", "https://img.example/\u2066a.png"]) {
      const hidden = await s.api("PATCH", "/api/users/me", { token: alice.token, body: { profile_image_url: url } });
      expect([url, hidden.status]).toEqual([url, 422]);
    }
    const name = await s.api("POST", "/api/auth/register", { body: { username: "no spaces!", password: "password123" } });
    expect([name.status, name.body.error.details]).toEqual([422, [{ field: "username", message: "may hold only letters a–z, digits, _ and ." }]]);
  });

  test.each(['"x"', "42", "true", "[]", '[{"display_name":"zz"}]', "null"])("a body that is not a JSON object (%s) is 422 and changes nothing", async (raw) => {
    const before = await s.api("GET", "/api/users/me", { token: alice.token });
    const res = await s.api("PATCH", "/api/users/me", { token: alice.token, raw });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
    expect((await s.api("GET", "/api/users/me", { token: alice.token })).body).toEqual(before.body);
  });

  test.each([
    [{ display_name: "" }, "display_name"],
    [{ display_name: "x".repeat(65) }, "display_name"],
    [{ display_name: "a\u0000b" }, "display_name"],
    [{ display_name: "line\nbreak" }, "display_name"],
    [{ profile_image_url: "javascript:alert(1)" }, "profile_image_url"],
    [{ profile_image_url: 5 }, "profile_image_url"],
    // Control characters are no part of a URL (and each would cost 6 bytes in every frame naming the user).
    [{ profile_image_url: "https://img.example/a\u0001.png" }, "profile_image_url"],
    [{ profile_image_url: "https://img.example/a\u007f.png" }, "profile_image_url"],
    [{ profile_image_url: "https://img.example/a\u0085.png" }, "profile_image_url"],
  ])("invalid patch %j → 422 and nothing changes", async (body, field) => {
    const before = await s.api("GET", "/api/users/me", { token: alice.token });
    const res = await s.api("PATCH", "/api/users/me", { token: alice.token, body });
    expect(res.status).toBe(422);
    expect(res.body.error.details[0].field).toBe(field);
    expect((await s.api("GET", "/api/users/me", { token: alice.token })).body).toEqual(before.body);
  });

  // On PostgreSQL both may read the old name at once; the store compares again under a row lock.
  test("the same new name twice at once: one change, one user.update", async () => {
    const who = await Promise.all(Array.from({ length: 4 }, () => s.register()));
    const answers = await Promise.all(who.flatMap((u) => [0, 1].map(() => s.api("PATCH", "/api/users/me", { token: u.token, body: { display_name: `New ${u.user.username}` } }))));
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    for (const u of who) {
      const updates = await s.rows("SELECT seq FROM events WHERE type = 'user.update' AND topic = ?", `user:${u.user.id}`);
      expect(updates).toHaveLength(1);
    }
  });
});

test("last_active_at is stored when users come online (written in batches, several users at once)", async () => {
  const [a, b] = [await s.register(), await s.register()];
  const stored = async () => (await s.rows<{ at: number }>("SELECT last_active_at AS at FROM users WHERE id IN (?, ?) ORDER BY id", a.user.id, b.user.id)).map((r) => r.at);
  const before = await stored();
  await Bun.sleep(5);
  const sockets = await Promise.all([a, b].map((u) => TestSocket.connect(`${s.wsBase}/ws/user?token=${u.token}`)));
  const deadline = Date.now() + 5000;
  while ((await stored()).some((at, i) => at <= before[i]!) && Date.now() < deadline) await Bun.sleep(50);
  const after = await stored();
  expect(after[0]).toBeGreaterThan(before[0]!);
  expect(after[1]).toBeGreaterThan(before[1]!);
  for (const w of sockets) w.close();
}, 20_000);

test("last_active_at is presence: a stranger reads created_at there (GET /api/users/:id, user search, a pending request); the user, friends and partners read when they were last online", async () => {
  const [a, friend, partner, stranger, asker] = await Promise.all(Array.from({ length: 5 }, () => s.register()));
  const api = (who: Account, method: string, path: string, body?: unknown) => s.api(method, path, { token: who.token, body });
  const befriend = async (x: Account, y: Account) => {
    const f = await api(x, "POST", "/api/friendships", { friend_id: y.user.id });
    expect((await api(y, "PATCH", `/api/friendships/${f.body.id}/accept`)).status).toBe(200);
  };
  await befriend(a!, friend!);
  // partner shares a group with a (made by their common friend) and is not a's friend.
  await befriend(friend!, partner!);
  expect((await api(friend!, "POST", "/api/conversations", { type: "group", title: "partners", member_ids: [a!.user.id, partner!.user.id] })).status).toBe(201);
  const created: string = (await api(a!, "GET", "/api/users/me")).body.created_at;
  const stored = async () => (await s.rows<{ at: number }>("SELECT last_active_at AS at FROM users WHERE id = ?", a!.user.id))[0]!.at;
  const before = await stored();
  await Bun.sleep(5);
  const w = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a!.token}`);
  await waitFor(async () => (await stored()) > before, 5000);
  w.close();
  const online = new Date(await stored()).toISOString();
  expect(online).not.toBe(created);
  const asked = await api(asker!, "POST", "/api/friendships", { friend_id: a!.user.id });
  expect(asked.status).toBe(201);
  const lastActive = async (viewer: Account) => {
    const one = await api(viewer, "GET", `/api/users/${a!.user.id}`);
    const found = await api(viewer, "GET", `/api/users?q=${a!.user.username}`);
    return [one.body.last_active_at, found.body.items.find((u: any) => u.id === a!.user.id)?.last_active_at];
  };
  for (const viewer of [a!, friend!, partner!]) expect(await lastActive(viewer)).toEqual([online, online]);
  for (const viewer of [stranger!, asker!]) expect(await lastActive(viewer)).toEqual([created, created]);
  // A pending request is no friendship yet: its answer and the asker's list say created_at too.
  expect(asked.body.friend.last_active_at).toBe(created);
  const pending = (await api(asker!, "GET", "/api/friendships")).body.items.find((x: any) => x.id === asked.body.id);
  expect(pending.friend.last_active_at).toBe(created);
  // Once friends, they read it.
  expect((await api(a!, "PATCH", `/api/friendships/${asked.body.id}/accept`)).status).toBe(200);
  expect(await lastActive(asker!)).toEqual([online, online]);
}, 20_000);

describe("write limit", () => {
  test("REST writes other than message sends share a per-user budget (WRITES_PER_MINUTE): 429 with Retry-After", async () => {
    const own = await startServer({ writesPerMinute: 3 });
    try {
      const [a, b, c] = [await own.register(), await own.register(), await own.register()];
      expect((await own.api("POST", "/api/friendships", { token: a.token, body: { friend_id: b.user.id } })).status).toBe(201);
      const { status, body: g } = await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t" } });
      expect(status).toBe(201);
      expect((await own.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "x" } })).status).toBe(200);
      const limited = await own.api("POST", `/api/conversations/${g.id}/members`, { token: a.token, body: { user_ids: [c.user.id] } });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect((await own.api("GET", `/api/conversations/${g.id}`, { token: a.token })).body.member_count).toBe(1);
      // Reads are not limited, nor are other users.
      expect((await own.api("GET", "/api/users/me", { token: a.token })).status).toBe(200);
      expect((await own.api("POST", "/api/ws/ticket", { token: b.token })).status).toBe(200);
      // Message sends have their own budget.
      expect((await own.api("POST", `/api/conversations/${g.id}/messages`, { token: a.token, body: { content: "still fine" } })).status).toBe(201);
    } finally {
      await own.stop();
    }
  });
});

describe("search", () => {
  test("matches username or display name, case-insensitively, and pages with a cursor", async () => {
    for (let i = 0; i < 5; i++) await s.register(`searchme_${i}`);
    const named = await s.register("zed_other");
    await s.api("PATCH", "/api/users/me", { token: named.token, body: { display_name: "Also SEARCHME person" } });

    const first = await s.api("GET", "/api/users?q=SearchMe&limit=4", { token: alice.token });
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(4);
    expect(first.body.next_cursor).toBeString();
    const second = await s.api("GET", `/api/users?q=searchme&limit=4&cursor=${first.body.next_cursor}`, { token: alice.token });
    expect(second.body.items).toHaveLength(2);
    expect(second.body.next_cursor).toBeNull();
    const names = [...first.body.items, ...second.body.items].map((u: { username: string }) => u.username);
    expect(names).toEqual(["searchme_0", "searchme_1", "searchme_2", "searchme_3", "searchme_4", "zed_other"]);
  });

  // Until 2026-12-02 only ASCII case was folded ("émile" missed "Émile": found by an acceptance pass).
  test("any case and accents match, as in message search; a renamed user is found by the new name only; control characters in q are 422", async () => {
    const emile = await s.register();
    await s.api("PATCH", "/api/users/me", { token: emile.token, body: { display_name: "Émile Zoë" } });
    const found = async (q: string) => (await s.api("GET", `/api/users?q=${encodeURIComponent(q)}`, { token: alice.token })).body.items.map((u: { id: string }) => u.id);
    for (const q of ["Émile", "ÉMILE", "émile", "emile", "EMILE", "mile", "Zoë", "zOë", "ZOË", "zoe", " Émile zoë\n", "e\u0301mile"]) expect({ q, ids: await found(q) }).toEqual({ q, ids: [emile.user.id] });
    // Not across the two names, nor a name that is not there.
    expect(await found(`${emile.user.username}emile`)).toEqual([]);
    expect(await found("émilie")).toEqual([]);
    await s.api("PATCH", "/api/users/me", { token: emile.token, body: { display_name: "Ωμέγα Straße" } });
    for (const q of ["ωμεγα", "ΩΜΈΓΑ", "straße"]) expect({ q, ids: await found(q) }).toEqual({ q, ids: [emile.user.id] });
    expect(await found("émile")).toEqual([]);
    // A query that folds to nothing (tatweel alone) finds no one, not everyone.
    const tatweel = await s.api("GET", `/api/users?q=${encodeURIComponent("\u0640\u0640")}`, { token: alice.token });
    expect([tatweel.status, tatweel.body.items]).toEqual([200, []]);
    for (const q of ["\u0000", "a\u0000", "a\nb"]) {
      const res = await s.api("GET", `/api/users?q=${encodeURIComponent(q)}`, { token: alice.token });
      expect(res.status).toBe(422);
      expect(res.body.error.details[0].field).toBe("q");
    }
  });

  test("users without a name key (from before migration 0019, or renamed by an older build) are found by their names as written, and by any case and accents once the server has started again", async () => {
    const own = await startServer();
    const a = await own.register();
    await own.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "Zoë Olde" } });
    const found = async (t: TestServer, q: string) => (await t.api("GET", `/api/users?q=${encodeURIComponent(q)}`, { token: a.token })).body.items.map((u: { id: string }) => u.id);
    const key = async (t: TestServer) => (await t.rows<{ k: string | null }>("SELECT name_key AS k FROM users WHERE id = ?", a.user.id))[0]!.k;
    // A rename to a name that folds the same keeps a key (the trigger empties only a key left as it was).
    await own.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "ZOË OLDE" } });
    expect(await key(own)).not.toBeNull();
    await own.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "Zoë Olde" } });
    // A rename as an older build writes it: the name alone, the key of the old name left. The trigger empties it.
    await own.rows("UPDATE users SET display_name = 'Renamed Elsewhere' WHERE id = ?", a.user.id);
    expect(await key(own)).toBeNull();
    expect(await found(own, "zoe")).toEqual([]); // not by the old name
    expect(await found(own, "RENAMED elsewhere")).toEqual([a.user.id]); // by the new one, A–Z folded
    await own.rows("UPDATE users SET display_name = 'Zoë Olde', name_key = NULL");
    expect(await found(own, "zoe")).toEqual([]);
    expect(await found(own, "Zoë")).toEqual([a.user.id]);
    expect(await found(own, a.user.username.toUpperCase())).toEqual([a.user.id]);
    await own.stop(false);
    const again = await startServer({}, own.dataDir);
    try {
      expect(await found(again, "zoe")).toEqual([a.user.id]);
      expect(await found(again, a.user.username.toUpperCase())).toEqual([a.user.id]);
      expect((await again.rows<{ n: number }>("SELECT count(*) AS n FROM users WHERE name_key IS NULL"))[0]!.n).toBe(0);
    } finally {
      await again.stop();
    }
  });

  test("LIKE wildcards in q are matched literally", async () => {
    const res = await s.api("GET", "/api/users?q=%25", { token: alice.token });
    expect(res.body.items).toEqual([]);
    const under = await s.api("GET", "/api/users?q=e_", { token: alice.token });
    expect(under.body.items.every((u: { username: string; display_name: string }) => (u.username + u.display_name.toLowerCase()).includes("e_"))).toBe(true);
  });

  test("bad paging parameters: limit not a number 400, out of range 422, foreign cursor 400", async () => {
    expect((await s.api("GET", "/api/users?limit=abc", { token: alice.token })).status).toBe(400);
    expect((await s.api("GET", "/api/users?limit=0", { token: alice.token })).status).toBe(422);
    expect((await s.api("GET", "/api/users?limit=101", { token: alice.token })).status).toBe(422);
    expect((await s.api("GET", "/api/users?cursor=!!!", { token: alice.token })).status).toBe(400);
  });
});
