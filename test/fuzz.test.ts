/**
 * The seeded fuzzer, small (issue #19): every REST route and every client frame type,
 * mutated, against a real server. The long run is `bun run fuzz -- --ops 200000 --seed N`.
 */
import { expect, test } from "bun:test";
import { fuzz } from "./fuzz/run";
import { FRAME_TEMPLATES, missingTemplates, routesOf } from "./fuzz/targets";
import { startServer } from "./helpers";
import { Rng } from "./fuzz/rng";

let routes: string[] = [];
test("every route and every frame type has a fuzz template", async () => {
  const s = await startServer();
  try {
    expect(missingTemplates(s)).toEqual([]);
    routes = routesOf(s).filter((k) => !k.startsWith("WS "));
  } finally {
    await s.stop();
  }
});

test("the PRNG is deterministic", () => {
  const draw = (seed: number) => { const r = new Rng(seed); return Array.from({ length: 5 }, () => r.int(1000)); };
  expect(draw(7)).toEqual(draw(7));
  expect(draw(7)).not.toEqual(draw(8));
});

test("3,000 mutated requests and frames (seed 19): no 5xx, no internal error, nothing reached, database intact", async () => {
  const summary = await fuzz({ seed: 19, ops: 3000 });
  expect(summary.failures).toEqual([]);
  expect(summary.failureCount).toBe(0);
  expect(summary.integrity).toBe("ok");
  // The templates are valid often enough to reach past validation into the services.
  expect(summary.successRate).toBeGreaterThan(0.2);
  // Every door was tried.
  const untried = [...routes, ...Object.keys(FRAME_TEMPLATES).map((t) => `frame ${t}`), "upgrade"].filter((k) => !summary.targets[k]);
  expect(untried).toEqual([]);
}, 120_000);
