/**
 * The machine's services for cluster-mode tests: PostgreSQL, NATS, Redis on 127.0.0.1.
 * Each test file creates its own database (and drops it), so runs never see each other's
 * data. A missing service fails the tests under CI (CI=true), and elsewhere skips them
 * with a line saying why (README "Running a cluster" says how to run them).
 */
import { SQL } from "bun";
import { connect } from "node:net";

export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const NATS_TEST_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
export const REDIS_TEST_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Whether something accepts TCP connections at `url`'s host and port. */
export function reachable(url: string, timeoutMs = 1000): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Whether the cluster tests of a file can run: true when every service answers. Otherwise
 * throws under CI (a CI run that skipped them would pass without testing cluster mode) and
 * prints what is skipped and why.
 */
export async function servicesReady(what: string, needs: { pg?: boolean; nats?: boolean; redis?: boolean } = { pg: true, nats: true }): Promise<boolean> {
  const missing: string[] = [];
  if (needs.pg && !(await reachable(PG_ADMIN_URL))) missing.push(`PostgreSQL (${new URL(PG_ADMIN_URL).host})`);
  if (needs.nats && !(await reachable(NATS_TEST_URL))) missing.push(`NATS (${new URL(NATS_TEST_URL).host})`);
  if (needs.redis && !(await reachable(REDIS_TEST_URL))) missing.push(`Redis (${new URL(REDIS_TEST_URL).host})`);
  if (missing.length === 0) return true;
  const message = `${what}: needs ${missing.join(", ")}, which did not answer`;
  if (process.env.CI === "true") throw new Error(`${message} (CI=true: cluster tests must run)`);
  console.warn(`SKIPPED ${message}. See README "Running a cluster" to run them.`);
  return false;
}

/** A fresh PostgreSQL database for one test file (on the server of `adminUrl`); `drop()` removes it (connections forced closed). */
export async function createTestDatabase(prefix = "parley_test", template?: string, adminUrl = PG_ADMIN_URL): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new SQL({ url: adminUrl, max: 1 });
  await admin.unsafe(template ? `CREATE DATABASE "${name}" TEMPLATE "${template}"` : `CREATE DATABASE "${name}"`);
  await admin.close();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const again = new SQL({ url: adminUrl, max: 1 });
      await again.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await again.close();
    },
  };
}

/** A migrated database that test databases are copied from (CREATE DATABASE … TEMPLATE: no migrations per server). */
let template: Promise<string> | undefined;
const byDataDir = new Map<string, { url: string; drop: () => Promise<void> }>();
/**
 * Databases of stopped servers, emptied, for the next server: creating and dropping a
 * database costs PostgreSQL a checkpoint or a WAL copy (0.3–2 s here), emptying one ~20 ms.
 */
const idle: { url: string; drop: () => Promise<void> }[] = [];

async function migratedTemplate(): Promise<string> {
  const { openPostgres, migratePostgres } = await import("../src/platform/postgres/client");
  void dropStale().catch(() => {});
  const made = await createTestDatabase("parley_template");
  const db = openPostgres(made.url, 1);
  await migratePostgres(db);
  await db.$client.close();
  return made.name;
}

/**
 * Databases of earlier test processes (the process id is in the name): a run leaves its
 * template and pool behind (dropping them at exit is not reliable, nor cheap), and the
 * next run's first server drops them.
 */
async function dropStale() {
  const admin = new SQL({ url: PG_ADMIN_URL, max: 1 });
  try {
    const rows = (await admin.unsafe(`SELECT datname FROM pg_database WHERE datname ~ '^parley_(template|test)_[0-9]+_'`)) as { datname: string }[];
    for (const { datname } of rows) {
      const pid = Number(datname.split("_")[2]);
      if (pid === process.pid || isAlive(pid)) continue;
      await admin.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
    }
  } finally {
    await admin.close();
  }
}

function isAlive(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Made once per test process before the first file runs (test/setup.ts), outside any hook's time limit. */
export const prepareTemplate = () => (template ??= migratedTemplate());

/** The database of a test server's data directory: made on first use, the same for a restart on that directory. */
export async function testDatabaseFor(dataDir: string): Promise<string> {
  const known = byDataDir.get(dataDir);
  if (known) return known.url;
  let made = idle.pop();
  if (!made) {
    made = await createTestDatabase("parley_test", await (template ??= migratedTemplate()));
    }
  byDataDir.set(dataDir, made);
  return made.url;
}

/** The server of `dataDir` stopped for good: its database is emptied (a new epoch) and kept for another. */
export async function dropTestDatabaseOf(dataDir: string) {
  const made = byDataDir.get(dataDir);
  byDataDir.delete(dataDir);
  if (!made) return;
  const db = new SQL({ url: made.url, max: 1 });
  try {
    await db.unsafe(`DO $$ DECLARE names text; BEGIN
      SELECT string_agg(format('%I', tablename), ', ') INTO names FROM pg_tables WHERE schemaname = 'public';
      EXECUTE 'TRUNCATE ' || names || ' RESTART IDENTITY CASCADE';
    END $$`);
    await db.unsafe(`INSERT INTO meta (key, value) VALUES ('epoch', md5(random()::text || clock_timestamp()::text))`);
    idle.push(made);
  } finally {
    await db.close();
  }
}

/**
 * A copy of the database of `dataDir`'s server as it is now (pg_dump into a new database),
 * for `adoptTestDatabase`: a backup of a cluster's data, as test/backups.ts takes one.
 */
export async function dumpTestDatabase(dataDir: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const source = byDataDir.get(dataDir);
  if (!source) throw new Error(`no test database for ${dataDir}`);
  const copy = await createTestDatabase("parley_test");
  const dump = Bun.spawnSync(["pg_dump", "--no-owner", "--no-privileges", `--dbname=${source.url}`], { stderr: "pipe" });
  if (dump.exitCode !== 0) throw new Error(`pg_dump: ${dump.stderr.toString()}`);
  const load = Bun.spawnSync(["psql", "--quiet", "--set=ON_ERROR_STOP=1", `--dbname=${copy.url}`], { stdin: dump.stdout, stdout: "ignore", stderr: "pipe" });
  if (load.exitCode !== 0) throw new Error(`psql: exit ${load.exitCode} ${load.signalCode ?? ""} ${load.stderr.toString()}`);
  return copy;
}

/** Gives `dataDir`'s next server the database `made` (a copy from dumpTestDatabase), emptied and reused like any once stopped. */
export function adoptTestDatabase(dataDir: string, made: { url: string; drop: () => Promise<void> }) {
  byDataDir.set(dataDir, made);
}

/** Whether every named service answers; false (with the reason printed) means skip. */
export async function servicesUp(services: Record<string, string>, what: string): Promise<boolean> {
  const down: string[] = [];
  for (const [name, url] of Object.entries(services)) if (!(await reachable(url))) down.push(`${name} (${url})`);
  if (!down.length) return true;
  const reason = `${what}: ${down.join(", ")} not reachable`;
  if (process.env.CI === "true") throw new Error(`${reason}; CI must run these tests`);
  console.warn(`skipped: ${reason} (start it to run them; see README, Running a cluster)`);
  return false;
}

/** A prefix no other test run uses, for subjects and keys. */
export const uniquePrefix = (name: string) => `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}${name}`;

/** Deletes a test's Redis keys (those starting with its prefix). */
export async function dropKeys(prefix: string) {
  const redis = new Bun.RedisClient(REDIS_TEST_URL);
  try {
    const keys = (await redis.send("KEYS", [`${prefix}*`])) as string[];
    if (keys.length) await redis.send("DEL", keys);
  } finally {
    redis.close();
  }
}
