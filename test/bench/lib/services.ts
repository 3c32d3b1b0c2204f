/**
 * The services of cluster mode, for the cluster scenario: a NATS server and (when used) a
 * Redis server of the benchmark's own, so that their CPU is this run's alone, and meters of
 * PostgreSQL's work for one database of the machine's shared server: its backends' CPU, the
 * instance's background processes' CPU, and the WAL its transactions wrote.
 */
import { SQL } from "bun";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSeconds } from "./stats";

export interface OwnService {
  url: string;
  pid: number;
  stop: () => Promise<void>;
}

// Below the ephemeral range, as the servers' ports (lib/server.ts).
const freePort = () => 10000 + Math.floor(Math.random() * 20000);

async function listening(port: number, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.end();
      return;
    } catch {
      if (performance.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
      await Bun.sleep(20);
    }
  }
}

async function own(cmd: string[], port: number, scheme: string): Promise<OwnService> {
  // Their start-up lines are noise here; a server that fails shows as nothing listening.
  const proc = Bun.spawn(cmd, { stdout: "ignore", stderr: "ignore" });
  await listening(port);
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    pid: proc.pid,
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** A core NATS server (no JetStream: the broker uses none) on a port of its own, or undefined without nats-server. */
export function startNats(): Promise<OwnService> | undefined {
  const bin = Bun.which("nats-server") ?? (existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : undefined);
  if (!bin) return undefined;
  const port = freePort();
  return own([bin, "-a", "127.0.0.1", "-p", String(port)], port, "nats");
}

/** A Redis server without persistence on a port of its own, or undefined without redis-server. */
export function startRedis(): Promise<OwnService> | undefined {
  const bin = Bun.which("redis-server");
  if (!bin) return undefined;
  const port = freePort();
  return own([bin, "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"], port, "redis");
}

/**
 * A PostgreSQL instance of the benchmark's own (initdb in a temporary directory, the
 * distribution's default settings but 200 connections), or undefined without initdb. On
 * the machine's shared server, other sessions would share its background processes and
 * WAL, hold the event log's horizon (README, "Cluster mode: the event log") and its 100
 * connections. As root it runs as the `postgres` user (PostgreSQL refuses root).
 */
export async function startPostgres(): Promise<(OwnService & { adminUrl: string }) | undefined> {
  const initdb = Bun.which("initdb");
  const pgCtl = Bun.which("pg_ctl");
  if (!initdb || !pgCtl) return undefined;
  const asRoot = process.getuid?.() === 0;
  const as = asRoot ? ["runuser", "-u", "postgres", "--"] : [];
  const dir = mkdtempSync(join(tmpdir(), "bench-pg-"));
  const run = (cmd: string[]) => {
    const done = Bun.spawnSync([...as, ...cmd], { stdout: "ignore", stderr: "pipe" });
    if (done.exitCode !== 0) throw new Error(`${cmd[0]}: ${done.stderr.toString().trim()}`);
  };
  if (asRoot) Bun.spawnSync(["chown", "postgres:", dir]);
  const data = join(dir, "data");
  const port = freePort();
  try {
    run([initdb, "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]);
    run([pgCtl, "-D", data, "-l", join(dir, "log"), "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`, "start"]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    pid,
    stop: async () => {
      Bun.spawnSync([...as, pgCtl, "-D", data, "-m", "fast", "-w", "stop"], { stdout: "ignore", stderr: "ignore" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh database on the server of `adminUrl`; `drop()` removes it (its connections forced closed). */
export async function createDatabase(adminUrl: string, prefix: string): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`;
  const admin = new SQL({ url: adminUrl, max: 1 });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  await admin.close();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const again = new SQL({ url: adminUrl, max: 1 });
      await again.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await again.close();
    },
  };
}

/**
 * CPU seconds of a changing set of processes over a window: polled, so that a process
 * that ends meanwhile keeps what it used until its last poll, and one that starts counts
 * from zero. `select` is asked each poll and may cache.
 */
export class ProcessCpu {
  private seen = new Map<number, { base: number; last: number }>();
  private timer: ReturnType<typeof setInterval>;

  constructor(private select: () => number[], pollMs = 250) {
    for (const pid of select()) {
      const cpu = cpuSeconds(pid);
      this.seen.set(pid, { base: cpu, last: cpu });
    }
    this.timer = setInterval(() => this.poll(), pollMs);
  }

  private poll() {
    for (const pid of this.select()) {
      const cpu = cpuSeconds(pid);
      if (cpu <= 0) continue; // ended meanwhile
      const known = this.seen.get(pid);
      if (known) known.last = Math.max(known.last, cpu);
      else this.seen.set(pid, { base: 0, last: cpu });
    }
  }

  /** CPU seconds since the start; stops polling. */
  stop(): number {
    this.poll();
    clearInterval(this.timer);
    let total = 0;
    for (const { base, last } of this.seen.values()) total += last - base;
    return total;
  }
}

const parentOf = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
};

// The instance's own processes (not a session): they work for every database on it.
const AUXILIARY = /: (checkpointer|background writer|walwriter|autovacuum launcher|logical replication launcher|archiver|stats collector)\s*$/;

/**
 * The processes of the PostgreSQL instance whose postmaster is `postmaster`, in two sets:
 * the backends (and autovacuum workers) of database `db`, and the instance's auxiliary
 * processes. Other databases' sessions (other people's load) are in neither.
 */
export function postgresProcesses(postmaster: number, db: string) {
  const kind = new Map<number, "db" | "aux" | "other">();
  const classify = (pid: number) => {
    let k = kind.get(pid);
    if (k) return k;
    k = "other";
    if (parentOf(pid) === postmaster) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
        if (cmd.split(/\s+/).includes(db)) k = "db";
        else if (AUXILIARY.test(cmd)) k = "aux";
      } catch {}
    }
    kind.set(pid, k);
    return k;
  };
  const pids = () => readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number);
  return {
    backends: () => pids().filter((p) => classify(p) === "db"),
    auxiliary: () => pids().filter((p) => classify(p) === "aux"),
  };
}

/**
 * One database on a PostgreSQL server this process can see (same machine): its meters.
 * `meter()` starts a window; its result: `pg_backends_cpu_s` (the database's own sessions),
 * `pg_aux_cpu_s` (the instance's background processes, shared with other databases'
 * load), `wal_bytes` (the WAL records of this database's transactions, from pg_waldump;
 * when that cannot read the WAL, `wal_bytes_server_wide`, every database's).
 */
export async function postgresMeter(adminUrl: string, db: string) {
  const admin = new SQL({ url: adminUrl, max: 1 });
  const [me] = await admin`SELECT pg_backend_pid() AS pid, current_setting('data_directory') AS dir, current_setting('server_version_num')::int AS version, (SELECT oid FROM pg_database WHERE datname = ${db})::int AS oid`;
  const postmaster = parentOf(me.pid);
  const procs = postgresProcesses(postmaster, db);
  const walDir = join(me.dir, "pg_wal");
  const waldump = [Bun.which("pg_waldump"), `/usr/lib/postgresql/${Math.floor(me.version / 10000)}/bin/pg_waldump`].find((p) => p && existsSync(p));
  const lsn = async () => (await admin`SELECT pg_current_wal_lsn()::text AS lsn`)[0].lsn as string;
  return {
    visible: postmaster > 1 && existsSync(`/proc/${postmaster}`),
    meter: async () => {
      const backends = new ProcessCpu(procs.backends);
      const auxiliary = new ProcessCpu(procs.auxiliary);
      const from = await lsn();
      return async () => {
        const to = await lsn();
        const out: Record<string, number> = { pg_backends_cpu_s: backends.stop(), pg_aux_cpu_s: auxiliary.stop() };
        const mine = waldump && existsSync(walDir) ? await walOfDatabase(waldump, walDir, me.oid, from, to) : undefined;
        if (mine !== undefined) out.wal_bytes = mine;
        else out.wal_bytes_server_wide = Number((await admin`SELECT pg_wal_lsn_diff(${to}::pg_lsn, ${from}::pg_lsn)::bigint AS n`)[0].n);
        return out;
      };
    },
    /** Bytes per row of the tables that grow with messages (heap, indexes, TOAST). */
    sizes: async (url: string) => {
      const sql = new SQL({ url, max: 1 });
      try {
        const rows = await sql`SELECT relname AS table, pg_total_relation_size(c.oid)::bigint AS bytes FROM pg_class c WHERE relname IN ('messages', 'events') AND relkind = 'r'`;
        const counts = await sql`SELECT (SELECT count(*) FROM messages)::bigint AS messages, (SELECT count(*) FROM events)::bigint AS events`;
        return Object.fromEntries(rows.map((r: { table: string; bytes: string }) => [r.table, { bytes: Number(r.bytes), rows: Number(counts[0][r.table]) }])) as Record<string, { bytes: number; rows: number }>;
      } finally {
        await sql.close();
      }
    },
    close: () => admin.close(),
  };
}

/**
 * The WAL bytes (records' total length, full-page images included) between two LSNs that
 * belong to database `oid`: every record of a transaction that touched one of its
 * relations (its commit record too), and records outside transactions that name one of
 * them (pruning, hint-bit page images). Undefined when pg_waldump cannot read that WAL.
 */
async function walOfDatabase(waldump: string, dir: string, oid: number, from: string, to: string): Promise<number | undefined> {
  if (from === to) return 0;
  const proc = Bun.spawn([waldump, "-p", dir, "-s", from, "-e", to], { stdout: "pipe", stderr: "pipe" });
  const text = await new Response(proc.stdout).text();
  const code = await proc.exited;
  if (code !== 0 && !text) return undefined;
  const record = /len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*(\d+),/;
  const ours = new RegExp(`rel \\d+/${oid}/`);
  const lines: { bytes: number; tx: number; ours: boolean }[] = [];
  const txs = new Set<number>();
  for (const line of text.split("\n")) {
    const m = record.exec(line);
    if (!m) continue;
    const r = { bytes: Number(m[1]), tx: Number(m[2]), ours: ours.test(line) };
    lines.push(r);
    if (r.ours && r.tx !== 0) txs.add(r.tx);
  }
  let bytes = 0;
  for (const r of lines) if (r.tx !== 0 ? txs.has(r.tx) : r.ours) bytes += r.bytes;
  return bytes;
}
