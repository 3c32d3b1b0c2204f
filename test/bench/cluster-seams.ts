/**
 * The cost of the cluster seams per operation (`bun test/bench/cluster-seams.ts [N]`), on the
 * machine's NATS, Redis and PostgreSQL: a budget take (what every send spends), a presence
 * connect + disconnect, and an ephemeral frame from one node's broker to a socket on
 * another. Sequential (latency) and 64 at once (throughput), with this process's CPU per
 * operation; against the in-memory implementations for scale. PostgreSQL: a database of
 * its own, on a pool of 20 connections (the store's default, which the seams share).
 */
import { SQL, type RedisClient } from "bun";
import { memoryLimits } from "../../src/platform/memory/limits";
import { MemoryPresence } from "../../src/platform/memory/presence";
import { redisLimits } from "../../src/platform/redis/limits";
import { RedisPresence } from "../../src/platform/redis/presence";
import { RedisLink } from "../../src/platform/redis/client";
import { pgLimits } from "../../src/platform/postgres/limits";
import { PgPresence } from "../../src/platform/postgres/presence";
import { migratePostgres, openPostgres } from "../../src/platform/postgres/client";
import { NatsBroker } from "../../src/platform/nats/broker";
import { NATS_TEST_URL as NATS_URL, PG_ADMIN_URL, REDIS_TEST_URL as REDIS_URL, createTestDatabase, dropKeys, uniquePrefix } from "../services";

const N = Number(process.argv[2] ?? 5000);

/** A service's CPU so far, in µs: `server_cpu_us_per_op` is its difference over the run. */
type ServerCpu = () => Promise<number>;

async function measure(name: string, op: (i: number) => unknown, parallel = 1, serverCpu?: ServerCpu) {
  for (let i = 0; i < 200; i++) await op(i); // warm up
  const server0 = await serverCpu?.();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  if (parallel === 1) for (let i = 0; i < N; i++) await op(i);
  else {
    let next = 0;
    await Promise.all(Array.from({ length: parallel }, async () => {
      while (next < N) await op(next++);
    }));
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const server = serverCpu && server0 !== undefined ? { server_cpu_us_per_op: +(((await serverCpu()) - server0) / N).toFixed(2) } : {};
  const row = { name, parallel, ops: N, us_per_op: +((ms * 1000) / N).toFixed(2), ops_per_s: Math.round(N / (ms / 1000)), client_cpu_us_per_op: +((cpu.user + cpu.system) / N).toFixed(2), ...server };
  console.log(JSON.stringify(row));
}

/** Redis's own CPU (INFO cpu): the whole server's, so other clients of it count too. */
const redisCpu = (client: RedisClient): ServerCpu => async () => {
  const info = String(await client.send("INFO", ["cpu"]));
  const field = (f: string) => Number(new RegExp(`${f}:([0-9.]+)`).exec(info)![1]);
  return (field("used_cpu_sys") + field("used_cpu_user")) * 1e6;
};

/** The CPU of the PostgreSQL backends serving `database` (this benchmark's own), from /proc (10 ms ticks). */
const pgCpu = (admin: SQL, database: string): ServerCpu => async () => {
  const pids = (await admin`SELECT pid FROM pg_stat_activity WHERE datname = ${database}`) as { pid: number }[];
  let ticks = 0;
  for (const { pid } of pids) {
    const stat = await Bun.file(`/proc/${pid}/stat`).text().catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0); // utime, stime
  }
  return ticks * 10_000;
};

const prefix = uniquePrefix("seams");
const redis = new RedisLink(REDIS_URL);
const rcpu = redisCpu(new Bun.RedisClient(REDIS_URL));
const budget = redisLimits(redis, `${prefix}:`).bucket("sends", 1e9, 1e9);
const memBudget = memoryLimits.bucket("sends", 1e9, 1e9);
await measure("budget take: memory", (i) => memBudget.take(`u${i % 100}`));
await measure("budget take: redis", (i) => budget.take(`u${i % 100}`), 1, rcpu);
await measure("budget take: redis", (i) => budget.take(`u${i % 100}`), 64, rcpu);
memBudget.stop();

const database = await createTestDatabase("parley_bench");
const pg = openPostgres(database.url);
await migratePostgres(pg);
const pgAdmin = new SQL({ url: PG_ADMIN_URL, max: 1 });
const pcpu = pgCpu(pgAdmin, database.name);
const pgl = pgLimits(pg.$client);
const pgBudget = pgl.bucket("sends", 1e9, 1e9);
await measure("budget take: postgres", (i) => pgBudget.take(`u${i % 100}`), 1, pcpu);
await measure("budget take: postgres", (i) => pgBudget.take(`u${i % 100}`), 64, pcpu);
const pgPresence = new PgPresence(pg.$client, { nodeId: "bench", graceMs: 0, heartbeatIntervalMs: 30_000 });
await measure("presence connect+disconnect: postgres", async (i) => {
  await pgPresence.connect(`u${i}`, 20);
  pgPresence.disconnect(`u${i}`);
}, 1, pcpu);
await measure("presence connect+disconnect: postgres", async (i) => {
  await pgPresence.connect(`u${i}`, 20);
  pgPresence.disconnect(`u${i}`);
}, 64, pcpu);
await Bun.sleep(500); // the last disconnects land
await pgPresence.stop();
pgl.stop();
await pg.$client.close();
await pgAdmin.close();
await database.drop();

const memPresence = new MemoryPresence(0);
const presence = new RedisPresence(redis, { nodeId: "bench", graceMs: 0, heartbeatIntervalMs: 30_000, prefix: `${prefix}:` });
await measure("presence connect+disconnect: memory", (i) => (memPresence.connect(`u${i}`, 20), memPresence.disconnect(`u${i}`)));
await measure("presence connect+disconnect: redis", async (i) => {
  await presence.connect(`u${i}`, 20);
  presence.disconnect(`u${i}`);
}, 1, rcpu);
await measure("presence connect+disconnect: redis", async (i) => {
  await presence.connect(`u${i}`, 20);
  presence.disconnect(`u${i}`);
}, 64, rcpu);
await presence.stop();

// An ephemeral frame across nodes: publish on A, the frame reaches a socket on B's server.
const serve = () => Bun.serve<undefined, never>({ port: 0, hostname: "127.0.0.1", fetch: (r, s) => (s.upgrade(r) ? undefined : new Response()), websocket: { open: (ws) => void ws.subscribe("conv:bench"), message() {} } });
const [sa, sb] = [serve(), serve()];
const A = new NatsBroker(NATS_URL, { prefix });
const B = new NatsBroker(NATS_URL, { prefix });
A.attach(sa as never);
B.attach(sb as never);
await Promise.all([A.ready(), B.ready()]);
const ws = new WebSocket(`ws://127.0.0.1:${sb.port}/`);
await new Promise((r) => (ws.onopen = r));
let waiting: (() => void) | null = null;
ws.onmessage = () => waiting?.();
await Bun.sleep(100);
await measure("frame across nodes: publish → socket on the other node (round trip)", () => new Promise<void>((resolve) => {
  waiting = resolve;
  A.publish("conv:bench", '{"type":"message.typing"}');
}));
ws.close();
await Promise.all([A.close(), B.close()]);
sa.stop(true);
sb.stop(true);
redis.close();
await dropKeys(prefix);
