/**
 * What a message send costs a cluster node's services with limits on PostgreSQL (no
 * REDIS_URL) and on Redis (`bun test/bench/cluster-send.ts [N] [rounds]`): one node on the
 * machine's PostgreSQL and NATS, N REST sends one at a time per round, the two settings
 * alternating. Per send: latency, the CPU of the node, of PostgreSQL's backends serving its
 * database, and of Redis (the whole server's: other clients of it count too).
 */
import { SQL } from "bun";
import { spawnServer } from "../process";
import { tempDir } from "../helpers";
import { NATS_TEST_URL, PG_ADMIN_URL, REDIS_TEST_URL, createTestDatabase } from "../services";

const N = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 2);

const database = await createTestDatabase("parley_bench");
const admin = new SQL({ url: PG_ADMIN_URL, max: 1 });
const redis = new Bun.RedisClient(REDIS_TEST_URL);

const ticks = async (pid: number) => {
  const stat = await Bun.file(`/proc/${pid}/stat`).text().catch(() => "");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) * 10_000; // µs (10 ms ticks)
};
const pgCpu = async () => {
  const pids = (await admin`SELECT pid FROM pg_stat_activity WHERE datname = ${database.name}`) as { pid: number }[];
  let us = 0;
  for (const { pid } of pids) us += await ticks(pid);
  return us;
};
const redisCpu = async () => {
  const info = String(await redis.send("INFO", ["cpu"]));
  const field = (f: string) => Number(new RegExp(`${f}:([0-9.]+)`).exec(info)![1]);
  return (field("used_cpu_sys") + field("used_cpu_user")) * 1e6;
};

async function round(limits: "postgres" | "redis") {
  const node = await spawnServer([process.execPath, "src/index.ts"], {
    DATABASE_URL: database.url, NATS_URL: NATS_TEST_URL, REDIS_URL: limits === "redis" ? REDIS_TEST_URL : "",
    JWT_SECRET: "a-benchmark-secret-of-at-least-32-chars", CLUSTER_NAME: `bench${process.pid}`, DATA_DIR: tempDir("parley-bench-"),
    SENDS_PER_MINUTE: "100000000",
  });
  try {
    const post = async (path: string, body: unknown, token?: string) => {
      const res = await fetch(node.base + path, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
      if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as any;
    };
    const { token } = await post("/api/auth/register", { username: `b${Date.now().toString(36)}${limits[0]}`, password: "password123" });
    const { id } = await post("/api/conversations", { type: "group", title: "bench", member_ids: [] }, token);
    for (let i = 0; i < 100; i++) await post(`/api/conversations/${id}/messages`, { content: `warm ${i}` }, token);
    const [pg0, redis0, node0] = [await pgCpu(), await redisCpu(), await ticks(node.proc.pid)];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await post(`/api/conversations/${id}/messages`, { content: `message ${i}` }, token);
    const ms = performance.now() - t0;
    const [pg1, redis1, node1] = [await pgCpu(), await redisCpu(), await ticks(node.proc.pid)];
    const per = (us: number) => +(us / N).toFixed(1);
    console.log(JSON.stringify({ limits, sends: N, us_per_send: per(ms * 1000), node_cpu_us: per(node1 - node0), postgres_cpu_us: per(pg1 - pg0), redis_cpu_us: per(redis1 - redis0) }));
  } finally {
    await node.stop();
  }
}

try {
  for (let r = 0; r < ROUNDS; r++) for (const limits of ["postgres", "redis"] as const) await round(limits);
} finally {
  redis.close();
  await admin.close();
  await database.drop();
}
