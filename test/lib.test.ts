import { describe, expect, test } from "bun:test";
import { activityKey, seedActivity } from "../src/lib/time";
import { TokenBucket, addressKey } from "../src/lib/rate-limit";
import { FailureWindow } from "../src/platform/memory/limits";
import { drive, wait } from "../src/lib/awaitable";

describe("activityKey", () => {
  test("never repeats or goes back, so a later change always sorts first", () => {
    const base = Date.now() + 10_000_000;
    expect(activityKey(base)).toBe(base * 1000);
    expect(activityKey(base)).toBe(base * 1000 + 1); // same instant
    expect(activityKey(base - 500)).toBe(base * 1000 + 2); // clock stepped back
    expect(activityKey(base + 100)).toBe((base + 100) * 1000);
    // After a restart it continues from what is stored.
    seedActivity((base + 5000) * 1000 + 7);
    expect(activityKey(base + 200)).toBe((base + 5000) * 1000 + 8);
  });
});

describe("TokenBucket", () => {
  test("a burst of capacity, then a refill at the given rate", () => {
    const b = new TokenBucket(3, 60, 0); // one token a second
    expect([b.take(0), b.take(0), b.take(0)]).toEqual([0, 0, 0]);
    expect(b.take(0)).toBe(1000);
    expect(b.take(500)).toBe(500);
    expect(b.take(1000)).toBe(0);
    expect(b.isFull(1000)).toBe(false);
    expect(b.isFull(4000)).toBe(true);
  });
});

describe("FailureWindow", () => {
  test("blocks past the limit until the window ends; forgive takes one back", () => {
    const w = new FailureWindow(2, 1000);
    w.fail("k", 0);
    w.fail("k", 10);
    expect(w.blockedFor("k", 20)).toBe(980);
    w.forgive("k");
    expect(w.blockedFor("k", 20)).toBe(0);
    w.fail("k", 30);
    expect(w.blockedFor("k", 1001)).toBe(0);
  });
});

describe("addressKey", () => {
  test.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["2001:db8:aa:bb:1:2:3:4", "2001:db8:aa:bb::/64"],
    ["2001:db8:aa:bb::9", "2001:db8:aa:bb::/64"],
    ["2001:DB8:00AA:bb:ffff::1%eth0", "2001:db8:aa:bb::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
  ])("%s → %s (an IPv6 host by its /64)", (ip, key) => {
    expect(addressKey(ip)).toBe(key);
  });
});

describe("drive", () => {
  function* steps(log: string[], a: unknown, b: unknown): Generator<unknown, string, unknown> {
    const x = yield* wait(a as number | Promise<number>);
    log.push(`x=${x}`);
    try {
      const y = yield* wait(b as number | Promise<number>);
      log.push(`y=${y}`);
      return `${x + y}`;
    } catch (e) {
      log.push(`caught ${(e as Error).message}`);
      return "recovered";
    }
  }

  test("runs to the end synchronously while every step answers with a value", () => {
    const log: string[] = [];
    const r = drive(steps(log, 1, 2));
    // Not a promise: a socket's whole opening happens inside Bun's open handler on SQLite.
    expect(r).toBe("3");
    expect(log).toEqual(["x=1", "y=2"]);
  });

  test("awaits the promises, and throws a rejection into the generator like await", async () => {
    const log: string[] = [];
    const r = drive(steps(log, Promise.resolve(1), Promise.reject(new Error("boom"))));
    expect(r).toBeInstanceOf(Promise);
    expect(log).toEqual([]);
    expect(await r).toBe("recovered");
    expect(log).toEqual(["x=1", "caught boom"]);
    expect(await drive(steps([], 4, Promise.resolve(5)))).toBe("9");
  });

  test("an error the generator does not catch comes out as from a function, or a rejected promise", async () => {
    function* fails(v: unknown): Generator<unknown, never, unknown> {
      yield* wait(v);
      throw new Error("nope");
    }
    expect(() => drive(fails(1))).toThrow("nope");
    await expect(drive(fails(Promise.resolve(1)))).rejects.toThrow("nope");
  });
});
