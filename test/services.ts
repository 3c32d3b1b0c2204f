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

/** A fresh PostgreSQL database for one test file; `drop()` removes it (connections forced closed). */
export async function createTestDatabase(prefix = "parley_test"): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new SQL({ url: PG_ADMIN_URL, max: 1 });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  await admin.close();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const again = new SQL({ url: PG_ADMIN_URL, max: 1 });
      await again.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await again.close();
    },
  };
}
