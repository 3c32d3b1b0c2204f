/**
 * The limits seam (src/platform/limits.ts): budgets and login failure counts, the same cases
 * against each implementation (test/platform-backends.ts). On Redis and PostgreSQL, two
 * instances with their own connections stand for two nodes and share every budget; in
 * memory one node serves both. The in-memory implementation is also tested through the app
 * (test/limits.test.ts) and test/lib.test.ts.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { AppError } from "../src/errors";
import type { pgLimits } from "../src/platform/postgres/limits";
import { backends, useBackend } from "./platform-backends";

// Child processes and services on a busy machine: more than bun's 5 s (bunfig's `timeout` is not read).
setDefaultTimeout(30_000);

const all = await backends("limits tests");

describe.each(all.map((b) => [b.name, b] as const))("limits: %s", (name, b) => {
  if (!b.up) return void test.skip(`${name} is not reachable`, () => {});
  useBackend(b);
  const [A, B] = [0, 1].map((i) => ({ bucket: (...a: [string, number, number]) => b.limits(i).bucket(...a), failures: (...a: [string, number, number]) => b.limits(i).failures(...a) }));

  test("a budget holds across nodes: its capacity in all, then 429 with the wait for one token", async () => {
    const a = A!.bucket("sends", 10, 60); // a token a second
    const c = B!.bucket("sends", 10, 60);
    const waits = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? a : c).take("user-1")));
    expect(waits.filter((w) => w === 0).length).toBe(10);
    for (const w of waits.filter((w) => w > 0)) expect(w).toBeGreaterThan(0), expect(w).toBeLessThanOrEqual(1000);
    const refused = await (async () => c.spend("user-1", "slow down"))().catch((e) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe("rate_limited");
    expect((refused as AppError).retryAfterMs).toBeGreaterThan(0);
    // Other keys and other kinds of budget are apart.
    expect(await a.take("user-2")).toBe(0);
    expect(await A!.bucket("writes", 10, 60).take("user-1")).toBe(0);
  });

  test("a budget refills at its rate", async () => {
    // A token every 400 ms: at 100 ms, a CI run under load (2026-12-03) took longer than a
    // token between the two last takes, and the second found the next token already there.
    const a = A!.bucket("fast", 2, 150);
    const c = B!.bucket("fast", 2, 150);
    await Promise.all([a.take("warm-up"), c.take("warm-up")]); // connections opened before the clock matters
    expect(await a.take("k")).toBe(0);
    expect(await c.take("k")).toBe(0);
    const wait = await a.take("k");
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(400);
    await Bun.sleep(wait + 20);
    expect(await c.take("k")).toBe(0);
    expect(await a.take("k")).toBeGreaterThan(0);
  });

  test("login failures count across nodes, up front; forgive and reset work on either", async () => {
    const a = A!.failures("login-user", 3, 60_000);
    const c = B!.failures("login-user", 3, 60_000);
    const attempts = await Promise.all([a.attempt("alice"), c.attempt("alice"), a.attempt("alice"), c.attempt("alice"), a.attempt("alice")]);
    expect(attempts.filter((w) => w === 0).length).toBe(3);
    for (const w of attempts.filter((w) => w > 0)) expect(w).toBeGreaterThan(59_000);
    await c.forgive("alice");
    expect(await a.attempt("alice")).toBe(0);
    expect(await c.attempt("alice")).toBeGreaterThan(0);
    await a.reset("alice");
    expect(await c.attempt("alice")).toBe(0);
    // Another kind and another key are apart.
    expect(await A!.failures("login-address", 3, 60_000).attempt("alice")).toBe(0);
    expect(await a.attempt("bob")).toBe(0);
  });

  test("a failure window ends after its length", async () => {
    const a = A!.failures("short", 1, 150);
    const c = B!.failures("short", 1, 150);
    await Promise.all([a.attempt("warm-up"), c.attempt("warm-up")]); // connections opened before the clock matters
    expect(await a.attempt("k")).toBe(0);
    const wait = await c.attempt("k");
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(150);
    await Bun.sleep(200);
    expect(await c.attempt("k")).toBe(0);
    expect(await a.attempt("k")).toBeGreaterThan(0);
  });
});

const pg = all.find((b) => b.name === "postgres")!;
describe.skipIf(!pg.up)("limits on PostgreSQL", () => {
  useBackend(pg);

  test("the sweep removes the buckets full again and the windows ended, and nothing else", async () => {
    const limits = pg.limits(0) as ReturnType<typeof pgLimits>;
    const quick = limits.bucket("quick", 1, 6000); // full again 10 ms after a take
    const slow = limits.bucket("slow", 5, 1); // a minute later
    const short = limits.failures("short", 5, 10);
    const long = limits.failures("long", 5, 60_000);
    for (const x of [quick, slow]) expect(await x.take("k")).toBe(0);
    for (const x of [short, long]) expect(await x.attempt("k")).toBe(0);
    await Bun.sleep(50);
    await limits.sweep();
    const left = async (table: string) => (await pg.query!(`SELECT kind FROM ${table} ORDER BY kind`)).map((r) => r.kind);
    expect(await left("limit_buckets")).toEqual(["slow"]);
    expect(await left("limit_failures")).toEqual(["long"]);
    // A swept key starts anew.
    expect(await quick.take("k")).toBe(0);
    expect(await short.attempt("k")).toBe(0);
  });
});
