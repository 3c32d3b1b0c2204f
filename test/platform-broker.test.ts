/**
 * The broker seam (src/platform/broker.ts): two "nodes" in this process, each a Bun server
 * with real WebSocket clients, joined by the NATS broker on the machine's nats-server (the
 * in-memory broker alone for one node; a nats-server of the test's own for the restart). A node delivers through Bun's topics; a frame from
 * one node reaches the sockets of the others once, and its own once. A node's screen sees
 * each frame from the others before its sockets do; gaps (frames possibly lost) are
 * reported when a node's connection is made (again), to it and to the others.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server, ServerWebSocket } from "bun";
import type { Broker } from "../src/platform/broker";
import { MemoryBroker } from "../src/platform/memory/broker";
import { NatsBroker } from "../src/platform/nats/broker";
import { NATS_TEST_URL as NATS_URL, servicesUp, uniquePrefix } from "./services";
import { ownNats, ownServicesReady } from "./own-services";

/** A node: a Bun server whose sockets subscribe to the topics in their URL, and its broker. */
class Node {
  server: Server<{ topics: string[] }>;
  sockets: ServerWebSocket<{ topics: string[] }>[] = [];
  constructor(public broker: Broker) {
    this.server = Bun.serve<{ topics: string[] }, never>({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req, server) => (server.upgrade(req, { data: { topics: new URL(req.url).searchParams.getAll("t") } }) ? undefined : new Response("no", { status: 400 })),
      websocket: {
        open: (ws) => {
          for (const t of ws.data.topics) ws.subscribe(t);
          this.sockets.push(ws);
        },
        message() {},
      },
    });
    broker.attach(this.server as never);
  }
  /** A client subscribed to `topics`; its received frames collect in `got`. */
  async client(...topics: string[]) {
    const got: string[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${this.server.port}/?${topics.map((t) => `t=${t}`).join("&")}`);
    ws.onmessage = (e) => got.push(String(e.data));
    const before = this.sockets.length;
    await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)));
    while (this.sockets.length === before) await Bun.sleep(1);
    return { ws, got, server: this.sockets[this.sockets.length - 1]! };
  }
  async stop() {
    await this.broker.close();
    this.server.stop(true);
  }
}

const until = async (check: () => boolean, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(5);
  }
  return true;
};

describe("MemoryBroker (one node)", () => {
  test("publishes to the topic's sockets; `from` does not hear itself; wake-ups and frames for elsewhere go nowhere; no gaps", async () => {
    const node = new Node(new MemoryBroker());
    const a = await node.client("conv:1");
    const b = await node.client("conv:1");
    const other = await node.client("conv:2");
    let woken = 0;
    let gaps = 0;
    node.broker.onWake(() => woken++);
    node.broker.onGap(() => gaps++);
    node.broker.wake(7);
    node.broker.publishElsewhere("conv:1", "elsewhere");
    node.broker.publish("conv:1", "one");
    node.broker.publish("conv:1", "two", a.server);
    expect(await until(() => b.got.length === 2)).toBe(true);
    await Bun.sleep(50);
    expect(a.got).toEqual(["one"]);
    expect(b.got).toEqual(["one", "two"]);
    expect(other.got).toEqual([]);
    expect(woken).toBe(0);
    expect(gaps).toBe(0);
    await node.stop();
  });
});

const up = await servicesUp({ NATS: NATS_URL }, "NATS broker tests");

describe.skipIf(!up)("NatsBroker (two nodes on one nats-server)", () => {
  let prefix: string;
  let A: Node;
  let B: Node;
  beforeAll(async () => {
    prefix = uniquePrefix("broker");
    A = new Node(new NatsBroker(NATS_URL, { prefix }));
    B = new Node(new NatsBroker(NATS_URL, { prefix }));
    await Promise.all([A.broker.ready(), B.broker.ready()]);
    // ready() is the connection; its subscriptions reach the server just after: probe until
    // frames cross both ways (the first test once lost its first frame to that race).
    const [pa, pb] = [await A.client("probe"), await B.client("probe")];
    await until(() => {
      A.broker.publish("probe", "a");
      B.broker.publish("probe", "b");
      return pa.got.includes("b") && pb.got.includes("a");
    }, 10_000);
    pa.ws.close();
    pb.ws.close();
  });
  afterAll(async () => {
    await A?.stop();
    await B?.stop();
  });

  test("a frame reaches the topic's sockets on both nodes exactly once, and no other topic", async () => {
    const a1 = await A.client("conv:x");
    const a2 = await A.client("conv:x");
    const b1 = await B.client("conv:x", "status:u");
    const b2 = await B.client("conv:y");
    A.broker.publish("conv:x", '{"type":"message.typing","n":1}', a1.server);
    B.broker.publish("status:u", '{"type":"user.online"}');
    A.broker.publish("conv:x", '{"type":"message.typing","n":2}');
    expect(await until(() => b1.got.length === 3 && a2.got.length === 2)).toBe(true);
    await Bun.sleep(150); // anything doubled would have come by now
    expect(a1.got).toEqual(['{"type":"message.typing","n":2}']); // the sender's socket skipped; no echo from NATS
    expect(a2.got).toEqual(['{"type":"message.typing","n":1}', '{"type":"message.typing","n":2}']);
    expect(b1.got.toSorted()).toEqual(['{"type":"message.typing","n":1}', '{"type":"message.typing","n":2}', '{"type":"user.online"}']);
    expect(b2.got).toEqual([]);
    for (const c of [a1, a2, b1, b2]) c.ws.close();
  });

  test("frames from one node keep their order on the others", async () => {
    const b = await B.client("conv:order");
    for (let i = 0; i < 500; i++) A.broker.publish("conv:order", String(i));
    expect(await until(() => b.got.length === 500)).toBe(true);
    expect(b.got).toEqual(Array.from({ length: 500 }, (_, i) => String(i)));
    b.ws.close();
  });

  test("a wake-up reaches the other nodes, not the one that sent it", async () => {
    const heardA: number[] = [];
    const heardB: number[] = [];
    A.broker.onWake((seq) => heardA.push(seq));
    B.broker.onWake((seq) => heardB.push(seq));
    A.broker.wake(41);
    A.broker.wake(42);
    expect(await until(() => heardB.length === 2)).toBe(true);
    await Bun.sleep(100);
    expect(heardB).toEqual([41, 42]);
    expect(heardA).toEqual([]);
  });

  test("publishElsewhere reaches the other nodes' sockets, not this node's; a node's screen sees each frame from another and may keep it from its sockets", async () => {
    const a = await A.client("status:s");
    const b = await B.client("status:s", "conv:s");
    const screened: string[] = [];
    B.broker.screen((topic, text) => (screened.push(`${topic} ${text}`), text !== "kept back"));
    try {
      A.broker.publishElsewhere("status:s", "elsewhere");
      A.broker.publish("status:s", "kept back");
      A.broker.publish("conv:s", "passes");
      B.broker.publish("status:s", "from B"); // its own: not screened
      expect(await until(() => b.got.length === 3 && a.got.length === 2)).toBe(true);
      await Bun.sleep(150);
      expect(b.got.toSorted()).toEqual(["elsewhere", "from B", "passes"]);
      expect(a.got).toEqual(["kept back", "from B"]);
      expect(screened).toEqual(["status:s elsewhere", "status:s kept back", "conv:s passes"]);
    } finally {
      B.broker.screen(() => true);
      a.ws.close();
      b.ws.close();
    }
  });

  test("a node whose connection is made tells the others of a gap, and itself; gapCheckMs reports one periodically", async () => {
    let gapsA = 0;
    let gapsB = 0;
    let gapsC = 0;
    A.broker.onGap(() => gapsA++);
    B.broker.onGap(() => gapsB++);
    const C = new Node(new NatsBroker(NATS_URL, { prefix, gapCheckMs: 100 }));
    C.broker.onGap(() => gapsC++);
    try {
      await C.broker.ready();
      expect(await until(() => gapsA === 1 && gapsB === 1)).toBe(true);
      // Its own connection, then every 100 ms.
      expect(await until(() => gapsC >= 4)).toBe(true);
      await Bun.sleep(300);
      expect([gapsA, gapsB]).toEqual([1, 1]); // C's periodic gaps are its own
    } finally {
      await C.stop();
    }
  });

  test("the nodes of another cluster (prefix) hear nothing", async () => {
    const C = new Node(new NatsBroker(NATS_URL, { prefix: uniquePrefix("other") }));
    await C.broker.ready();
    const c = await C.client("conv:x");
    A.broker.publish("conv:x", "not for C");
    await Bun.sleep(200);
    expect(c.got).toEqual([]);
    c.ws.close();
    await C.stop();
  });
});

const ownUp = await ownServicesReady("NATS broker restart test", { nats: true });

describe.skipIf(!ownUp)("NatsBroker (two nodes on a nats-server of this test's own)", () => {
  test("a node started while NATS does not answer says so once, waits for it, and says when it is connected", async () => {
    const nats = await ownNats();
    await nats.kill();
    const said: { level: string; msg: string; server?: string }[] = [];
    const log = { warn: (o: { server?: string }, msg: string) => said.push({ level: "warn", msg, ...o }), info: (o: { server?: string }, msg: string) => said.push({ level: "info", msg, ...o }) };
    const broker = new NatsBroker(nats.url.replace("nats://", "nats://someone:secret@"), { prefix: uniquePrefix("late"), log: log as never, firstConnectWarnMs: 200 });
    try {
      expect(await until(() => said.length > 0)).toBe(true);
      expect(said).toEqual([{ level: "warn", msg: expect.stringContaining("NATS does not answer yet"), server: new URL(nats.url).host }]);
      expect(broker.connected()).toBe(false);
      await nats.start();
      await broker.ready();
      expect(broker.connected()).toBe(true);
      expect(said.map((s) => s.msg)).toEqual([expect.stringContaining("NATS does not answer yet"), "NATS connected"]);
      expect(JSON.stringify(said)).not.toContain("secret");
    } finally {
      await broker.close();
      await nats.dispose();
    }
  }, 30_000);

  test("nats-server killed and started again on its port: both nodes reconnect and deliver again", async () => {
    // Not the machine's nats-server: other test runs share it.
    const nats = await ownNats();
    const prefix = uniquePrefix("restart");
    const [A, B] = [new Node(new NatsBroker(nats.url, { prefix })), new Node(new NatsBroker(nats.url, { prefix }))];
    const gaps = [0, 0];
    A.broker.onGap(() => gaps[0]!++);
    B.broker.onGap(() => gaps[1]!++);
    try {
      await Promise.all([A.broker.ready(), B.broker.ready()]);
      const b = await B.client("conv:restart");
      expect(await until(() => gaps[0]! >= 1 && gaps[1]! >= 1)).toBe(true);
      await Bun.sleep(100);
      const before = [...gaps];
      await nats.kill();
      await Bun.sleep(300);
      await nats.start();
      // Each node's reconnect is a gap for it (and for the other, if it is connected by then).
      expect(await until(() => gaps[0]! > before[0]! && gaps[1]! > before[1]!, 15_000)).toBe(true);
      // Frames published while a node is still reconnecting may be lost (core NATS is at most
      // once): publish until one crosses, then check that delivery is whole again.
      const crossed = await until(() => {
        A.broker.publish("conv:restart", "probe");
        return b.got.length > 0;
      }, 15_000);
      expect(crossed).toBe(true);
      expect(A.broker.connected() && B.broker.connected()).toBe(true);
      await Bun.sleep(100);
      b.got.length = 0;
      for (let i = 0; i < 100; i++) A.broker.publish("conv:restart", String(i));
      expect(await until(() => b.got.length === 100)).toBe(true);
      expect(b.got).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
      b.ws.close();
    } finally {
      await A.stop();
      await B.stop();
      await nats.dispose();
    }
  }, 30_000);
});
