/**
 * The limits seam (src/platform/limits.ts): budgets and login failure counts that hold
 * across nodes, on the machine's Redis: two instances with their own connections stand for
 * two nodes. The in-memory implementation's own behaviour is in test/lib.test.ts and
 * test/limits.test.ts (through the app).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { AppError } from "../src/errors";
import { redisLimits } from "../src/platform/redis/limits";
import { memoryLimits } from "../src/platform/memory/limits";
import { REDIS_TEST_URL as REDIS_URL, dropKeys, servicesUp, uniquePrefix } from "./services";

const up = await servicesUp({ Redis: REDIS_URL }, "Redis limits tests");

describe("memoryLimits", () => {
  test("a failure counter's attempt counts up front and refuses, without counting, past the limit", () => {
    const f = memoryLimits.failures("x", 2, 60_000);
    expect(f.attempt("k")).toBe(0);
    expect(f.attempt("k")).toBe(0);
    expect(f.attempt("k")).toBeGreaterThan(59_000);
    f.forgive("k");
    expect(f.attempt("k")).toBe(0);
    f.reset("k");
    expect(f.attempt("k")).toBe(0);
  });
});

describe.skipIf(!up)("redisLimits (two nodes on one Redis)", () => {
  const prefix = uniquePrefix("limits") + ":";
  const clients = [new Bun.RedisClient(REDIS_URL), new Bun.RedisClient(REDIS_URL)];
  const [A, B] = clients.map((c) => redisLimits(c, prefix));
  afterAll(async () => {
    for (const c of clients) c.close();
    await dropKeys(prefix);
  });

  test("a budget holds across nodes: its capacity in all, then 429 with the wait for one token", async () => {
    const a = A!.bucket("sends", 10, 60); // a token a second
    const b = B!.bucket("sends", 10, 60);
    const waits = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).take("user-1")));
    expect(waits.filter((w) => w === 0).length).toBe(10);
    for (const w of waits.filter((w) => w > 0)) expect(w).toBeGreaterThan(0), expect(w).toBeLessThanOrEqual(1000);
    const refused = await Promise.resolve(b.spend("user-1", "slow down")).catch((e) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe("rate_limited");
    expect((refused as AppError).retryAfterMs).toBeGreaterThan(0);
    // Other keys and other kinds of budget are apart.
    expect(await a.take("user-2")).toBe(0);
    expect(await A!.bucket("writes", 10, 60).take("user-1")).toBe(0);
  });

  test("a budget refills at its rate", async () => {
    const a = A!.bucket("fast", 2, 600); // a token every 100 ms
    const b = B!.bucket("fast", 2, 600);
    expect(await a.take("k")).toBe(0);
    expect(await b.take("k")).toBe(0);
    const wait = await a.take("k");
    expect(wait).toBeGreaterThan(0);
    await Bun.sleep(wait + 20);
    expect(await b.take("k")).toBe(0);
    expect(await a.take("k")).toBeGreaterThan(0);
  });

  test("login failures count across nodes; forgive and reset work on either", async () => {
    const a = A!.failures("login-user", 3, 60_000);
    const b = B!.failures("login-user", 3, 60_000);
    const attempts = await Promise.all([a.attempt("alice"), b.attempt("alice"), a.attempt("alice"), b.attempt("alice"), a.attempt("alice")]);
    expect(attempts.filter((w) => w === 0).length).toBe(3);
    for (const w of attempts.filter((w) => w > 0)) expect(w).toBeGreaterThan(59_000);
    await b.forgive("alice");
    expect(await a.attempt("alice")).toBe(0);
    expect(await b.attempt("alice")).toBeGreaterThan(0);
    await a.reset("alice");
    expect(await b.attempt("alice")).toBe(0);
  });

  test("a failure window ends after its length", async () => {
    const a = A!.failures("short", 1, 150);
    const b = B!.failures("short", 1, 150);
    expect(await a.attempt("k")).toBe(0);
    expect(await b.attempt("k")).toBeGreaterThan(0);
    await Bun.sleep(200);
    expect(await b.attempt("k")).toBe(0);
  });
});
