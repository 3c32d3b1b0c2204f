/**
 * The presence seam (src/platform/presence.ts): the single-node implementation, and the
 * cluster one on the machine's Redis with several nodes, one of them a real process killed
 * with SIGKILL. Each test has its own key prefix.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { RedisClient } from "bun";
import type { Presence } from "../src/platform/presence";
import { MemoryPresence } from "../src/platform/memory/presence";
import { RedisPresence } from "../src/platform/redis/presence";
import { REDIS_TEST_URL as REDIS_URL, dropKeys, servicesUp, uniquePrefix as newPrefix } from "./services";

type Offline = [userId: string, announced: boolean];
const offlineOf = (p: Presence) => {
  const seen: Offline[] = [];
  p.onOffline((u, announced) => seen.push([u, announced]));
  return seen;
};

const until = async (check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(5);
  }
  return true;
};

describe("MemoryPresence (one node)", () => {
  test("first and more sockets, the cap, the grace period, offline once and only when announced", async () => {
    const p = new MemoryPresence(50);
    const gone = offlineOf(p);
    expect(p.connect("u", 2)).toBe("first");
    expect(p.connect("u", 2)).toBe("more");
    expect(p.connect("u", 2)).toBe("full");
    expect(p.connections("u")).toBe(2);
    p.announced("u");
    p.disconnect("u");
    p.disconnect("u");
    expect(p.online(["u", "v"])).toEqual([true, false]); // within the grace period
    expect(p.connect("u", 2)).toBe("more"); // a reload: still online, not announced again
    p.disconnect("u");
    await Bun.sleep(80);
    expect(gone).toEqual([["u", true]]);
    expect(p.online(["u"])).toEqual([false]);
    // Closed before it was announced: offline, with nothing to take back.
    expect(p.connect("w", 2)).toBe("first");
    p.disconnect("w");
    await Bun.sleep(80);
    expect(gone).toEqual([["u", true], ["w", false]]);
    await p.stop();
  });
});

const up = await servicesUp({ Redis: REDIS_URL }, "Redis presence tests");

describe.skipIf(!up)("RedisPresence (several nodes on one Redis)", () => {
  const opened: { redis: RedisClient; presence: RedisPresence }[] = [];
  const prefixes: string[] = [];
  const uniquePrefix = (name: string) => {
    prefixes.push(newPrefix(name));
    return prefixes.at(-1)!;
  };
  const node = (prefix: string, nodeId: string, o: { graceMs?: number; heartbeatIntervalMs?: number } = {}) => {
    const redis = new Bun.RedisClient(REDIS_URL);
    const presence = new RedisPresence(redis, { nodeId, prefix, graceMs: o.graceMs ?? 0, heartbeatIntervalMs: o.heartbeatIntervalMs ?? 1000 });
    opened.push({ redis, presence });
    return presence;
  };
  afterEach(async () => {
    for (const { redis, presence } of opened.splice(0)) {
      await presence.stop();
      redis.close();
    }
    for (const prefix of prefixes.splice(0)) await dropKeys(prefix);
  });

  test("a user is online while any node holds a socket; offline once, announced by the node of the last socket", async () => {
    const prefix = uniquePrefix("presence");
    const A = node(prefix, "A");
    const B = node(prefix, "B");
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
    const prefix = uniquePrefix("grace");
    const A = node(prefix, "A", { graceMs: 150 });
    const B = node(prefix, "B", { graceMs: 150 });
    const gone = [A, B].map(offlineOf);
    expect(await A.connect("u", 5)).toBe("first");
    A.announced("u");
    A.disconnect("u");
    await Bun.sleep(30);
    expect(await B.online(["u"])).toEqual([true]); // in the grace period
    expect(await B.connect("u", 5)).toBe("more"); // a reload onto another node
    await Bun.sleep(250); // A's grace timer has fired: it must not take the user offline
    expect(gone.flat()).toEqual([]);
    expect(await A.online(["u"])).toEqual([true]);
    B.disconnect("u");
    expect(await until(() => gone[1]!.length === 1)).toBe(true);
    expect(gone).toEqual([[], [["u", true]]]);
  });

  test("connects racing on three nodes: one first arrival, and the cap exactly", async () => {
    const prefix = uniquePrefix("race");
    const nodes = [node(prefix, "A"), node(prefix, "B"), node(prefix, "C")];
    const arrivals = await Promise.all(Array.from({ length: 30 }, (_, i) => nodes[i % 3]!.connect("u", 20)));
    expect(arrivals.filter((a) => a === "first").length).toBe(1);
    expect(arrivals.filter((a) => a === "more").length).toBe(19);
    expect(arrivals.filter((a) => a === "full").length).toBe(10);
    expect(await nodes[0]!.connections("u")).toBe(20);
  });

  test("kill -9 of a node: its users go offline for the others within 2 × HEARTBEAT_INTERVAL_MS", async () => {
    const prefix = uniquePrefix("kill");
    const interval = 1000;
    const B = node(prefix, "B", { heartbeatIntervalMs: interval });
    const gone = offlineOf(B);
    // A user held by both nodes stays online; one held only by the killed node goes offline.
    expect(await B.connect("both", 5)).toBe("first");
    B.announced("both");
    const child = Bun.spawn([process.execPath, "test/presence-node.ts"], {
      env: { ...process.env, REDIS_URL, PREFIX: prefix, NODE_ID: "A", USER_ID: "victim", INTERVAL_MS: String(interval) },
      stdout: "pipe",
      stderr: "inherit",
    });
    const reader = child.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("ready");
    expect(await B.online(["victim"])).toEqual([true]);
    await Bun.sleep(interval / 2); // a few heartbeats of A
    const killedAt = Date.now();
    child.kill("SIGKILL");
    await child.exited;
    expect(await until(() => gone.length > 0, 3 * interval)).toBe(true);
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThanOrEqual(2 * interval);
    expect(gone).toEqual([["victim", true]]);
    expect(await B.online(["victim", "both"])).toEqual([false, true]);
    console.log(`presence: a killed node's user went offline after ${tookMs} ms (interval ${interval} ms)`);
  });

  test("a node that stops takes its users offline at the next beat of another", async () => {
    const prefix = uniquePrefix("stop");
    const A = node(prefix, "A", { heartbeatIntervalMs: 1000 });
    const B = node(prefix, "B", { heartbeatIntervalMs: 1000 });
    const gone = offlineOf(B);
    expect(await A.connect("u", 5)).toBe("first");
    A.announced("u");
    const stoppedAt = Date.now();
    await A.stop();
    expect(await until(() => gone.length === 1, 2000)).toBe(true);
    expect(Date.now() - stoppedAt).toBeLessThan(700); // a beat is every interval / 3
    expect(gone).toEqual([["u", true]]);
  });

  test("Redis emptied (a restart without persistence): each node writes its users back at its next beat", async () => {
    const prefix = uniquePrefix("flush");
    const A = node(prefix, "A", { heartbeatIntervalMs: 1000 });
    expect(await A.connect("u", 5)).toBe("first");
    A.announced("u");
    await A.heartbeat();
    const redis = new Bun.RedisClient(REDIS_URL);
    const keys = (await redis.send("KEYS", [`${prefix}*`])) as string[];
    expect(keys.length).toBeGreaterThan(0);
    await redis.send("DEL", keys);
    redis.close();
    expect(await A.online(["u"])).toEqual([false]);
    await A.heartbeat();
    expect(await A.online(["u"])).toEqual([true]);
    expect(await A.connections("u")).toBe(1);
  });
});
