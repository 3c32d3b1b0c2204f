/**
 * The presence seam (src/platform/presence.ts), the same cases against each implementation
 * (test/platform-backends.ts): in memory (one node), and on Redis and PostgreSQL with several
 * nodes, each with its own connections, one of them a real process killed with SIGKILL.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Presence } from "../src/platform/presence";
import { backends, useBackend } from "./platform-backends";
import { tcpRelay } from "./tcp-relay";
import { PG_ADMIN_URL, REDIS_TEST_URL } from "./services";

type Offline = [userId: string, announced: boolean];
const offlineOf = (p: Presence) => {
  const seen: Offline[] = [];
  p.onOffline((u, announced) => seen.push([u, announced]));
  return seen;
};

const until = async (check: () => boolean | Promise<boolean>, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(5);
  }
  return true;
};

// Child processes and services on a busy machine: more than bun's 5 s (bunfig's `timeout` is not read).
setDefaultTimeout(30_000);

const all = await backends("presence tests");
const shared = all.filter((b) => b.shared);

describe.each(all.filter((b) => b.up).map((b) => [b.name, b] as const))("one node: %s", (_name, b) => {
  useBackend(b);

  test("first and more sockets, the cap, the grace period, offline once and only when announced", async () => {
    const p = b.presence("A", { graceMs: 100 });
    const gone = offlineOf(p);
    expect(await p.connect("u", 2)).toBe("first");
    expect(await p.connect("u", 2)).toBe("more");
    expect(await p.connect("u", 2)).toBe("full");
    expect(await p.connections("u")).toBe(2);
    await p.announced("u");
    p.disconnect("u");
    p.disconnect("u");
    expect(await p.online(["u", "v"])).toEqual([true, false]); // within the grace period
    expect(await p.connect("u", 2)).toBe("more"); // a reload: still online, not announced again
    p.disconnect("u");
    expect(await until(() => gone.length === 1)).toBe(true);
    expect(gone).toEqual([["u", true]]);
    expect(await p.online(["u"])).toEqual([false]);
    expect(await p.connections("u")).toBe(0);
    // Closed before it was announced: offline, with nothing to take back.
    expect(await p.connect("w", 2)).toBe("first");
    p.disconnect("w");
    expect(await until(() => gone.length === 2)).toBe(true);
    expect(gone).toEqual([["u", true], ["w", false]]);
    expect([...p.localUsers()]).toEqual([]);
  });
});

describe.each(shared.map((b) => [b.name, b] as const))("several nodes on %s", (name, b) => {
  if (!b.up) return void test.skip(`${name} is not reachable`, () => {});
  useBackend(b);

  test("a user is online while any node holds a socket; offline once, announced by the node of the last socket", async () => {
    const A = b.presence("A");
    const B = b.presence("B");
    const goneA = offlineOf(A);
    const goneB = offlineOf(B);
    expect(await A.connect("u", 3)).toBe("first");
    expect(await B.connect("u", 3)).toBe("more");
    expect(await B.connect("u", 3)).toBe("more");
    expect(await A.connect("u", 3)).toBe("full"); // the cap holds across nodes
    expect(await B.connections("u")).toBe(3);
    A.announced("u");
    A.disconnect("u");
    await Bun.sleep(50);
    expect(await B.online(["u", "nobody"])).toEqual([true, false]);
    B.disconnect("u");
    B.disconnect("u");
    expect(await until(() => goneB.length === 1)).toBe(true);
    await Bun.sleep(50);
    expect(goneB).toEqual([["u", true]]);
    expect(goneA).toEqual([]);
    expect(await A.online(["u"])).toEqual([false]);
    expect(await A.connections("u")).toBe(0);
  });

  test("a reconnect on another node within the grace period keeps the user online, without a second announcement", async () => {
    // A grace of 1 s: at 150 ms, two PostgreSQL round trips on a loaded CI machine outlasted it.
    const graceMs = 1000;
    const A = b.presence("A", { graceMs });
    const B = b.presence("B", { graceMs });
    const gone = [A, B].map(offlineOf);
    expect(await A.connect("u", 5)).toBe("first");
    A.announced("u");
    A.disconnect("u");
    await Bun.sleep(30);
    expect(await B.online(["u"])).toEqual([true]); // in the grace period
    expect(await B.connect("u", 5)).toBe("more"); // a reload onto another node
    await Bun.sleep(graceMs + 100); // A's grace timer has fired: it must not take the user offline
    expect(gone.flat()).toEqual([]);
    expect(await A.online(["u"])).toEqual([true]);
    B.disconnect("u");
    expect(await until(() => gone[1]!.length === 1)).toBe(true);
    expect(gone).toEqual([[], [["u", true]]]);
  });

  test("connects racing on three nodes: one first arrival, and the cap exactly", async () => {
    const nodes = [b.presence("A"), b.presence("B"), b.presence("C")];
    const arrivals = await Promise.all(Array.from({ length: 30 }, (_, i) => nodes[i % 3]!.connect("u", 20)));
    expect(arrivals.filter((a) => a === "first").length).toBe(1);
    expect(arrivals.filter((a) => a === "more").length).toBe(19);
    expect(arrivals.filter((a) => a === "full").length).toBe(10);
    expect(await nodes[0]!.connections("u")).toBe(20);
  });

  test("connects and disconnects racing on two nodes keep the count exact; the last close anywhere is offline once", async () => {
    const A = b.presence("A");
    const B = b.presence("B");
    const gone = [A, B].map(offlineOf);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? A : B).connect("u", 100)));
    await A.announced("u");
    // A's sockets close while B opens more, and reloads on both (a close and an open at once).
    for (let i = 0; i < 10; i++) A.disconnect("u");
    const more = await Promise.all([...Array.from({ length: 5 }, () => B.connect("u", 100)), A.connect("u", 100), B.connect("u", 100)]);
    expect(more.every((a) => a === "more")).toBe(true);
    A.disconnect("u");
    B.disconnect("u");
    expect(await until(async () => (await A.connections("u")) === 15)).toBe(true);
    await Bun.sleep(100); // and not fewer once every disconnect has landed
    expect(await A.connections("u")).toBe(15);
    expect(gone.flat()).toEqual([]);
    for (let i = 0; i < 15; i++) B.disconnect("u");
    expect(await until(() => gone.flat().length === 1)).toBe(true);
    await Bun.sleep(100);
    expect(gone).toEqual([[], [["u", true]]]);
    expect(await A.online(["u"])).toEqual([false]);
  });

  test("a disconnect the store never got (the node cut off from it for a moment, the store's state kept): the next beat writes the node's counts again, and the user goes offline, announced once", async () => {
    const serviceUrl = name === "redis" ? REDIS_TEST_URL : PG_ADMIN_URL;
    const relay = tcpRelay({ hostname: "127.0.0.1", port: Number(new URL(serviceUrl).port) });
    try {
      // An interval long enough that the cut does not make A dead (that path writes everything back anyway).
      const A = b.presence("A", { heartbeatIntervalMs: 3000, via: relay.through });
      const B = b.presence("B", { heartbeatIntervalMs: 3000 });
      const gone = [A, B].map(offlineOf);
      expect(await A.connect("u", 5)).toBe("first");
      await A.announced("u");
      expect(await A.connect("stays", 5)).toBe("first");
      await A.announced("stays");
      relay.cut();
      A.disconnect("u"); // fails: the store still counts u's socket
      await Bun.sleep(300);
      relay.restore();
      expect(await until(() => gone.flat().length > 0, 6000)).toBe(true);
      await Bun.sleep(500);
      expect(gone.flat()).toEqual([["u", true]]);
      expect(await B.online(["u", "stays"])).toEqual([false, true]);
      expect(await B.connections("stays")).toBe(1);
    } finally {
      relay.close();
    }
  });

  test("kill -9 of a node: its users go offline for the others within 2 × HEARTBEAT_INTERVAL_MS, announced once between the survivors; it leaves the live nodes", async () => {
    const interval = 1000;
    const B = b.presence("B", { heartbeatIntervalMs: interval });
    const C = b.presence("C", { heartbeatIntervalMs: interval });
    const gone = [B, C].map(offlineOf);
    // A user held by a survivor too stays online; one held only by the killed node goes offline.
    expect(await B.connect("both", 5)).toBe("first");
    await B.announced("both");
    const child = Bun.spawn([process.execPath, "test/presence-node.ts"], {
      env: { ...process.env, ...b.childEnv(), NODE_ID: "A", USER_ID: "victim", INTERVAL_MS: String(interval) },
      stdout: "pipe",
      stderr: "inherit",
    });
    try {
      const first = await child.stdout.getReader().read();
      expect(new TextDecoder().decode(first.value)).toContain("ready");
      expect(await C.connect("both", 5)).toBe("more");
      expect(await B.online(["victim"])).toEqual([true]);
      await Bun.sleep(interval / 2); // a few heartbeats of A
      expect((await B.liveNodes!()).sort()).toEqual(["A", "B", "C"]);
    } finally {
      child.kill("SIGKILL");
    }
    const killedAt = Date.now();
    await child.exited;
    expect(await until(() => gone.flat().length > 0, 3 * interval)).toBe(true);
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThanOrEqual(2 * interval);
    await Bun.sleep(interval); // both survivors beat again: neither announces it a second time
    expect(gone.flat()).toEqual([["victim", true]]);
    // The hub ends what A announced once it is not among the live nodes (test/cluster-indicators.test.ts).
    expect((await C.liveNodes!()).sort()).toEqual(["B", "C"]);
    expect(await B.online(["victim", "both"])).toEqual([false, true]);
    expect(await C.connections("both")).toBe(2);
    console.log(`presence (${name}): a killed node's user went offline after ${tookMs} ms (interval ${interval} ms)`);
  });

  test("a node that stops gives its users the grace period: those who reconnect on another node meanwhile stay online, unannounced again; the others, and those in a grace period there, go offline at the first beat after it", async () => {
    const graceMs = 400;
    const A = b.presence("A", { heartbeatIntervalMs: 1000, graceMs });
    const B = b.presence("B", { heartbeatIntervalMs: 1000 });
    const gone = offlineOf(B);
    for (const u of ["u", "v", "w"]) {
      expect(await A.connect(u, 5)).toBe("first");
      await A.announced(u);
    }
    // w's last socket closed on A: A's grace timer runs, and goes with A.
    A.disconnect("w");
    await Bun.sleep(50);
    expect(await B.online(["w"])).toEqual([true]);
    const stoppedAt = Date.now();
    await A.stop();
    // v's client reconnects to B (the shutdown's 1001 asks it to): one more socket, not a first.
    expect(await B.connect("v", 5)).toBe("more");
    await Bun.sleep(graceMs / 2);
    expect(gone).toEqual([]);
    expect(await B.online(["u", "v", "w"])).toEqual([true, true, true]);
    expect(await until(() => gone.length === 2, 3000)).toBe(true);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(graceMs);
    expect(Date.now() - stoppedAt).toBeLessThan(graceMs + 700); // a beat is every interval / 3
    expect(gone.sort()).toEqual([["u", true], ["w", true]]);
    expect(await B.online(["v"])).toEqual([true]);
    await Bun.sleep(400);
    expect(gone).toHaveLength(2);
  });

  // A beat that finds its own record gone writes its users back; if that write failed, the
  // dead node's users it had just taken offline (no other node will) were never announced.
  test("a beat that takes a stopped node's users offline announces them even when writing its own users back fails", async () => {
    const A = b.presence("A", { heartbeatIntervalMs: 60_000 }); // beats only when told here
    const B = b.presence("B", { heartbeatIntervalMs: 60_000 });
    const gone = offlineOf(B);
    expect(await A.connect("u", 5)).toBe("first");
    await A.announced("u");
    expect(await B.connect("mine", 5)).toBe("first");
    await B.heartbeat();
    await A.stop(); // no grace: marked dead from now, so the next beat of B takes u offline
    await Bun.sleep(10);
    // B's next beat finds its own record gone (as after a restart of the store), and the
    // store fails again as B writes its users back.
    const store = B as unknown as { storeBeat(): Promise<{ fresh: boolean; offline: string[] }>; storeReregister(users: unknown): Promise<void> };
    const beat = store.storeBeat.bind(B);
    store.storeBeat = async () => ({ ...(await beat()), fresh: true });
    store.storeReregister = async () => {
      throw new Error("the store went away again");
    };
    await B.heartbeat();
    expect(gone).toEqual([["u", true]]);
  });

  test("the shared state emptied (a restart of the service): each node writes its users back at its next beat", async () => {
    const A = b.presence("A", { heartbeatIntervalMs: 60_000 }); // beats only when told here
    expect(await A.connect("u", 5)).toBe("first");
    await A.announced("u");
    await A.heartbeat();
    await b.wipe();
    expect(await A.online(["u"])).toEqual([false]);
    await A.heartbeat();
    expect(await A.online(["u"])).toEqual([true]);
    expect(await A.connections("u")).toBe(1);
    // Counted right from there: the next connect is one more, the last close offline.
    const gone = offlineOf(A);
    expect(await A.connect("u", 5)).toBe("more");
    A.disconnect("u");
    A.disconnect("u");
    expect(await until(() => gone.length === 1)).toBe(true);
    expect(gone).toEqual([["u", true]]);
  });
});
