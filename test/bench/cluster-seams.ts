/**
 * The cost of the cluster seams per operation (`bun test/bench/cluster-seams.ts`), on the
 * machine's NATS and Redis: a budget take, a presence connect + disconnect, and an
 * ephemeral frame from one node's broker to a socket on another. Sequential (latency) and
 * 64 at once (throughput), with this process's CPU per operation; against the in-memory
 * implementations for scale.
 */
import { memoryLimits } from "../../src/platform/memory/limits";
import { MemoryPresence } from "../../src/platform/memory/presence";
import { redisLimits } from "../../src/platform/redis/limits";
import { RedisPresence } from "../../src/platform/redis/presence";
import { NatsBroker } from "../../src/platform/nats/broker";
import { NATS_TEST_URL as NATS_URL, REDIS_TEST_URL as REDIS_URL, dropKeys, uniquePrefix } from "../services";

const N = Number(process.argv[2] ?? 5000);

async function measure(name: string, op: (i: number) => unknown, parallel = 1) {
  for (let i = 0; i < 200; i++) await op(i); // warm up
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
  const row = { name, parallel, ops: N, us_per_op: +((ms * 1000) / N).toFixed(2), ops_per_s: Math.round(N / (ms / 1000)), client_cpu_us_per_op: +((cpu.user + cpu.system) / N).toFixed(2) };
  console.log(JSON.stringify(row));
}

const prefix = uniquePrefix("seams");
const redis = new Bun.RedisClient(REDIS_URL);
const budget = redisLimits(redis, `${prefix}:`).bucket("sends", 1e9, 1e9);
const memBudget = memoryLimits.bucket("sends", 1e9, 1e9);
await measure("budget take: memory", (i) => memBudget.take(`u${i % 100}`));
await measure("budget take: redis", (i) => budget.take(`u${i % 100}`));
await measure("budget take: redis", (i) => budget.take(`u${i % 100}`), 64);
memBudget.stop();

const memPresence = new MemoryPresence(0);
const presence = new RedisPresence(redis, { nodeId: "bench", graceMs: 0, heartbeatIntervalMs: 30_000, prefix: `${prefix}:` });
await measure("presence connect+disconnect: memory", (i) => (memPresence.connect(`u${i}`, 20), memPresence.disconnect(`u${i}`)));
await measure("presence connect+disconnect: redis", async (i) => {
  await presence.connect(`u${i}`, 20);
  presence.disconnect(`u${i}`);
});
await measure("presence connect+disconnect: redis", async (i) => {
  await presence.connect(`u${i}`, 20);
  presence.disconnect(`u${i}`);
}, 64);
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
