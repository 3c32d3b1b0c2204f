/**
 * Cluster mode (PROTOCOL §11) with real processes: three Parley nodes on one PostgreSQL
 * database and NATS, on three ports, without Redis (presence and limits on PostgreSQL; the
 * Redis-backed ones in test/platform-*.test.ts and the other cluster tests). Users spread
 * over the nodes chat; typing and
 * presence cross nodes; ten senders on different nodes at once, and every socket on every
 * node receives every message exactly once in seq order; a node killed with SIGKILL under
 * load: its clients resume on another node with nothing lost, its users go offline for
 * the others and come back, and the node restarts and rejoins. Frames a client sends before
 * its `connect` are served after it. Restarts of NATS and PostgreSQL: cluster-outages.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { ParleyClient, type Message } from "../src/client";
import { createTestDatabase, NATS_TEST_URL, servicesReady } from "./services";
import { waitFor } from "./helpers";
import { Cluster } from "./cluster-harness";
import { TestSocket } from "./ws-client";

const ready = await servicesReady("cluster mode (three nodes)", { pg: true, nats: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
/** For reading the nodes' tables: opened before the nodes (PostgreSQL's connection slots are shared with other test runs). */
let sql: SQL | undefined;
let cluster: Cluster;
const clients: ParleyClient[] = [];

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_cluster");
  sql = new SQL({ url: database.url, max: 1 });
  await sql`SELECT 1`;
  // No REDIS_URL (not even one inherited from this process's environment).
  cluster = await Cluster.start(3, { DATABASE_URL: database.url, NATS_URL: NATS_TEST_URL, REDIS_URL: "", MAX_CONNECTIONS_PER_USER: "3", LOGIN_MAX_FAILURES: "4" });
}, 60_000);

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await cluster?.stop();
  await sql?.close();
  await database?.drop();
});

const nodes = () => cluster.nodes;
const base = (i: number) => cluster.base(i);
const ws = (i: number, token: string) => cluster.ws(i, token);

describe.skipIf(!ready)("three nodes", () => {
  test("a token from one node works on another; a message sent on one node reaches sockets on the others; typing and presence cross nodes", async () => {
    const [a, b] = [await cluster.user(0), await cluster.user(1)];
    expect((await cluster.api(2, "GET", "/api/users/me", a.token)).status).toBe(200);
    const f = await cluster.api(0, "POST", "/api/friendships", a.token, { friend_id: b.id });
    expect((await cluster.api(1, "PATCH", `/api/friendships/${f.body.id}/accept`, b.token)).status).toBe(200);
    const conv = await cluster.api(2, "POST", "/api/conversations", a.token, { type: "direct", user_id: b.id });
    expect(conv.status).toBe(201);

    const sa = await ws(0, a.token);
    const sb = await ws(1, b.token);
    await sb.request("user.status.subscribe", { user_id: a.id });
    const sent = await cluster.api(2, "POST", `/api/conversations/${conv.body.id}/messages`, a.token, { content: "across nodes" });
    expect(sent.status).toBe(201);
    const got = await sb.waitFor((x) => x.type === "message.receive" && x.data.id === sent.body.id, 10_000);
    await sa.waitFor((x) => x.type === "message.receive" && x.data.id === sent.body.id, 10_000);
    expect(got.seq).toBeGreaterThan(0);

    sa.send("message.typing", { conversation_id: conv.body.id, is_typing: true });
    await sb.waitFor((x) => x.type === "message.typing" && x.data.user_id === a.id && x.data.is_typing === true, 10_000);

    sa.close();
    await sb.waitFor((x) => x.type === "user.offline" && x.data.user_id === a.id, 10_000);
    sb.close();
  }, 60_000);

  test("frames a client sends before `connect` (while the node counts the socket on PostgreSQL, then catches up) are served after it, in order", async () => {
    const [a, b] = [await cluster.user(0), await cluster.user(1)];
    const conv = await cluster.api(0, "POST", "/api/conversations", a.token, { type: "group", title: "early", member_ids: [b.id] });
    const pings = Array.from({ length: 5 }, (_, i) => ({ type: "ping", request_id: `early${i}` }));
    const send = { type: "message.send", request_id: "early-send", data: { conversation_id: conv.body.id, content: "before connect", client_msg_id: "early-1" } };
    for (let round = 0; round < 3; round++) {
      const s = await cluster.ws(round % 3, a.token, { early: [...pings, send] });
      await s.waitFor((f) => f.request_id === "early-send", 10_000);
      const answers = s.frames.filter((f) => f.request_id?.startsWith("early"));
      expect(answers.map((f) => f.request_id)).toEqual([...pings.map((p) => p.request_id), "early-send"]);
      expect(s.frames.findIndex((f) => f.type === "connect")).toBe(0);
      s.close();
    }
    // Sent once (the retries carried the same client_msg_id).
    const history = await cluster.api(1, "GET", `/api/conversations/${conv.body.id}/messages`, b.token);
    expect(history.body.items.map((m: Message) => m.content)).toEqual(["before connect"]);
  }, 60_000);

  test("a frame that comes while the node reads the socket's conversation.list waits behind those held before it (a ping sent first was answered last)", async () => {
    const a = await cluster.user(0);
    // conversation.list reads `conversations`; membership and replay do not: locked, the
    // opening waits between the release of what was held and the list.
    let unlock!: () => void;
    const unlocked = new Promise<void>((r) => (unlock = r));
    let locked!: () => void;
    const lockTaken = new Promise<void>((r) => (locked = r));
    const holding = sql!.begin(async (tx) => {
      await tx`LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE`;
      locked();
      await unlocked;
    });
    await lockTaken;
    try {
      const s = await TestSocket.open(cluster.wsUrl(0, a.token), { early: [{ type: "ping", request_id: "first" }] });
      await Bun.sleep(500); // released by now, the list's read waiting for the lock
      s.send("ping", {}, "second");
      s.send("ping", {}, "third");
      await Bun.sleep(200);
      unlock();
      await s.waitFor((f) => f.request_id === "third", 10_000);
      expect(s.frames.map((f) => f.request_id ?? f.type)).toEqual(["connect", "conversation.list", "first", "second", "third"]);
      s.close();
    } finally {
      unlock();
      await holding;
    }
  }, 30_000);

  test("presence and limits on PostgreSQL hold across nodes: MAX_CONNECTIONS_PER_USER and login failures, kept in PostgreSQL", async () => {
    const u = await cluster.user(0);
    // Six sockets at once over the three nodes: three open, three refused (429 at the upgrade, or 1013 after it).
    const tries = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => ws(i % 3, u.token)));
    const open = tries.flatMap((t) => (t.status === "fulfilled" ? [t.value] : []));
    expect(open.length).toBe(3);
    await Bun.sleep(200);
    for (const s of open) expect(s.closed).toBeNull();
    // A closed one frees its place, on whichever node.
    open.shift()!.close();
    let again: Awaited<ReturnType<typeof ws>> | null = null;
    for (const deadline = Date.now() + 5000; !again && Date.now() < deadline; await Bun.sleep(50)) again = await ws(1, u.token).catch(() => null);
    expect(again).not.toBeNull();
    for (const s of [...open, again!]) s.close();

    // Wrong passwords on every node at once: LOGIN_MAX_FAILURES (4) are checked, the rest refused.
    const me = (await cluster.api(0, "GET", "/api/users/me", u.token)).body.username as string;
    const logins = await Promise.all(Array.from({ length: 9 }, (_, i) => cluster.api(i % 3, "POST", "/api/auth/login", undefined, { username: me, password: "wrong-password" })));
    expect(logins.map((r) => r.status).sort()).toEqual([401, 401, 401, 401, 429, 429, 429, 429, 429]);

    // The nodes keep them in PostgreSQL (no Redis here).
    const [row] = await sql!`SELECT (SELECT count(*) FROM limit_failures WHERE kind = 'login-user')::int AS failures,
      (SELECT count(*) FROM limit_buckets WHERE kind = 'sends')::int AS sends, (SELECT count(*) FROM presence_nodes)::int AS nodes`;
    expect(row.failures).toBe(1);
    expect(row.sends).toBeGreaterThan(0); // the first test's sender
    expect(row.nodes).toBe(3);
  }, 60_000);

  test("ten senders on different nodes at once: every socket on every node receives every message exactly once, in seq order", async () => {
    const owner = await cluster.user(0);
    const members = await Promise.all(Array.from({ length: 9 }, (_, i) => cluster.user(i % 3)));
    const group = await cluster.api(0, "POST", "/api/conversations", owner.token, { type: "group", title: "busy", member_ids: members.map((m) => m.id) });
    expect(group.status).toBe(201);
    const everyone = [owner, ...members];
    const sockets = await Promise.all(everyone.map((u, i) => ws(i % 3, u.token)));
    const deadline = Date.now() + 10_000;
    const sentIds: string[] = [];
    await Promise.all(
      everyone.map(async (u, i) => {
        for (let k = 0; Date.now() < deadline; k++) {
          const r = await cluster.api((i + 1) % 3, "POST", `/api/conversations/${group.body.id}/messages`, u.token, { content: `${i}:${k}` });
          expect(r.status).toBe(201);
          sentIds.push(r.body.id);
        }
      }),
    );
    expect(sentIds.length).toBeGreaterThan(30);
    for (const s of sockets) await s.waitFor(() => s.all("message.receive").filter((f) => f.data.conversation_id === group.body.id).length >= sentIds.length, 30_000).catch(() => {});
    for (const s of sockets) {
      const received = s.frames.filter((f) => f.type === "message.receive" && f.data.conversation_id === group.body.id);
      expect(received.map((f) => f.data.id).sort()).toEqual([...sentIds].sort());
      const seqs = s.frames.filter((f) => f.seq !== undefined).map((f) => f.seq!);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
      s.close();
    }
  }, 90_000);

  test("kill -9 of a node under load: its clients resume on another node with nothing lost; its users go offline and come back; the node restarts and rejoins", async () => {
    const [sender, victim, watcher] = [await cluster.user(0), await cluster.user(1), await cluster.user(2)];
    const group = await cluster.api(0, "POST", "/api/conversations", sender.token, { type: "group", title: "k9", member_ids: [victim.id, watcher.id] });
    const w = await ws(2, watcher.token);
    await w.request("user.status.subscribe", { user_id: victim.id });
    // The victim's client: node 1 first, then the others.
    const client = new ParleyClient({ url: [base(1), base(2), base(0)], token: victim.token, backoff: { initialMs: 50, maxMs: 200 } });
    clients.push(client);
    const received: Message[] = [];
    client.on("message.receive", (m) => received.push(m));
    await client.connect();
    await w.waitFor((x) => x.type === "user.online" && x.data.user_id === victim.id, 10_000);

    const sent: string[] = [];
    let sending = true;
    const load = (async () => {
      for (let k = 0; sending; k++) {
        const r = await cluster.api(0, "POST", `/api/conversations/${group.body.id}/messages`, sender.token, { content: `load ${k}` });
        if (r.status === 201) sent.push(r.body.id);
        await Bun.sleep(5);
      }
    })();
    await waitFor(() => received.length >= 20, 20_000);
    nodes()[1]!.proc.kill("SIGKILL");
    await nodes()[1]!.proc.exited;
    // The dead node's users go offline for the others within 2 × HEARTBEAT_INTERVAL_MS (1 s here), give or take the check.
    await w.waitFor((x) => x.type === "user.offline" && x.data.user_id === victim.id, 10_000);
    // …and come back when the client has reconnected elsewhere.
    await waitFor(() => client.state === "open" && client.baseUrl !== nodes()[1]!.base, 20_000);
    await w.waitFor((x) => x.type === "user.online" && x.data.user_id === victim.id, 10_000);
    const count = sent.length;
    await waitFor(() => sent.length >= count + 20, 20_000);
    sending = false;
    await load;
    await waitFor(() => received.length >= sent.length, 20_000).catch(() => {});
    expect(new Set(received.map((m) => m.id)).size).toBe(received.length);
    expect(received.map((m) => m.id).sort()).toEqual([...sent].sort());

    // The node restarts (same DATA_DIR is not needed: everything is in PostgreSQL) and serves again.
    cluster.nodes[1] = await cluster.node();
    const again = await ws(1, victim.token);
    expect(again.closed).toBeNull();
    again.close();
    w.close();
  }, 120_000);
});
