/**
 * Services of a test's own, for tests that stop and restart them: a nats-server process and
 * a PostgreSQL instance in a temporary directory, each on a free port (and a redis-server,
 * for the benchmark, which counts each one's CPU). The machine's services
 * (test/services.ts) are shared with other runs and are never restarted.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { reachable, REDIS_TEST_URL } from "./services";

const NATS_SERVER = process.env.TEST_NATS_SERVER ?? "/usr/sbin/nats-server";
const REDIS_SERVER = process.env.TEST_REDIS_SERVER ?? "redis-server";
const PG_BIN = process.env.TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";
/** initdb and the server refuse to run as root: as root, they run as this user. */
const PG_USER = "postgres";
const isRoot = process.getuid?.() === 0;

/**
 * Whether the tests of a file can run their own services: true when the programs are there
 * (and Redis answers, when needed). Otherwise throws under CI (CI=true), or prints what is
 * skipped and why.
 */
export async function ownServicesReady(what: string, needs: { pg?: boolean; nats?: boolean; redis?: boolean }): Promise<boolean> {
  const missing: string[] = [];
  if (needs.nats && !(await Bun.file(NATS_SERVER).exists())) missing.push(`nats-server at ${NATS_SERVER} (TEST_NATS_SERVER)`);
  if (needs.pg) {
    for (const tool of ["initdb", "pg_ctl"]) if (!(await Bun.file(join(PG_BIN, tool)).exists())) missing.push(`PostgreSQL's ${tool} in ${PG_BIN} (TEST_PG_BIN)`);
    if (isRoot && Bun.spawnSync(["id", "-u", PG_USER]).exitCode !== 0) missing.push(`a "${PG_USER}" user to run PostgreSQL as (running as root)`);
  }
  if (needs.redis && !(await reachable(REDIS_TEST_URL))) missing.push(`Redis (${new URL(REDIS_TEST_URL).host})`);
  if (missing.length === 0) return true;
  const message = `${what}: needs ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(`${message} (CI=true: cluster tests must run)`);
  console.warn(`SKIPPED ${message}. See README "Running a cluster" to run them.`);
  return false;
}

/** A TCP port nobody listens on now (the OS's choice). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

async function until(what: string, ok: () => Promise<boolean>, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: timed out`);
    await Bun.sleep(50);
  }
}

/**
 * A nats-server with JetStream on its own port and store directory; `kill` it and `start` it
 * again on the same port. `copy`: run a copy of the program from the store directory, so
 * that `start-stop-daemon --stop --exec /usr/sbin/nats-server` (a restart of the machine's
 * server by another test run) does not stop this one too (the benchmark's runs are long).
 */
export async function ownNats(options: { copy?: boolean } = {}) {
  const port = freePort();
  const dir = mkdtempSync(join(tmpdir(), "parley-nats-"));
  const program = options.copy ? join(dir, "nats-server") : NATS_SERVER;
  if (options.copy) copyFileSync(NATS_SERVER, program);
  let proc: Subprocess | null = null;
  const url = `nats://127.0.0.1:${port}`;
  const nats = {
    url,
    /** The running server's process id (the benchmark counts its CPU). */
    get pid() {
      return proc?.pid;
    },
    async start() {
      proc = Bun.spawn([program, "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], { stdout: "ignore", stderr: "ignore" });
      await until(`nats-server on ${port}`, () => reachable(url, 200));
    },
    /** SIGKILL: the server vanishes without a goodbye to its clients. */
    async kill() {
      proc?.kill("SIGKILL");
      await proc?.exited;
      proc = null;
    },
    async dispose() {
      await nats.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await nats.start();
  return nats;
}

/**
 * A PostgreSQL instance of its own (initdb in a temporary directory, a free port, trust
 * authentication, no fsync: a crash of the server process, not of the machine, loses
 * nothing committed). `crash` stops it the way a crash does (`pg_ctl stop -m immediate`:
 * every backend killed, recovery at the next start); `start` brings it back on the same port.
 * `durable`: the distribution's defaults instead (fsync on, shared_buffers 128 MB), for
 * the benchmark, whose figures must include the commits' flushes.
 */
export async function ownPostgres(options: { durable?: boolean } = {}) {
  const port = freePort();
  const dir = mkdtempSync(join(tmpdir(), "parley-pg-"));
  const data = join(dir, "data");
  if (isRoot) Bun.spawnSync(["chown", PG_USER, dir]);
  const run = (tool: string, args: string[]) => {
    const cmd = [join(PG_BIN, tool), ...args];
    const done = Bun.spawnSync(isRoot ? ["runuser", "-u", PG_USER, "--", ...cmd] : cmd, { stdout: "pipe", stderr: "pipe" });
    if (done.exitCode !== 0) throw new Error(`${tool} failed (${done.exitCode}): ${done.stderr.toString()}${done.stdout.toString()}`);
  };
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]);
  const settings = [`-p ${port}`, "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''", "-c max_connections=200", ...(options.durable ? [] : ["-c fsync=off", "-c shared_buffers=32MB"])].join(" ");
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const pg = {
    url,
    /** The URL of a database of this server. */
    database: (name: string) => `postgres://postgres@127.0.0.1:${port}/${name}`,
    async start() {
      run("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-w", "-o", settings, "start"]);
      await until(`PostgreSQL on ${port}`, () => reachable(url, 200));
    },
    async crash() {
      run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
    },
    async dispose() {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {} // not running
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}

/**
 * A redis-server without persistence on its own port (the benchmark counts its CPU). `kill`
 * makes it vanish (SIGKILL, its data with it); `start` brings an empty one back on the port.
 */
export async function ownRedis() {
  const port = freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: Subprocess | null = null;
  const redis = {
    url,
    get pid() {
      return proc?.pid;
    },
    async start() {
      proc = Bun.spawn([REDIS_SERVER, "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
      await until(`redis-server on ${port}`, () => reachable(url, 200));
    },
    async kill() {
      proc?.kill("SIGKILL");
      await proc?.exited;
      proc = null;
    },
    dispose: () => redis.kill(),
  };
  await redis.start();
  return redis;
}
