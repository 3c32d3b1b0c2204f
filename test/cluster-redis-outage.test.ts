/**
 * Cluster mode with REDIS_URL (presence, connection counts and budgets on Redis) while Redis
 * is away: requests that need it answer 503 `unavailable` with Retry-After at once instead of
 * waiting for Redis (they used to hang for minutes), `GET /health` says so (503, `redis:
 * "unreachable"`: a load balancer skips the node), and everything works again once Redis is back.
 * Redis is a redis-server of this file's own (the machine's is shared and never stopped).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Cluster } from "./cluster-harness";
import { ownRedis, ownServicesReady } from "./own-services";
import { createTestDatabase, NATS_TEST_URL } from "./services";
import { waitFor } from "./helpers";

const ready = await ownServicesReady("cluster mode while Redis is away", { pg: true, nats: true, redis: true });
let redis: Awaited<ReturnType<typeof ownRedis>>;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let cluster: Cluster;

beforeAll(async () => {
  if (!ready) return;
  [redis, database] = await Promise.all([ownRedis(), createTestDatabase("parley_redis_outage")]);
  cluster = await Cluster.start(1, { DATABASE_URL: database.url, NATS_URL: NATS_TEST_URL, REDIS_URL: redis.url });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  await redis?.dispose();
  await database?.drop();
});

test.skipIf(!ready)("Redis away: login, register, sends and upgrades answer 503 unavailable with Retry-After within seconds; /health is 503 naming Redis; all well again once it is back", async () => {
  const alice = await cluster.user(0);
  const conv = await cluster.api(0, "POST", "/api/conversations", alice.token, { type: "group", title: "Outage", member_ids: [] });
  expect(conv.status).toBe(201);
  const username = (await cluster.api(0, "GET", "/api/users/me", alice.token)).body.username as string;
  expect((await cluster.api(0, "GET", "/health")).body).toMatchObject({ status: "ok", redis: "ok" });

  await redis.kill();
  const started = Date.now();
  const login = await cluster.api(0, "POST", "/api/auth/login", undefined, { username, password: "password123" });
  const register = await cluster.api(0, "POST", "/api/auth/register", undefined, { username: `${username}x`, password: "password123" });
  const send = await cluster.api(0, "POST", `/api/conversations/${conv.body.id}/messages`, alice.token, { content: "while Redis is away" });
  const upgrade = await fetch(`${cluster.base(0)}/ws/user?token=${alice.token}`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
  const health = await cluster.api(0, "GET", "/health");
  // At once (the connection is known to be down), not the minutes it took before.
  expect(Date.now() - started).toBeLessThan(3000);
  for (const r of [login, register, send]) {
    expect({ status: r.status, code: r.body?.error?.code }).toEqual({ status: 503, code: "unavailable" });
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  }
  expect(upgrade.status).toBe(503);
  expect(health.status).toBe(503);
  expect(health.body).toMatchObject({ status: "unavailable", postgres: "ok", nats: "ok", redis: "unreachable" });
  // Nothing was written for the refused send.
  expect((await cluster.api(0, "GET", `/api/conversations/${conv.body.id}/messages`, alice.token)).body.items).toEqual([]);

  await redis.start();
  await waitFor(async () => (await cluster.api(0, "GET", "/health")).status === 200, 15_000);
  expect((await cluster.api(0, "GET", "/health")).body).toMatchObject({ status: "ok", redis: "ok" });
  expect((await cluster.api(0, "POST", "/api/auth/login", undefined, { username, password: "password123" })).status).toBe(200);
  expect((await cluster.api(0, "POST", `/api/conversations/${conv.body.id}/messages`, alice.token, { content: "Redis is back" })).status).toBe(201);
  const ws = await cluster.ws(0, alice.token);
  ws.close();
}, 60_000);
