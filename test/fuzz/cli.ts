/**
 * `bun run fuzz -- --ops 200000 --seed 42`: the long fuzz run, for people. Prints progress
 * and a summary; exits 1 when anything failed. A failure names its seed and op number:
 * rerun with that seed (and at least that many ops) to reproduce it, then make the input
 * a regression test (test/strict.test.ts holds the first ones).
 */
import { fuzz, type Failure, type Summary } from "./run";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) {
    console.error(`--${name}: a whole number, got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  return v;
}

const ops = arg("ops", 20_000);
const seed = arg("seed", Math.floor(Math.random() * 2 ** 31));
const every = arg("progress", Math.max(1000, Math.round(ops / 20)));
console.log(`fuzz: ${ops} operations, seed ${seed}`);

const line = (done: number, s: Summary) =>
  `${String(done).padStart(String(ops).length)} ops  ${(s.ms / 1000).toFixed(1)} s  ${Math.round(done / (s.ms / 1000))} ops/s  ${(s.successRate * 100).toFixed(1)}% succeeded  ${s.failureCount} failures`;

const top = (bag: Record<string, number>) => Object.entries(bag).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(", ");

const printFailure = (f: Failure) => console.log(`\nFAILED op ${f.op} (${f.target}; ${f.mutations.join(", ") || "no mutation"}): ${f.problem}\n  input: ${JSON.stringify(f.input)}`);

function report(summary: Summary, interrupted: boolean) {
  console.log(`\n${line(summary.ops, summary)}${interrupted ? "  (interrupted)" : ""}`);
  console.log(`outcomes: ${top(summary.outcomes)}`);
  console.log(`mutations: ${top(summary.mutations)}`);
  console.log(`database: integrity_check ${summary.integrity}`);
  for (const f of summary.failures) printFailure(f);
  console.log(summary.failureCount ? `\n${summary.failureCount} failures; reproduce with: bun run fuzz -- --ops ${summary.ops} --seed ${seed}` : `\nno failures (seed ${seed})`);
}

// Ctrl-C: the summary so far (as of the last progress line), without the database check.
let latest: Summary | undefined;
process.on("SIGINT", () => {
  if (latest) report(latest, true);
  process.exit(130);
});

const trace = process.argv.includes("--trace") ? (op: number, target: string, ms: number) => console.log(`op ${op} ${target} ${ms} ms`) : undefined;
const onProgress = (done: number, s: Summary) => {
  latest = s;
  console.log(line(done, s));
};
// Each failure is printed when found too, so a long run shows it at once.
const summary = await fuzz({ seed, ops, progressEvery: every, onProgress, onFailure: printFailure, trace });
report(summary, false);
process.exit(summary.failureCount ? 1 : 0);
