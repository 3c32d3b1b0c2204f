/**
 * What every cluster node pays for every event of the cluster: its follower reading the
 * log and handing each event to its hub, measured at event rates the send path cannot
 * reach on this machine (`bun test/bench/cluster-follow.ts`). A writer in this process
 * (PgEventLog, as a node writes: one transaction per change, NOTIFY and a NATS wake-up
 * after each) appends message events to 1,000 conversations at a fixed rate, `k` per
 * transaction; one Parley node with no socket follows. Per rate and `k`, the node's CPU per
 * event, and the PostgreSQL CPU its follower causes: the database's backends with the node
 * following, minus the same load with the node paused (SIGSTOP; it catches up after,
 * unmeasured). The node's own count of delivered events (`parley_events_appended_total`)
 * must equal the events written: each once.
 *
 * PostgreSQL, NATS and Redis are the script's own (test/own-services.ts; PostgreSQL durable,
 * as the distribution configures it), or `--pg=<admin url>` (e.g. the machine's TEST_PG_URL).
 *
 *   bun test/bench/cluster-follow.ts [--seconds 5] [--rounds 3] [--rates 100,300,1000,3000] [--per-commit 1,10] [--pg=<admin url>]
 */
import { parseArgs } from "node:util";
import { loadavg } from "node:os";
import { openPostgres } from "../../src/platform/postgres/client";
import { PgEventLog } from "../../src/platform/postgres/event-log";
import { NatsBroker } from "../../src/platform/nats/broker";
import { needsRedis } from "./cluster";
import { postgresProcesses, ProcessCpu } from "./lib/services";
import { startParley } from "./lib/server";
import { round } from "./lib/stats";
import { createTestDatabase } from "../services";
import { ownNats, ownPostgres, ownRedis } from "../own-services";
import { SQL } from "bun";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    rates: { type: "string", default: "100,300,1000,3000" },
    "per-commit": { type: "string", default: "1,10" },
    pg: { type: "string", default: "own" },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const RATES = args.rates!.split(",").map(Number);
const PER_COMMIT = args["per-commit"]!.split(",").map(Number);
const load = () => loadavg().map((x) => x.toFixed(1)).join(" ");

const started: { dispose: () => Promise<void> }[] = [];
const stopAll = async () => {
  for (const s of started.reverse()) await s.dispose();
};
try {
  const ownPg = args.pg === "own" ? await ownPostgres({ durable: true }) : undefined;
  if (ownPg) started.push(ownPg);
  const admin = ownPg?.url ?? args.pg!;
  const nats = await ownNats({ copy: true });
  started.push(nats);
  const redis = needsRedis(nats.url) ? await ownRedis() : undefined;
  if (redis) started.push(redis);
  const database = await createTestDatabase("parley_follow", undefined, admin);
  const cluster = `follow${process.pid}`;
  const node = await startParley({ DATABASE_URL: database.url, NATS_URL: nats.url, ...(redis ? { REDIS_URL: redis.url } : {}), JWT_SECRET: "bench-cluster-secret-of-at-least-32-characters", CLUSTER_NAME: cluster });
  const adminSql = new SQL({ url: admin, max: 1 });
  const [{ pid }] = await adminSql`SELECT pg_backend_pid() AS pid`;
  const postmaster = Number((await Bun.file(`/proc/${pid}/stat`).text()).split(") ")[1]!.split(" ")[1]);
  const backends = postgresProcesses(postmaster, database.name).backends;

  const db = openPostgres(database.url, 40);
  const broker = new NatsBroker(nats.url, { prefix: cluster });
  await broker.ready();
  const writer = await PgEventLog.open(db, { onError: (e) => console.error("writer:", e), onAppended: () => broker.wake(writer.deliveredSeq) });
  await writer.start();

  const delivered = async () => {
    const text = await (await fetch(`${node.base}/metrics`)).text();
    return [...text.matchAll(/^parley_events_appended_total\{[^}]*\} (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
  };
  const caughtUp = async (target: number) => {
    const deadline = performance.now() + 60_000;
    while ((await delivered()) < target) {
      if (performance.now() > deadline) throw new Error(`the node did not deliver ${target} events`);
      await Bun.sleep(50);
    }
  };

  let written = 0;
  /** Appends at `rate` events/s, `k` per transaction, for SECONDS; returns the events written. */
  async function write(rate: number, k: number): Promise<{ events: number; seconds: number }> {
    const txRate = rate / k;
    const total = Math.floor(txRate * SECONDS);
    let inFlight = 0;
    let i = 0;
    let events = 0;
    const t0 = performance.now();
    while (i < total && performance.now() - t0 < SECONDS * 1000 + 5000) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * txRate) + 1);
      while (i < due && inFlight < 32) {
        i++;
        inFlight++;
        void writer
          .write(async (w) => {
            let seq = 0;
            for (let j = 0; j < k; j++) {
              const conv = `c${Math.floor(Math.random() * 1000)}`;
              seq = await w.emit(`conv:${conv}`, "message.receive", { id: crypto.randomUUID(), conversation_id: conv, sender_id: "u", content: "hello there, this is a message of about sixty characters", created_at: new Date().toISOString() } as never);
            }
            return seq;
          })
          .then(() => (events += k))
          .catch((e) => console.error("write failed:", e))
          .finally(() => inFlight--);
      }
      await Bun.sleep(1);
    }
    while (inFlight > 0) await Bun.sleep(1);
    written += events;
    return { events, seconds: (performance.now() - t0) / 1000 };
  }

  async function phase(rate: number, k: number, following: boolean) {
    if (!following) process.kill(node.pid, "SIGSTOP");
    const pg = new ProcessCpu(backends);
    const before = node.stats().cpu_s;
    const { events, seconds } = await write(rate, k);
    if (following) await caughtUp(written);
    const nodeCpu = node.stats().cpu_s - before;
    const pgCpu = pg.stop();
    if (!following) {
      process.kill(node.pid, "SIGCONT");
      await caughtUp(written);
    }
    return { events, seconds, nodeCpu, pgCpu };
  }

  await write(200, 1); // warm-up
  await caughtUp(written);
  console.log(`cluster follower: one node with no socket follows a writer; ${SECONDS} s per run, ${ROUNDS} rounds; load average ${load()}`);
  console.log("round  per-commit  offered ev/s  written ev/s  node µs/event  pg follower µs/event  pg writer µs/event  load");
  const results: { k: number; rate: number; evs: number; node: number; pgFollow: number; pgWrite: number }[] = [];
  for (let r = 1; r <= ROUNDS; r++)
    for (const k of PER_COMMIT)
      for (const rate of RATES) {
        const a = await phase(rate, k, true);
        const b = await phase(rate, k, false);
        const m = {
          k,
          rate,
          evs: Math.round(a.events / a.seconds),
          node: round((a.nodeCpu / a.events) * 1e6, 1),
          pgFollow: round((a.pgCpu / a.events - b.pgCpu / b.events) * 1e6, 1),
          pgWrite: round((b.pgCpu / b.events) * 1e6, 1),
        };
        results.push(m);
        console.log([r, k, rate, m.evs, m.node, m.pgFollow, m.pgWrite].map((v, i) => String(v).padStart([5, 10, 12, 12, 13, 20, 18][i]!)).join("  ") + `  ${load()}`);
      }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  console.log("\nmedians:  per-commit  offered ev/s  written ev/s  node µs/event  pg follower µs/event  pg writer µs/event");
  for (const k of PER_COMMIT)
    for (const rate of RATES) {
      const of = results.filter((m) => m.k === k && m.rate === rate);
      console.log(["", k, rate, median(of.map((m) => m.evs)), median(of.map((m) => m.node)), median(of.map((m) => m.pgFollow)), median(of.map((m) => m.pgWrite))].map((v, i) => String(v).padStart([8, 12, 12, 12, 13, 20, 18][i]!)).join("  "));
    }
  const total = await delivered();
  console.log(`\nthe node delivered ${total} events of ${written} written${total === written ? " (each once)" : " — MISMATCH"}`);
  await writer.stop();
  await broker.close();
  await db.$client.close();
  await adminSql.close();
  await node.stop();
  await database.drop();
  if (total !== written) process.exitCode = 1;
} finally {
  await stopAll();
}
