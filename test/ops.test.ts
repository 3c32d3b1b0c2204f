import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sqliteOnly, startServer, tempDir, TEST_BACKEND, waitFor, type TestServer } from "./helpers";
import { Counter, Histogram } from "../src/metrics";
import { createLogger } from "../src/log";
import { createApp } from "../src/app";
import { makeConfig } from "../src/config";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.stop());

describe("operations endpoints", () => {
  test("GET /health", async () => {
    const res = await s.api("GET", "/health");
    expect(res.status).toBe(200);
    // §1: `{"status":"ok"}`; cluster mode (§11) also names the node and what it reaches.
    if (s.app.ctx.config.databaseUrl) expect(res.body).toEqual({ status: "ok", node_id: s.app.ctx.instance, postgres: "ok", nats: "ok" });
    else expect(res.body).toEqual({ status: "ok" });
  });

  test("GET /metrics counts requests by route and status, with a latency histogram", async () => {
    await s.api("GET", "/api/users/me");
    await waitFor(() => s.logs.some((l) => l.route === "/api/users/me" && l.status === 401));
    const text = await (await fetch(`${s.base}/metrics`)).text();
    expect(text).toContain('parley_http_requests_total{method="GET",route="/api/users/me",status="401"} 1');
    expect(text).toMatch(/parley_http_request_duration_seconds_bucket\{route="\/health",le="\+Inf"\} \d+/);
  });

  test("the registry: a series and inc() with the same labels count together; buckets are cumulative", () => {
    const c = new Counter("c_total", "help");
    const series = c.series({ method: "GET", route: "/x" });
    series.inc();
    c.inc({ method: "GET", route: "/x" });
    c.seriesBy("type")("a").inc(2);
    expect(c.lines()).toEqual(['c_total{method="GET",route="/x"} 2', 'c_total{type="a"} 2']);
    const h = new Histogram("h_seconds", "help", [0.001, 0.01, 0.1]);
    for (const v of [0.0005, 0.001, 0.005, 0.05]) h.series({ route: "/x" }).observe(v);
    h.observe(7, { route: "/x" });
    expect(h.lines()).toEqual([
      'h_seconds_bucket{route="/x",le="0.001"} 2',
      'h_seconds_bucket{route="/x",le="0.01"} 3',
      'h_seconds_bucket{route="/x",le="0.1"} 4',
      'h_seconds_bucket{route="/x",le="+Inf"} 5',
      'h_seconds_sum{route="/x"} 7.0565',
      'h_seconds_count{route="/x"} 5',
    ]);
  });

  test("GET /docs serves the OpenAPI document with every route and its schemas", async () => {
    const doc = (await (await fetch(`${s.base}/docs/json`)).json()) as any;
    // /docs: a plain page of every operation (no script, no CDN: it reads offline); Scalar at /docs/scalar.
    const page = await fetch(`${s.base}/docs`);
    expect([page.status, page.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"]);
    const html = await page.text();
    expect(html).not.toContain("<script");
    expect(html).not.toMatch(/https?:\/\//);
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { operationId: string }>>))
      for (const [method, op] of Object.entries(ops)) expect({ path, method, shown: html.includes(`<section class="op" id="${op.operationId}">`) && html.includes(`<code>${path}</code>`) }).toEqual({ path, method, shown: true });
    for (const model of ["Message", "Conversation", "Attachment", "Error"]) expect(html).toContain(`<section id="${model}">`);
    expect(html).toContain('<a href="#Message">Message</a>');
    // A parameter's own description (the upgrade's), and every body type of an operation (an upload's multipart too).
    expect(html).toContain("a single-use ticket from POST /api/ws/ticket");
    expect(html).toContain("<code>multipart/form-data</code>");
    // An API developer's read (a usability pass): a parameter's values, a description's links
    // and code as such (they showed raw), the signed link's parts explained, one <main>.
    expect(html).toContain("<td><code>status</code></td><td>query</td><td><code>&quot;accepted&quot; | &quot;pending&quot; | &quot;rejected&quot;</code></td>");
    expect(html).not.toMatch(/\]\(\/docs/);
    expect(html).toContain("signed link: its signature");
    expect(html.match(/<main>/g)).toHaveLength(1);
    const scalar = await fetch(`${s.base}/docs/scalar`);
    expect(scalar.status).toBe(200);
    expect(await scalar.text()).toContain('"url":"/docs/json"');
    for (const [path, method] of [
      ["/api/auth/register", "post"], ["/api/auth/login", "post"], ["/api/users/me", "get"], ["/api/users/me", "patch"],
      ["/api/users/{id}", "get"], ["/api/users", "get"], ["/health", "get"],
    ]) {
      expect(doc.paths[path!]?.[method!]).toBeDefined();
    }
    expect(doc.paths["/api/auth/register"].post.requestBody).toBeDefined();
  });

  test("unknown routes are 404 with the error body", async () => {
    const res = await s.api("GET", "/api/nothing-here");
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
  });
});

describe("logs", () => {
  test("one line per request with method, route, status, ms, request id, user id; never tokens or passwords", async () => {
    const a = await s.register("logged_user", "secret-password-1");
    await s.api("POST", "/api/auth/login", { body: { username: "logged_user", password: "secret-password-1" } });
    await s.api("GET", `/api/users/me?token=${a.token}`, { token: a.token });
    const line = await waitFor(() => s.logs.find((l) => l.route === "/api/users/me" && l.status === 200));
    expect(line).toMatchObject({ method: "GET", status: 200, user_id: a.user.id, request_id: expect.any(String), ms: expect.any(Number) });
    // An upload authenticates before reading its body, outside the auth plugin: its line names the user too.
    const up = await fetch(`${s.base}/api/uploads?filename=a.txt`, { method: "POST", headers: { authorization: `Bearer ${a.token}`, "content-type": "text/plain" }, body: "hello" });
    expect(up.status).toBe(201);
    expect(await waitFor(() => s.logs.find((l) => l.route === "/api/uploads" && l.status === 201))).toMatchObject({ user_id: a.user.id });
    const all = JSON.stringify(s.logs);
    expect(all).not.toContain(a.token);
    expect(all).not.toContain("secret-password-1");
  });

  // Answered, refused, failed validation, unmatched, upgraded: each request is one line with
  // the status the client got (the refusals are logged by the error handler, the rest after
  // their handler), and its request id is the response's X-Request-Id.
  test("every outcome is logged once, with the status sent", async () => {
    const a = await s.register();
    const calls: [string, string, { token?: string; body?: unknown }, number][] = [
      ["GET", "/api/users/me", { token: a.token }, 200],
      ["GET", "/api/users/me", {}, 401],
      ["PATCH", "/api/users/me", { token: a.token, body: { display_name: 5 } }, 422],
      ["GET", "/api/no/such/route", {}, 404],
      ["POST", "/api/conversations", { token: a.token, body: { type: "group", title: "logged" } }, 201],
    ];
    const ids: string[] = [];
    for (const [method, path, opts, status] of calls) {
      const res = await s.api(method, path, opts);
      expect(res.status).toBe(status);
      ids.push(res.headers.get("x-request-id")!);
    }
    const upgrade = await fetch(`${s.base}/ws/user?token=${a.token}`, { headers: { upgrade: "websocket", connection: "upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" } }).catch(() => null);
    void upgrade;
    const lines = await waitFor(() => {
      const found = ids.map((id) => s.logs.filter((l) => l.msg === "request" && l.request_id === id));
      return found.every((f) => f.length > 0) ? found : undefined;
    });
    expect(lines.map((f) => f.length)).toEqual(calls.map(() => 1));
    expect(lines.map((f) => f[0]!.status)).toEqual(calls.map((c) => c[3]));
    expect(lines[0]![0]).toMatchObject({ user_id: a.user.id, route: "/api/users/me" });
    // The upgrade's line names the user and says 101.
    const upgraded = await waitFor(() => s.logs.find((l) => l.msg === "request" && l.route === "/ws/user" && l.user_id === a.user.id));
    expect(upgraded.status).toBe(101);
    // Each line as written is the one pino writes for its fields (the line is built without
    // pino, log.ts infoLines), byte for byte but the time; a client's own request id included.
    await s.api("GET", "/api/users/me", { token: a.token, headers: { "x-request-id": "client.id-7" } });
    ids.push("client.id-7");
    const written = await waitFor(() => {
      const found = s.lines.filter((l) => ids.some((id) => l.includes(`"request_id":"${id}"`)));
      return found.length === ids.length ? found : undefined;
    });
    const pinoLines: string[] = [];
    const pinoLog = createLogger("info", { write: (l: string) => void pinoLines.push(l.trimEnd()) });
    for (const l of written) {
      const { method, route, status, ms, request_id, user_id } = JSON.parse(l);
      pinoLog.child({ method, route }).info({ status, ms, request_id, user_id }, "request");
    }
    const untimed = (l: string) => l.replace(/"time":"[^"]+"/, '"time":"T"');
    expect(written.map(untimed)).toEqual(pinoLines.map(untimed));
  });

  test("an unexpected failure is a bare 500: no stack or SQL in the body, logged with the request id", async () => {
    const broken = await startServer();
    try {
      const a = await broken.register();
      await broken.rows("ALTER TABLE users RENAME TO users_gone");
      const res = await broken.api("GET", "/api/users?q=x", { token: a.token, headers: { "x-request-id": "req-500-test" } });
      // Auth itself reads users, so the failure surfaces there: still a clean 500.
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: { code: "internal", message: "internal error" } });
      expect(res.headers.get("x-request-id")).toBe("req-500-test");
      await waitFor(() => broken.logs.some((l) => l.msg === "unhandled error" && l.request_id === "req-500-test"));
      await broken.rows("ALTER TABLE users_gone RENAME TO users");
    } finally {
      await broken.stop();
    }
  });
});

/** The secret a single node generates into DATA_DIR; cluster mode requires JWT_SECRET instead. */
const oneNode = sqliteOnly("the generated jwt-secret file of a single node");

describe("persistence", () => {
  test("a restart keeps users, and tokens stay valid (on one node the generated secret is kept, mode 0600)", async () => {
    const dir = tempDir();
    const first = await startServer({}, dir);
    const a = await first.register("persistent");
    await first.stop(false);
    // Cluster mode has no generated secret: it requires JWT_SECRET (the same on every node).
    if (TEST_BACKEND === "sqlite") expect(statSync(join(dir, "jwt-secret")).mode & 0o777).toBe(0o600);

    const second = await startServer({}, dir);
    try {
      expect((await second.api("GET", "/api/users/me", { token: a.token })).body.username).toBe("persistent");
      expect((await second.api("POST", "/api/auth/login", { body: { username: "persistent", password: a.password } })).status).toBe(200);
    } finally {
      await second.stop();
    }
  });

  oneNode.test("a damaged jwt-secret file is an error, not silently replaced (that would log everyone out)", async () => {
    const dir = tempDir();
    await Bun.write(join(dir, "jwt-secret"), "short\n");
    await expect(startServer({}, dir)).rejects.toThrow("jwt-secret");
    expect(await Bun.file(join(dir, "jwt-secret")).text()).toBe("short\n");
  });

  test("a configured JWT_SECRET is used instead of a generated one", async () => {
    const dir = tempDir();
    const own = await startServer({ jwtSecret: "x".repeat(40) }, dir);
    try {
      await own.register();
      expect(existsSync(join(dir, "jwt-secret"))).toBe(false);
    } finally {
      await own.stop();
    }
  });

  sqliteOnly("parley backup copies parley.db (a cluster's backup is PostgreSQL's own)").test("parley backup writes a consistent copy while the server runs", async () => {
    const dir = tempDir();
    const live = await startServer({}, dir);
    try {
      for (let i = 0; i < 3; i++) await live.register(`backed_up_${i}`);
      const file = join(tempDir(), "backup.db");
      const proc = Bun.spawnSync([process.execPath, "src/index.ts", "backup", file, "--data-dir", dir], { env: { ...process.env } });
      expect(proc.exitCode).toBe(0);
      const copy = new Database(file, { readonly: true });
      const rows = copy.query("SELECT username FROM users ORDER BY username").all() as { username: string }[];
      expect(rows.map((r) => r.username)).toEqual(["backed_up_0", "backed_up_1", "backed_up_2"]);
      copy.close();
      // Refuses to overwrite.
      expect(Bun.spawnSync([process.execPath, "src/index.ts", "backup", file, "--data-dir", dir]).exitCode).toBe(1);
    } finally {
      await live.stop();
    }
  });
});

describe("one server per DATA_DIR", () => {
  sqliteOnly("cluster nodes may share a DATA_DIR (§11)").test("a second app on a DATA_DIR a running one holds is refused; once the first has stopped, it opens", async () => {
    const dataDir = tempDir();
    const first = await startServer({}, dataDir);
    expect(() => createApp(first.app.ctx.config)).toThrow(/is in use by another Parley server/);
    // The refused one left the lock alone: the first still serves, and a third waits its turn too.
    expect((await first.api("GET", "/health")).status).toBe(200);
    expect(() => createApp(first.app.ctx.config)).toThrow(/is in use by another Parley server/);
    await first.stop(false);
    const second = await startServer({}, dataDir);
    expect((await second.api("GET", "/health")).status).toBe(200);
    await second.stop();
  });
});

sqliteOnly("parley.db and search.db are SQLite files in DATA_DIR").describe("a data directory with files that are not what they should be", () => {
  test("a search.db that is no database is set aside and made again: the server starts, and finds what parley.db holds", async () => {
    const dataDir = tempDir();
    const before = await startServer({}, dataDir);
    const a = await before.register();
    const group = await before.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "g", member_ids: [] } });
    await before.api("POST", `/api/conversations/${group.body.id}/messages`, { token: a.token, body: { content: "findable after the index was lost" } });
    await before.stop(false);
    writeFileSync(join(dataDir, "search.db"), "this is not a database ".repeat(400));
    const after = await startServer({}, dataDir);
    try {
      expect(after.logs.some((l) => l.level === "warn" && String(l.msg).startsWith("search.db could not be read: set aside"))).toBe(true);
      expect(readdirSync(dataDir).some((f) => f.startsWith("search.db.unreadable-"))).toBe(true);
      const found = await after.api("GET", "/api/search/messages?q=after%20the%20index", { token: a.token });
      expect(found.body.items.map((i: { message: { content: string } }) => i.message.content)).toEqual(["findable after the index was lost"]);
    } finally {
      await after.stop();
    }
  });

  test("a parley.db that is no database, or another program's database, is refused naming the file, and left as it was", () => {
    const garbage = tempDir();
    writeFileSync(join(garbage, "parley.db"), "garbage ".repeat(1000));
    expect(() => createApp(makeConfig({ dataDir: garbage }))).toThrow(`cannot use ${join(garbage, "parley.db")}: file is not a database`);
    const foreign = tempDir();
    const other = new Database(join(foreign, "parley.db"));
    other.run("CREATE TABLE users (name TEXT)");
    other.close();
    const bytes = readFileSync(join(foreign, "parley.db"));
    expect(() => createApp(makeConfig({ dataDir: foreign }))).toThrow(`${join(foreign, "parley.db")} is not a Parley database (it holds another program's tables: users)`);
    expect(readFileSync(join(foreign, "parley.db")).equals(bytes)).toBe(true);
    expect(existsSync(join(foreign, "parley.db-wal"))).toBe(false);
  });
});
