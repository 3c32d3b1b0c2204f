/**
 * Two real Parley processes in cluster mode (PROTOCOL §11: one PostgreSQL database, NATS)
 * with REDIS_URL: ephemeral frames, presence and the connection cap cross between them,
 * presence and limits on Redis (test/cluster.test.ts runs three nodes without it).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnServer, type Running } from "./process";
import { tempDir } from "./helpers";
import { TestSocket } from "./ws-client";
import { NATS_TEST_URL as NATS_URL, PG_ADMIN_URL, REDIS_TEST_URL as REDIS_URL, createTestDatabase, dropKeys, servicesUp, uniquePrefix } from "./services";

const up = await servicesUp({ PostgreSQL: PG_ADMIN_URL, NATS: NATS_URL, Redis: REDIS_URL }, "two-process cluster tests");
let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;

const CLUSTER_NAME = uniquePrefix("live");
const ENV = {
  CLUSTER_NAME,
  JWT_SECRET: "a-cluster-test-secret-of-32-characters-or-more",
  NATS_URL,
  REDIS_URL,
  PRESENCE_GRACE_MS: "0",
  MAX_CONNECTIONS_PER_USER: "2",
  HEARTBEAT_INTERVAL_MS: "1000",
  REGISTRATIONS_PER_ADDRESS: "1000000",
};

const post = async (base: string, path: string, body: unknown, token?: string) => {
  const res = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
};

describe.skipIf(!up)("two Parley processes on NATS and Redis", () => {
  let one: Running;
  let two: Running;
  const users: Record<"alice" | "bob", { token: string; id: string }> = {} as never;
  let conv: string;

  beforeAll(async () => {
    database = await createTestDatabase("parley_live");
    const env = { ...ENV, DATABASE_URL: database.url };
    // The first migrates; then the second joins the same database.
    one = await spawnServer([process.execPath, "src/index.ts"], { ...env, DATA_DIR: tempDir("parley-node1-") });
    two = await spawnServer([process.execPath, "src/index.ts"], { ...env, DATA_DIR: tempDir("parley-node2-") });
    for (const name of ["alice", "bob"] as const) {
      const { body } = await post(one.base, "/api/auth/register", { username: `${name}${Date.now().toString(36)}`, password: "password123" });
      users[name] = { token: body.token, id: body.user.id };
    }
    conv = (await post(two.base, "/api/conversations", { type: "direct", user_id: users.bob.id }, users.alice.token)).body.id;
  }, 30_000);

  afterAll(async () => {
    await one?.stop();
    await two?.stop();
    await dropKeys(`${CLUSTER_NAME}:`);
    await database?.drop();
  });

  const socket = (node: Running, who: "alice" | "bob") => TestSocket.connect(`${node.base.replace("http", "ws")}/ws/user?token=${users[who].token}`);

  test("typing and active state on one node reach the conversation's sockets on the other", async () => {
    const alice = await socket(one, "alice");
    const bob = await socket(two, "bob");
    // The nodes' NATS connections may still be coming up: type until it crosses.
    const typing = bob.waitFor((f) => f.type === "message.typing" && f.data.user_id === users.alice.id && f.data.is_typing, 10_000);
    const timer = setInterval(() => alice.send("message.typing", { conversation_id: conv, is_typing: true }), 100);
    try {
      const f = await typing;
      expect(f.data.conversation_id).toBe(conv);
    } finally {
      clearInterval(timer);
    }
    const active = alice.next("conversation.user_active");
    bob.send("conversation.active", { conversation_id: conv });
    expect((await active).data).toEqual({ conversation_id: conv, user_id: users.bob.id });
    // The typist never hears themself, from either node.
    expect(alice.all("message.typing")).toEqual([]);
    alice.ws.close();
    bob.ws.close();
  }, 20_000);

  test("presence crosses: online on one node is online for the other; the last close anywhere is user.offline", async () => {
    const bob = await socket(two, "bob");
    const alice = await socket(one, "alice");
    const status = await bob.request("user.status.subscribe", { user_id: users.alice.id });
    expect(status.type).toBe("user.online");
    const offline = bob.waitFor((f) => f.type === "user.offline" && f.data.user_id === users.alice.id, 5000);
    alice.ws.close();
    expect((await offline).data.online).toBe(false);
    const online = bob.waitFor((f) => f.type === "user.online" && f.data.user_id === users.alice.id, 5000, bob.frames.length);
    const again = await socket(one, "alice");
    expect((await online).data.online).toBe(true);
    again.ws.close();
    bob.ws.close();
  }, 20_000);

  test("MAX_CONNECTIONS_PER_USER counts the sockets on every node", async () => {
    const first = await socket(one, "bob");
    const second = await socket(two, "bob");
    const refused = await fetch(`${one.base}/ws/user?token=${users.bob.token}`, { headers: { upgrade: "websocket", connection: "upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
    expect(refused.status).toBe(429);
    second.ws.close();
    await Bun.sleep(200);
    const third = await socket(one, "bob");
    first.ws.close();
    third.ws.close();
  }, 20_000);
});
