/**
 * Test harness: a real app on 127.0.0.1, port 0, with a real SQLite file in a fresh
 * temporary directory, driven with real fetch and WebSocket clients.
 */
import { describe, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { makeConfig, type Config } from "../src/config";
import { createApp } from "../src/app";
import { createLogger } from "../src/log";
import { checkResponse, routesOf } from "./contract";
import { openPostgresParts } from "../src/platform/postgres/open";
import { openPostgres } from "../src/platform/postgres/client";
import { testDatabaseFor, dropTestDatabaseOf } from "./services";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { openDatabase, type DB } from "../src/db/client";

/**
 * PARLEY_TEST_DB=postgres runs the suite's servers in cluster mode's store: each data
 * directory gets its own PostgreSQL database (made from a migrated template), dropped with it.
 */
export const TEST_BACKEND = process.env.PARLEY_TEST_DB === "postgres" ? "postgres" : "sqlite";

/**
 * For tests of SQLite internals (WAL, checkpoints, search.db, parley.db backups, the
 * synchronous event log): `test` and `describe` on SQLite; on PostgreSQL skipped, with
 * `why` in the name, so every skipped test says why in bun's list of skips.
 */
export function sqliteOnly(why: string): { test: typeof test; describe: typeof describe } {
  if (TEST_BACKEND === "sqlite") return { test, describe };
  const skipped = <T>(skip: (name: string, ...rest: never[]) => void) => {
    const run = (name: string, ...rest: never[]) => skip(`${name} [SQLite only: ${why}]`, ...rest);
    // `.skipIf(…)` as the callers chain it: skipped whatever the condition.
    return Object.assign(run, { skipIf: () => run }) as unknown as T;
  };
  return { test: skipped<typeof test>(test.skip), describe: skipped<typeof describe>(describe.skip) };
}

export const tempDir = (prefix = "parley-test-") => mkdtempSync(join(tmpdir(), prefix));

export interface TestServer {
  base: string;
  wsBase: string;
  dataDir: string;
  app: ReturnType<typeof createApp>;
  /** Every log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  /** The same lines as written. */
  lines: string[];
  api: <T = any>(method: string, path: string, opts?: { body?: unknown; token?: string; raw?: string; headers?: Record<string, string> }) => Promise<{ status: number; body: T; headers: Headers }>;
  register: (username?: string, password?: string) => Promise<Account>;
  /**
   * Rows of a raw SQL query on the server's database, whichever engine it is: `?`
   * placeholders, snake_case columns. For checks of what is stored; PostgreSQL's bigints
   * come back as numbers, as SQLite's integers do.
   */
  rows: <T = any>(query: string, ...params: unknown[]) => Promise<T[]>;
  stop: (removeData?: boolean) => Promise<void>;
}

/** An error or fatal log line (the logger writes level labels, not pino's numbers). */
export const isErrorLine = (line: Record<string, unknown>) => line.level === "error" || line.level === "fatal";

export interface Account { token: string; user: { id: string; username: string; display_name: string }; password: string }

let counter = 0;
let documented: Promise<ReturnType<typeof routesOf>> | undefined;
export const uniqueName = (prefix = "user") => `${prefix}${Date.now().toString(36)}${(counter++).toString(36)}`;

/** `listenPort` 0 picks a free one; a fixed port lets a test restart "the same" server (browser clients reconnect to it). */
export async function startServer(overrides: Partial<Config> = {}, dataDir = tempDir(), listenPort = 0): Promise<TestServer> {
  // CONTACT_POLICY=open here, unlike the server's default (friends): most tests put strangers
  // into conversations to test something else. The policy's own tests ask for `friends`.
  const config = makeConfig({
    dataDir, port: 0, host: "127.0.0.1", argon2MemoryKib: 1024, logLevel: "info", registrationsPerAddress: 1_000_000, contactPolicy: "open",
    ...overrides,
  });
  const logs: Record<string, unknown>[] = [];
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line) (lines.push(line), logs.push(JSON.parse(line)));
      done();
    },
  });
  const log = createLogger(config.logLevel, sink);
  let app: ReturnType<typeof createApp>;
  if (TEST_BACKEND === "postgres" && !config.databaseUrl) {
    // A small pool: Bun opens every connection of it at once, and a file may keep a dozen
    // servers open beside other test runs on the same PostgreSQL (max_connections 100).
    const clustered = makeConfig({
      ...config,
      databasePoolSize: overrides.databasePoolSize ?? 4,
      databaseUrl: await testDatabaseFor(dataDir),
      jwtSecret: config.jwtSecret ?? "a-test-secret-of-at-least-32-characters",
    });
    app = createApp(clustered, { log, postgres: await openPostgresParts(clustered, log) });
  } else app = createApp(config, { log });
  app.app.listen({ port: listenPort, hostname: "127.0.0.1" });
  const port = app.app.server!.port;
  const base = `http://127.0.0.1:${port}`;

  // The documented operations, read before the first request so that checking costs no time
  // between a test's requests (a test may race a 1 s token lifetime). The same app has the same document.
  documented ??= app.app.handle(new Request(`${base}/docs/json`)).then(async (res) => routesOf((await res.json()) as Parameters<typeof routesOf>[0]));
  const routes = await documented;
  const api: TestServer["api"] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined = opts.raw;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["content-type"] = "application/json";
    }
    const res = await fetch(base + path, { method, headers, body });
    const text = await res.text();
    let parsed: any = text;
    try { parsed = text ? JSON.parse(text) : null; } catch {}
    // Every response is checked against /docs/json: its status documented, its body the documented model.
    const wrong = checkResponse(routes, method.toUpperCase(), path, res.status, parsed);
    if (wrong) throw new Error(`response does not match the API documents: ${wrong}`);
    return { status: res.status, body: parsed, headers: res.headers };
  };

  const register = async (username = uniqueName(), password = "password123") => {
    const res = await api("POST", "/api/auth/register", { body: { username, password } });
    if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${JSON.stringify(res.body)}`);
    return { token: res.body.token, user: res.body.user, password };
  };

  const pg = app.ctx.config.databaseUrl ? openPostgres(app.ctx.config.databaseUrl, 1) : null;
  const rows: TestServer["rows"] = async (query, ...params) => {
    if (!pg) return app.ctx.db.$client.query(query).all(...(params as never[])) as never;
    let n = 0;
    const result = (await pg.$client.unsafe(query.replace(/\?/g, () => `$${++n}`), params as never[])) as Record<string, unknown>[] & { columns: { name: string; type: number }[] };
    const int8 = result.columns.filter((c) => c.type === 20).map((c) => c.name);
    for (const row of result) for (const c of int8) if (typeof row[c] === "string") row[c] = Number(row[c]);
    return [...result] as never;
  };

  return {
    rows,
    base,
    wsBase: base.replace("http", "ws"),
    dataDir,
    app,
    logs,
    lines,
    api,
    register,
    async stop(removeData = true) {
      await app.stop();
      await pg?.$client.close();
      if (removeData) {
        rmSync(dataDir, { recursive: true, force: true });
        await dropTestDatabaseOf(dataDir);
      }
    },
  };
}

/**
 * Polls until `fn` returns (or resolves to) a truthy value, or throws after `ms`. For effects
 * that land after a response. An async `fn` is awaited: its promise, truthy itself, made
 * this return at once (a Redis outage test "waited" for /health that way and raced).
 */
export async function waitFor<T>(fn: () => T | undefined | null | false | PromiseLike<T | undefined | null | false>, ms = 2000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("waitFor: condition not met in time");
    await Bun.sleep(5);
  }
}

/** The caller's event log through GET /api/events, every page. */
export async function eventsOf(s: TestServer, token: string, since = 0): Promise<{ seq: number; type: string; data: any; timestamp: string }[]> {
  const out: { seq: number; type: string; data: any; timestamp: string }[] = [];
  let cursor: string | null = null;
  do {
    const res: { status: number; body: any } = await s.api("GET", `/api/events?since=${since}&limit=100${cursor ? `&cursor=${cursor}` : ""}`, { token });
    if (res.status !== 200) throw new Error(`events: ${res.status} ${JSON.stringify(res.body)}`);
    out.push(...res.body.items);
    cursor = res.body.next_cursor;
  } while (cursor);
  return out;
}

export const lastSeq = async (s: TestServer, token: string) => (await eventsOf(s, token)).at(-1)?.seq ?? 0;

/** Every member of a conversation through GET /api/conversations/:id/members, page after page. */
export async function membersOf(s: TestServer, token: string, conversationId: string, limit = 100): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  do {
    const res: { status: number; body: any } = await s.api("GET", `/api/conversations/${conversationId}/members?limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`, { token });
    if (res.status !== 200) throw new Error(`members: ${res.status} ${JSON.stringify(res.body)}`);
    out.push(...res.body.items);
    cursor = res.body.next_cursor;
  } while (cursor);
  return out;
}

/** user id → role, from the members route. */
export const rolesOf = async (s: TestServer, token: string, conversationId: string): Promise<Record<string, string>> =>
  Object.fromEntries((await membersOf(s, token, conversationId)).map((m) => [m.user.id, m.role]));

/**
 * Runs `check` on a SQLite database file of its own as the build before a migration left it:
 * every migration before the first one with a statement containing `marker` (found by its
 * text: its number may change in a merge). `pending`: how many migrations `migrate` then
 * applies (that one and any later). The file is removed afterwards.
 */
export function withSqliteBefore(marker: string, check: (db: DB, pending: number) => void) {
  const all = readMigrationFiles({ migrationsFolder: join(import.meta.dir, "../drizzle") });
  const at = all.findIndex((m) => m.sql.some((q) => q.includes(marker)));
  if (at < 0) throw new Error(`no migration contains ${marker}`);
  const dir = tempDir();
  const db = openDatabase(join(dir, "old.db"));
  try {
    (db as any).dialect.migrate(all.slice(0, at), (db as any).session, { migrationsFolder: "" });
    check(db, all.length - at);
  } finally {
    db.$client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
