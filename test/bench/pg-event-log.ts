/**
 * Cluster mode's event log: the two ways of keeping seq in commit order, measured
 * (README "Cluster mode: the event log"). Two PgEventLog "nodes" (two pools) on one fresh
 * database; W writers, alternating between the nodes, each commit changes like a message
 * send (insert a row, update its conversation's row, emit one event) for a few seconds.
 * Both followers must deliver every event once, in seq order (checked). Reported per
 * ordering and W: committed events/s, commit-to-delivery latency at the followers (both
 * nodes, so half local wake-ups, half NOTIFY), and CPU per event of PostgreSQL (the
 * benchmark database's backends) and of this process. Orderings alternate within a round,
 * rounds repeat: compare within a round (the machine is shared).
 *
 * `--synchronous-commit off` takes the commit's WAL flush out (what is left is the
 * ordering's own cost; the flush is what the lock serialises).
 *
 * Then the writers alone, without Bun: pgbench (when on PATH) runs the same transaction
 * (the events insert behind each ordering's gate, as PgEventLog writes it) with 1, 2 and 8
 * clients; its transactions/s is events/s.
 *
 *   bun test/bench/pg-event-log.ts [--seconds 3] [--rounds 3] [--writers 1,2,8] [--synchronous-commit off] [--no-pgbench]
 */
import { SQL } from "bun";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/bun-sql";
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { migratePostgres, openPostgres, type PgDB } from "../../src/platform/postgres/client";
import * as schema from "../../src/platform/postgres/schema";
import { GATE, PgEventLog, type Ordering } from "../../src/platform/postgres/event-log";
import { createTestDatabase, servicesReady } from "../services";
import { cpuSeconds, percentiles, round } from "./lib/stats";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    writers: { type: "string", default: "1,2,8" },
    "synchronous-commit": { type: "string", default: "on" },
    "no-pgbench": { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const WRITERS = args.writers!.split(",").map(Number);
const ORDERINGS: Ordering[] = ["lock", "horizon"];

if (!(await servicesReady("event-log benchmark", { pg: true }))) process.exit(0);
const database = await createTestDatabase("parley_bench");

/** CPU seconds of the PostgreSQL backends serving `dbName` (other databases' are other people's load). */
function backendCpu(dbName: string): number {
  let total = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.startsWith("postgres:") && cmd.includes(` ${dbName} `)) total += cpuSeconds(Number(pid));
    } catch {} // exited meanwhile
  }
  return total;
}

interface Result { ordering: Ordering; writers: number; eventsPerSec: number; latency: Record<string, number>; pgCpuUsPerEvent: number; bunCpuUsPerEvent: number }

async function measure(round: number, ordering: Ordering, writers: number): Promise<Result> {
  const dbs = [0, 1].map(() => {
    const client = new SQL({ url: database.url, max: writers + 3, connection: { synchronous_commit: args["synchronous-commit"]! } });
    return drizzle({ client, schema }) as PgDB;
  });
  const nodes = await Promise.all(dbs.map((db) => PgEventLog.open(db, { ordering, onError: (e) => console.error("node:", e) })));
  for (const n of nodes) await n.start();
  const committedAt = new Map<number, number>();
  const latencies: number[] = [];
  const seen = nodes.map(() => [] as number[]);
  nodes.forEach((n, i) =>
    n.onCommit((events) => {
      const now = performance.now();
      for (const e of events) {
        seen[i]!.push(e.seq);
        const at = committedAt.get(e.seq);
        if (at !== undefined) latencies.push(now - at);
      }
    }),
  );
  const start = nodes[0]!.deliveredSeq;
  const until = performance.now() + SECONDS * 1000;
  const cpu0 = { pg: backendCpu(database.name), bun: process.cpuUsage() };
  let events = 0;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const node = nodes[w % 2]!;
      const conv = `c${w}`;
      for (let i = 0; performance.now() < until; i++) {
        const id = `${round}-${ordering}-${writers}-${w}-${i}`;
        const seq = await node.write(async (tx) => {
          await tx.tx.execute(sql`INSERT INTO bench_messages (id, conv, body, created_at) VALUES (${id}, ${conv}, ${"hello there"}, ${Date.now()})`);
          await tx.tx.execute(sql`UPDATE bench_convs SET last_id = ${id}, n = n + 1 WHERE id = ${conv}`);
          return tx.emit(`conv:${conv}`, "message.receive", { id, conversation_id: conv } as never);
        });
        committedAt.set(seq, performance.now());
        events++;
      }
    }),
  );
  const elapsed = SECONDS + (performance.now() - until) / 1000;
  const last = Math.max(...committedAt.keys());
  for (const n of nodes) if (!(await n.waitFor(last, 10_000))) throw new Error(`${ordering}: a follower did not reach ${last}`);
  const cpu = { pg: backendCpu(database.name) - cpu0.pg, bun: process.cpuUsage(cpu0.bun) };
  // Every event once, in seq order, on both nodes.
  const expected = [...committedAt.keys()].sort((a, b) => a - b);
  for (const s of seen) {
    const mine = s.filter((q) => q > start && q <= last);
    if (mine.join() !== expected.join()) {
      const extra = mine.filter((q) => !committedAt.has(q)), missing = expected.filter((q) => !mine.includes(q));
      throw new Error(`${ordering}/${writers}: a follower's sequence differs from the committed one: ${mine.length} vs ${expected.length}, extra ${extra.slice(0, 10)}, missing ${missing.slice(0, 10)}, start ${start}`);
    }
  }
  for (const n of nodes) await n.stop();
  for (const db of dbs) await db.$client.close();
  return {
    ordering,
    writers,
    eventsPerSec: Math.round(events / elapsed),
    latency: percentiles(latencies, [50, 99, 100]),
    pgCpuUsPerEvent: Math.round((cpu.pg * 1e6) / events),
    bunCpuUsPerEvent: Math.round((cpu.bun.user + cpu.bun.system) / events),
  };
}

try {
  const setup = openPostgres(database.url, 2);
  await migratePostgres(setup);
  await setup.$client`CREATE TABLE bench_messages (id text PRIMARY KEY, conv text NOT NULL, body text NOT NULL, created_at bigint NOT NULL)`;
  await setup.$client`CREATE TABLE bench_convs (id text PRIMARY KEY, last_id text, n int NOT NULL DEFAULT 0)`;
  await setup.$client.unsafe(`INSERT INTO bench_convs (id) SELECT 'c' || i FROM generate_series(0, ${Math.max(...WRITERS)}) i`);
  await setup.$client.close();
  console.log(`PostgreSQL event log, ${SECONDS} s per run, ${ROUNDS} rounds, synchronous_commit ${args["synchronous-commit"]}; latency in ms (commit → follower delivery, both nodes), CPU in µs per event`);
  console.log("round  ordering  writers  events/s  lat p50  lat p99  lat max  pg cpu  bun cpu");
  const results: Result[] = [];
  for (let r = 1; r <= ROUNDS; r++)
    for (const writers of WRITERS)
      for (const ordering of ORDERINGS) {
        const m = await measure(r, ordering, writers);
        results.push(m);
        console.log(
          [r, m.ordering.padEnd(8), m.writers, m.eventsPerSec, round(m.latency.p50!), round(m.latency.p99!), round(m.latency.max!), m.pgCpuUsPerEvent, m.bunCpuUsPerEvent]
            .map((v, i) => String(v).padStart(i === 1 ? 8 : 7))
            .join("  "),
        );
      }
  // Medians over the rounds, and horizon's throughput over lock's within each round.
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log("\nmedians:  writers  lock ev/s  horizon ev/s  horizon/lock  lock p50/p99 ms  horizon p50/p99 ms");
  for (const writers of WRITERS) {
    const of = (o: Ordering) => results.filter((m) => m.ordering === o && m.writers === writers);
    const [lock, horizon] = [of("lock"), of("horizon")];
    const ratio = median(horizon.map((h, i) => h.eventsPerSec / lock[i]!.eventsPerSec));
    const lat = (ms: Result[]) => `${round(median(ms.map((m) => m.latency.p50!)))}/${round(median(ms.map((m) => m.latency.p99!)))}`;
    console.log(
      [writers, median(lock.map((m) => m.eventsPerSec)), median(horizon.map((m) => m.eventsPerSec)), round(ratio), lat(lock), lat(horizon)]
        .map((v, i) => String(v).padStart([17, 11, 14, 14, 17, 19][i]!))
        .join(""),
    );
  }
  if (!args["no-pgbench"] && Bun.which("pgbench")) await pgbench();
} finally {
  await database.drop();
}

/** Writers only, as pgbench clients: medians over the rounds of transactions (= events) per second. */
async function pgbench() {
  const dir = (await import("node:fs")).mkdtempSync("/tmp/parley-pgbench-");
  const tps: Record<string, number[]> = {};
  for (let r = 1; r <= ROUNDS; r++)
    for (const clients of WRITERS)
      for (const ordering of ORDERINGS) {
        const script = `${dir}/${ordering}.sql`;
        await Bun.write(
          script,
          `BEGIN;
INSERT INTO bench_messages (id, conv, body, created_at) VALUES (gen_random_uuid()::text, 'c' || :client_id, 'hello there', 0);
UPDATE bench_convs SET n = n + 1 WHERE id = 'c' || :client_id;
WITH g AS MATERIALIZED (${GATE[ordering]}) INSERT INTO events (topic, type, data, created_at, xid) SELECT 'conv:c' || :client_id, 'message.receive', '{}', 0, g.xid FROM g RETURNING seq;
COMMIT;
`,
        );
        const u = new URL(database.url);
        const proc = Bun.spawn(["pgbench", "-n", "-h", u.hostname, "-p", u.port || "5432", "-U", "postgres", "-c", String(clients), "-j", "1", "-T", String(SECONDS), "-f", script, database.name], {
          stdout: "pipe",
          stderr: "pipe",
          env: { ...process.env, PGOPTIONS: `-c synchronous_commit=${args["synchronous-commit"]}` },
        });
        const out = await new Response(proc.stdout).text();
        await proc.exited;
        const found = /tps = ([\d.]+)/.exec(out);
        if (!found) throw new Error(`pgbench: ${out}${await new Response(proc.stderr).text()}`);
        (tps[`${ordering} ${clients}`] ??= []).push(Number(found[1]));
      }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`\npgbench (writers only, ${SECONDS} s × ${ROUNDS} rounds, synchronous_commit ${args["synchronous-commit"]}): events/s`);
  console.log("   clients        lock     horizon  horizon/lock");
  for (const clients of WRITERS) {
    const [lock, horizon] = [median(tps[`lock ${clients}`]!), median(tps[`horizon ${clients}`]!)];
    console.log([clients, Math.round(lock), Math.round(horizon), round(horizon / lock)].map((v) => String(v).padStart(12)).join(""));
  }
}
