/**
 * Presence across nodes when presence frames are lost (PROTOCOL §4.4, §11), with real
 * processes: two Parley nodes on a nats-server of this file's own (killed and started
 * again; the machine's is shared and never restarted), the machine's PostgreSQL (a database
 * of this file's own) and, for the Redis presence, the machine's Redis (under a cluster
 * name of this run's). Each case runs on both presence stores.
 * - A user comes online, then goes offline, on node 0 while NATS is down (their frames are
 *   lost): a friend's socket on node 1 is told each once NATS is back, by node 1's re-read
 *   of the presence store, once.
 * - A socket that follows the user meanwhile is answered from the store, and the node's
 *   other followers are corrected at once.
 * - NATS goes and comes back with nothing changed: nothing is sent.
 * - The periodic safety net (PRESENCE_RESYNC_INTERVAL_MS): a change whose frame never came
 *   (written to the store behind the nodes' backs) reaches the followers; an offline
 *   reading that a read half a heartbeat interval later does not confirm (the store being
 *   rebuilt) is not told; nothing more while nothing changes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { Cluster } from "./cluster-harness";
import { ownNats, ownServicesReady } from "./own-services";
import { REDIS_TEST_URL, createTestDatabase, dropKeys, servicesReady } from "./services";
import type { Running } from "./process";
import { TestSocket, type Frame } from "./ws-client";

const ready = (await ownServicesReady("presence through NATS outages", { nats: true, redis: true })) && (await servicesReady("presence through NATS outages", { pg: true }));
let nats: Awaited<ReturnType<typeof ownNats>>;

beforeAll(async () => {
  if (ready) nats = await ownNats();
});

afterAll(async () => {
  await nats?.dispose();
});

/** Waits until `ok()` resolves true (checked every 50 ms), at most `ms`. */
async function eventually(ok: () => Promise<boolean> | boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: not met in ${ms} ms`);
    await Bun.sleep(50);
  }
}

/** A counter of a node's /metrics (summed over its labels when `labels` is not given). */
async function metric(base: string, name: string, labels?: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const [key, value] = line.split(" ");
    if (key === `${name}${labels ? `{${labels}}` : ""}` || (!labels && key!.startsWith(`${name}{`))) sum += Number(value);
  }
  return sum;
}

const healthOf = (base: string) => fetch(`${base}/health`).then((r) => r.json().then((b: any) => ({ status: r.status, nats: b.nats as string | undefined })), () => ({ status: 0, nats: undefined }));

/** Presence broadcasts (not replies) about `userId` that `s` received from index `from` on. */
const presenceOf = (s: TestSocket, userId: string, from = 0): Frame[] =>
  s.frames.slice(from).filter((f) => (f.type === "user.online" || f.type === "user.offline") && f.request_id === undefined && f.data.user_id === userId);

for (const store of ["postgres", "redis"] as const) {
  describe.skipIf(!ready)(`presence frames lost between nodes, presence in ${store === "postgres" ? "PostgreSQL" : "Redis"}`, () => {
    let cluster: Cluster;
    let database: Awaited<ReturnType<typeof createTestDatabase>>;
    const sockets: TestSocket[] = [];
    const extra: Running[] = [];

    beforeAll(async () => {
      database = await createTestDatabase("parley_presence");
      cluster = await Cluster.start(2, {
        DATABASE_URL: database.url,
        NATS_URL: nats.url,
        // Only NATS reconnects re-read presence here (the periodic safety net has its own test).
        PRESENCE_RESYNC_INTERVAL_MS: "0",
        ...(store === "redis" ? { REDIS_URL: REDIS_TEST_URL } : {}),
      });
    }, 60_000);

    afterAll(async () => {
      for (const s of sockets.splice(0)) s.close();
      for (const n of extra) await n.stop("SIGKILL").catch(() => {});
      await cluster?.stop();
      if (store === "redis" && cluster) await dropKeys(`${cluster.env.CLUSTER_NAME}:`);
      await database?.drop();
    });

    /** Two users who share a conversation (so each may follow the other's presence). */
    async function pair() {
      const [u, f] = await Promise.all([cluster.user(0), cluster.user(1)]);
      const conv = await cluster.api(0, "POST", "/api/conversations", u.token, { type: "direct", user_id: f.id });
      expect(conv.status).toBe(201);
      return { u, f, conversationId: conv.body.id as string };
    }

    const socket = async (i: number, token: string) => {
      const s = await cluster.ws(i, token);
      sockets.push(s);
      return s;
    };

    /** NATS killed, every node seeing it gone; `meanwhile`; NATS started, every node back. */
    async function natsOutage(meanwhile: () => Promise<void>) {
      await nats.kill();
      for (let i = 0; i < 2; i++) await eventually(async () => (await healthOf(cluster.base(i))).nats === "unreachable", 15_000, "health reports NATS away");
      await meanwhile();
      await nats.start();
      for (let i = 0; i < 2; i++) await eventually(async () => (await healthOf(cluster.base(i))).status === 200, 15_000, "health back to 200");
    }

    test("a node that stalls past the heartbeat interval: a follower elsewhere is told its user went offline (and inactive), and online (and active) again at the node's next beat", async () => {
      const { u, f, conversationId } = await pair();
      const stalling = await cluster.node();
      extra.push(stalling);
      const us = await TestSocket.connect(`${stalling.base.replace("http", "ws")}/ws/user?token=${u.token}`);
      sockets.push(us);
      const follower = await socket(0, f.token);
      expect((await follower.request("user.status.subscribe", { user_id: u.id })).type).toBe("user.online");
      // The user has the conversation on screen: the follower, in it, hears them active.
      us.send("conversation.active", { conversation_id: conversationId });
      await follower.waitFor((x) => x.type === "conversation.user_active" && x.data.user_id === u.id, 5000);
      const from = follower.frames.length;
      const activity = () => follower.frames.slice(from).filter((x) => x.type.startsWith("conversation.user_") && x.data.user_id === u.id).map((x) => x.type);
      stalling.proc.kill("SIGSTOP"); // a stall (a long pause, a VM frozen): its heartbeat stops
      try {
        await eventually(() => presenceOf(follower, u.id, from).length > 0, 10_000, "taken offline while the node is stalled");
        await eventually(() => activity().length > 0, 10_000, "its active state ended while the node is stalled");
      } finally {
        stalling.proc.kill("SIGCONT");
      }
      // Back: its next beat finds its heartbeat gone and writes its users back, announced online
      // (the periodic re-read is off here: nothing else would correct the follower), and the
      // conversation they have on screen announced active again (it stayed ended).
      await eventually(() => presenceOf(follower, u.id, from).length === 2, 5000, "told online again");
      expect(presenceOf(follower, u.id, from).map((x) => x.type)).toEqual(["user.offline", "user.online"]);
      await eventually(() => activity().length === 2, 5000, "told active again");
      expect(activity()).toEqual(["conversation.user_inactive", "conversation.user_active"]);
      expect(us.closed).toBeFalsy();
    }, 30_000);

    test("a user comes online, then goes offline, on one node while NATS is down: a follower on the other node is told each once NATS is back, once", async () => {
      const { u, f } = await pair();
      const follower = await socket(1, f.token);
      expect((await follower.request("user.status.subscribe", { user_id: u.id })).type).toBe("user.offline");
      const corrections = () => metric(cluster.base(1), "parley_presence_corrections_total", `type="user.online"`);
      const before = await corrections();

      let own!: TestSocket;
      await natsOutage(async () => {
        own = await cluster.ws(0, u.token);
        // Announced on node 0 (its store says online) and lost on the way to node 1.
        expect(await follower.none((x) => x.type === "user.online" && x.data.user_id === u.id, 700)).toBe(true);
      });
      const online = await follower.waitFor((x) => x.type === "user.online" && x.request_id === undefined && x.data.user_id === u.id, 5000);
      expect(online.data).toEqual({ user_id: u.id, online: true, timestamp: expect.any(String), last_active_at: expect.any(String) });
      // From node 1's re-read of the store (node 0's frame was lost), and only once.
      expect(await corrections()).toBe(before + 1);
      await Bun.sleep(1000);
      expect(presenceOf(follower, u.id).map((x) => x.type)).toEqual(["user.online"]);

      await natsOutage(async () => {
        own.close();
        await own.waitClosed();
        expect(await follower.none((x) => x.type === "user.offline" && x.request_id === undefined && x.data.user_id === u.id, 700)).toBe(true);
      });
      await follower.waitFor((x) => x.type === "user.offline" && x.request_id === undefined && x.data.user_id === u.id, 5000);
      await Bun.sleep(1000);
      expect(presenceOf(follower, u.id).map((x) => x.type)).toEqual(["user.online", "user.offline"]);

      // Frames cross again as before: the next change comes by NATS, once, and needs no correction.
      const fixed = await metric(cluster.base(1), "parley_presence_corrections_total");
      const from = follower.frames.length;
      await socket(0, u.token);
      await follower.waitFor((x) => x.type === "user.online" && x.request_id === undefined && x.data.user_id === u.id, 5000, from);
      await Bun.sleep(500);
      expect(presenceOf(follower, u.id).map((x) => x.type)).toEqual(["user.online", "user.offline", "user.online"]);
      expect(await metric(cluster.base(1), "parley_presence_corrections_total")).toBe(fixed);
    }, 90_000);

    test("a socket that follows the user while NATS is down is answered from the store, and the node's other followers are corrected then; nothing twice after NATS is back", async () => {
      const { u, f } = await pair();
      const first = await socket(1, f.token);
      expect((await first.request("user.status.subscribe", { user_id: u.id })).type).toBe("user.offline");
      let second!: TestSocket;
      const rereads = await metric(cluster.base(1), "parley_presence_rereads_total");
      await natsOutage(async () => {
        await socket(0, u.token);
        second = await socket(1, f.token);
        // The reply says what the store says; the first socket, told otherwise, hears it now.
        expect((await second.request("user.status.subscribe", { user_id: u.id })).type).toBe("user.online");
        await first.waitFor((x) => x.type === "user.online" && x.request_id === undefined && x.data.user_id === u.id, 3000);
      });
      await eventually(async () => (await metric(cluster.base(1), "parley_presence_rereads_total")) > rereads, 5000, "node 1 re-reads");
      await Bun.sleep(1000);
      expect(presenceOf(first, u.id).map((x) => x.type)).toEqual(["user.online"]);
      expect(presenceOf(second, u.id)).toEqual([]);
    }, 90_000);

    test("NATS goes and comes back with nothing changed: the nodes re-read presence and send nothing", async () => {
      const [on, off] = await Promise.all([pair(), pair()]);
      await socket(0, on.u.token);
      // Followers on both nodes, of a user online on node 0 and of one offline.
      const followers = await Promise.all([socket(1, on.f.token), socket(0, off.f.token), socket(1, off.f.token)]);
      expect((await followers[0]!.request("user.status.subscribe", { user_id: on.u.id })).type).toBe("user.online");
      for (const s of followers.slice(1)) expect((await s.request("user.status.subscribe", { user_id: off.u.id })).type).toBe("user.offline");
      const rereads = await Promise.all([0, 1].map((i) => metric(cluster.base(i), "parley_presence_rereads_total")));
      const corrections = await Promise.all([0, 1].map((i) => metric(cluster.base(i), "parley_presence_corrections_total")));
      const seen = followers.map((s) => s.frames.length);

      await natsOutage(async () => {});
      // Each node re-read (its own reconnect, the other's word), and found nothing to tell.
      for (let i = 0; i < 2; i++) await eventually(async () => (await metric(cluster.base(i), "parley_presence_rereads_total")) > rereads[i]!, 5000, `node ${i} re-reads`);
      await Bun.sleep(1500);
      followers.forEach((s, k) => expect(s.frames.slice(seen[k]).map((x) => x.type)).toEqual([]));
      for (let i = 0; i < 2; i++) expect(await metric(cluster.base(i), "parley_presence_corrections_total")).toBe(corrections[i]!);
    }, 90_000);

    test("the periodic safety net: a change whose frame never came reaches the followers, once; a moment's offline reading is not told; nothing more while nothing changes", async () => {
      // A node re-reading every 200 ms; changes written to the store behind every node's back.
      // Its heartbeat interval of 2 s makes it wait 1 s to confirm an offline reading.
      const node = await cluster.node({ PRESENCE_RESYNC_INTERVAL_MS: "200", HEARTBEAT_INTERVAL_MS: "2000" });
      extra.push(node);
      const { u, f } = await pair();
      const follower = await TestSocket.connect(`${node.base.replace("http", "ws")}/ws/user?token=${f.token}`);
      sockets.push(follower);
      expect((await follower.request("user.status.subscribe", { user_id: u.id })).type).toBe("user.offline");
      const told = () => presenceOf(follower, u.id).map((x) => x.type);

      const sql = store === "postgres" ? new SQL({ url: database.url, max: 1 }) : null;
      const redis = store === "redis" ? new Bun.RedisClient(REDIS_TEST_URL) : null;
      const key = `${cluster.env.CLUSTER_NAME}:u:${u.id}`;
      // Online and announced, as a node that lost its frame would have left it; and gone.
      const online = () => (sql ? sql`INSERT INTO presence_users (user_id, total, announced) VALUES (${u.id}, 0, true)` : redis!.send("HSET", [key, "a", "1"]));
      const gone = () => (sql ? sql`DELETE FROM presence_users WHERE user_id = ${u.id}` : redis!.send("DEL", [key]));
      try {
        await online();
        await follower.waitFor((x) => x.type === "user.online" && x.request_id === undefined && x.data.user_id === u.id, 5000);
        await Bun.sleep(1000); // five periods
        expect(told()).toEqual(["user.online"]);

        // Offline for 400 ms (two reads), as while the store is rebuilt after a PostgreSQL
        // crash or a Redis restart: not confirmed a second later, so not told.
        await gone();
        await Bun.sleep(400);
        await online();
        await Bun.sleep(1500);
        expect(told()).toEqual(["user.online"]);

        const went = Date.now();
        await gone();
        await follower.waitFor((x) => x.type === "user.offline" && x.request_id === undefined && x.data.user_id === u.id, 5000);
        expect(Date.now() - went).toBeGreaterThanOrEqual(1000);
        await Bun.sleep(1000);
        expect(told()).toEqual(["user.online", "user.offline"]);
        expect(await metric(node.base, "parley_presence_corrections_total")).toBe(2);
      } finally {
        await sql?.close();
        redis?.close();
      }
    }, 90_000);
  });
}
