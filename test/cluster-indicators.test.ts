/**
 * Typing and active state across nodes when the typist's node dies (PROTOCOL §4.2: "an
 * indicator never sticks"; §11): two real nodes on PostgreSQL and NATS. The typist's node
 * ends its indicators itself (TYPING_TTL_MS, the socket's close); killed with SIGKILL, it
 * ends none, and before the fix another node's sockets kept "typing" and "active" for good.
 * Now every node ends what it relayed: typing TYPING_TTL_MS after the last refresh (and a
 * margin), typing and active state once the user is taken offline. And being active is the
 * user's across nodes, as on one: a tab on another node still showing the conversation keeps it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestDatabase, NATS_TEST_URL, servicesReady } from "./services";
import { Cluster } from "./cluster-harness";
import type { TestSocket } from "./ws-client";
import { frame } from "../src/realtime/protocol";

const ready = await servicesReady("typing and active state when a node dies", { pg: true, nats: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let cluster: Cluster;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_indicators");
  cluster = await Cluster.start(2, { DATABASE_URL: database.url, NATS_URL: NATS_TEST_URL, REDIS_URL: "", TYPING_TTL_MS: "1000" });
}, 60_000);

afterAll(async () => {
  for (const s of sockets.splice(0)) s.close();
  await cluster?.stop();
  await database?.drop();
});

describe.skipIf(!ready)("a node that dies with indicators on", () => {
  test("its user's typing ends on the other node after the TTL, their active state once they are offline", async () => {
    const [typist, watcher] = [await cluster.user(0), await cluster.user(0)];
    const group = await cluster.api(0, "POST", "/api/conversations", typist.token, { type: "group", title: "g", member_ids: [watcher.id] });
    expect(group.status).toBe(201);
    const conv = group.body.id as string;
    const w = await cluster.ws(0, watcher.token);
    sockets.push(w);
    expect((await w.request("user.status.subscribe", { user_id: typist.id })).type).toBeString();
    const victim = await cluster.node();
    cluster.nodes.push(victim);
    const t = await cluster.ws(cluster.nodes.length - 1, typist.token);
    sockets.push(t);

    t.send("conversation.active", { conversation_id: conv });
    t.send("message.typing", { conversation_id: conv, is_typing: true });
    await w.waitFor((f) => f.type === "conversation.user_active" && f.data.user_id === typist.id, 5000);
    await w.waitFor((f) => f.type === "message.typing" && f.data.user_id === typist.id && f.data.is_typing === true, 5000);
    const killedAt = Date.now();
    await victim.stop("SIGKILL");

    const ended = await w.waitFor((f) => f.type === "message.typing" && f.data.user_id === typist.id && f.data.is_typing === false, 5000);
    expect(ended.data).toEqual({ conversation_id: conv, user_id: typist.id, is_typing: false });
    expect(Date.now() - killedAt).toBeLessThan(4000); // by the user going offline, or the TTL (1 s) and its margin
    await w.waitFor((f) => f.type === "user.offline" && f.data.user_id === typist.id, 15_000);
    await w.waitFor((f) => f.type === "conversation.user_inactive" && f.data.user_id === typist.id, 2000);
    // Each ended once.
    await Bun.sleep(300);
    expect(w.all("message.typing").filter((f) => f.data.user_id === typist.id).map((f) => f.data.is_typing)).toEqual([true, false]);
    expect(w.all("conversation.user_inactive").filter((f) => f.data.user_id === typist.id)).toHaveLength(1);
  }, 40_000);

  test("a frame on NATS with a header nats.js cannot read (a foreign publisher) does not stop the node receiving: the next frame comes at once", async () => {
    const [typist, watcher] = [await cluster.user(0), await cluster.user(0)];
    const group = await cluster.api(0, "POST", "/api/conversations", typist.token, { type: "group", title: "g3", member_ids: [watcher.id] });
    const conv = group.body.id as string;
    const w = await cluster.ws(0, watcher.token);
    const t = await cluster.ws(1, typist.token);
    sockets.push(w, t);
    // A foreign publisher's frame, its header name holding a space (raw protocol: nats.js would refuse to send it).
    const subject = `${cluster.env.CLUSTER_NAME}.live.conv:${conv}`;
    const payload = frame("message.typing", { conversation_id: conv, user_id: typist.id, is_typing: false });
    const header = "NATS/1.0\r\nbad name: x\r\n\r\n";
    const sock = await Bun.connect({ hostname: "127.0.0.1", port: Number(new URL(NATS_TEST_URL).port), socket: { data() {} } });
    sock.write(`CONNECT {"verbose":false,"headers":true}\r\nHPUB ${subject} ${header.length} ${header.length + Buffer.byteLength(payload)}\r\n${header}${payload}\r\nPING\r\n`);
    await Bun.sleep(300);
    sock.end();
    t.send("message.typing", { conversation_id: conv, is_typing: true });
    await w.waitFor((f) => f.type === "message.typing" && f.data.user_id === typist.id && f.data.is_typing === true, 2000);
  }, 30_000);

  test("a user still online through another node: the active state the dead node announced ends once presence finds the node gone", async () => {
    const [user, watcher] = [await cluster.user(0), await cluster.user(0)];
    const group = await cluster.api(0, "POST", "/api/conversations", user.token, { type: "group", title: "g2", member_ids: [watcher.id] });
    expect(group.status).toBe(201);
    const conv = group.body.id as string;
    const w = await cluster.ws(0, watcher.token);
    const stays = await cluster.ws(0, user.token); // the user's other device, on a node that lives
    sockets.push(w, stays);
    const victim = await cluster.node();
    cluster.nodes.push(victim);
    const gone = await cluster.ws(cluster.nodes.length - 1, user.token);
    sockets.push(gone);
    gone.send("conversation.active", { conversation_id: conv });
    await w.waitFor((f) => f.type === "conversation.user_active" && f.data.user_id === user.id, 5000);
    const killedAt = Date.now();
    await victim.stop("SIGKILL");
    const ended = await w.waitFor((f) => f.type === "conversation.user_inactive" && f.data.user_id === user.id, 10_000);
    expect(ended.data).toEqual({ conversation_id: conv, user_id: user.id });
    // HEARTBEAT_INTERVAL_MS is 1 s here: the node is settled within two, then missing from the live nodes for one (and margin for a busy machine).
    expect(Date.now() - killedAt).toBeLessThan(7000);
    await Bun.sleep(1500);
    expect(w.all("conversation.user_inactive").filter((f) => f.data.user_id === user.id)).toHaveLength(1);
    expect(w.all("user.offline").filter((f) => f.data.user_id === user.id)).toEqual([]);
  }, 40_000);
});

describe.skipIf(!ready)("active state across nodes", () => {
  test("active is the user's across nodes: a tab on one node leaving the conversation, while a tab on the other still shows it, leaves them active; the last one leaving ends it", async () => {
    const [user, watcher] = [await cluster.user(0), await cluster.user(0)];
    const group = await cluster.api(0, "POST", "/api/conversations", user.token, { type: "group", title: "two tabs", member_ids: [watcher.id] });
    const conv = group.body.id as string;
    const [w0, w1, tab0, tab1] = [await cluster.ws(0, watcher.token), await cluster.ws(1, watcher.token), await cluster.ws(0, user.token), await cluster.ws(1, user.token)];
    sockets.push(w0, w1, tab0, tab1);
    const last = (w: TestSocket) => w.frames.filter((f) => f.type.startsWith("conversation.user_") && f.data.user_id === user.id).at(-1)?.type;
    tab0.send("conversation.active", { conversation_id: conv });
    for (const w of [w0, w1]) await w.waitFor((f) => f.type === "conversation.user_active" && f.data.user_id === user.id, 5000);
    tab1.send("conversation.active", { conversation_id: conv });
    await Bun.sleep(300);
    // The tab on node 0 moves away: the one on node 1 still shows the conversation.
    tab0.send("conversation.active", { conversation_id: null });
    await Bun.sleep(500);
    // Before, both watchers were left with user_inactive until the user's next switch.
    expect([last(w0), last(w1)]).toEqual(["conversation.user_active", "conversation.user_active"]);
    // Node 1's own watcher was never told otherwise.
    expect(w1.all("conversation.user_inactive").filter((f) => f.data.user_id === user.id)).toEqual([]);
    tab1.send("conversation.active", { conversation_id: null });
    for (const w of [w0, w1]) await w.waitFor((f) => f.type === "conversation.user_inactive" && f.data.user_id === user.id, 5000, w.frames.length - 1);
    await Bun.sleep(500);
    expect([last(w0), last(w1)]).toEqual(["conversation.user_inactive", "conversation.user_inactive"]);
  }, 40_000);
});
