/**
 * Meters of the cluster services' work for the cluster scenario: CPU of a changing set of
 * processes, and for one database of a PostgreSQL server on this machine its backends'
 * CPU, the instance's background processes' CPU and the WAL its transactions wrote. (The
 * servers themselves: test/own-services.ts.)
 */
import { SQL } from "bun";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cpuSeconds } from "./stats";

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
