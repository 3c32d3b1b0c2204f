/**
 * Parley's cost per unit of work as a ratio to the raw baseline's (test/bench/baseline.ts),
 * both measured in the same run: server CPU per message, per delivery and per connect, and
 * memory per socket. Absolute figures move with the machine's load; these ratios move far
 * less, so they are what the regression guard compares with test/bench/ratios.json.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { round } from "./stats";

type Summary = Record<string, any>;

/** One ratio: which Parley run and which baseline run, and the figure compared. */
interface RatioDef {
  name: string;
  parley: string; // the Parley scenario's key
  baseline: string; // the baseline scenario's key
  metric: string;
  /** Whether `--quick` sizes make it steady enough for the guard (see README, Performance). */
  guarded: boolean;
  what: string;
}

export const RATIOS: RatioDef[] = [
  { name: "rest_cpu_per_message", parley: "capacity", baseline: "capacity", metric: "server_cpu_us_per_message", guarded: true, what: "REST send, server CPU per message" },
  { name: "ws_cpu_per_message_vs_rest", parley: "ws", baseline: "capacity", metric: "server_cpu_us_per_message", guarded: true, what: "WS message.send vs the baseline's REST send" },
  { name: "ws_cpu_per_message", parley: "ws", baseline: "ws", metric: "server_cpu_us_per_message", guarded: true, what: "WS message.send vs the baseline's WS send" },
  // Bimodal for the baseline as much as for Parley (0.45-0.55 or 1.25-1.45 µs per delivery
  // for the same baseline, same size, same hour; most likely as the receiving client keeps
  // up or falls behind). The ratio of one build ranged 0.9-2.5: reported, not guarded.
  { name: "fanout_cpu_per_delivery", parley: "fanout", baseline: "fanout", metric: "server_cpu_us_per_delivery", guarded: false, what: "fan-out, server CPU per delivery" },
  { name: "connect_cpu", parley: "connections", baseline: "connections", metric: "server_cpu_us_per_connect", guarded: true, what: "connect incl. conversation.list, server CPU" },
  { name: "static_cpu_per_request", parley: "static", baseline: "static", metric: "server_cpu_us_per_request", guarded: true, what: "web client's page and assets, server CPU per request" },
  // RSS moves by whole allocator chunks and with GC timing: at a few hundred sockets the
  // difference is mostly noise, so it is reported, never guarded.
  { name: "kb_per_socket", parley: "connections", baseline: "connections", metric: "server_kb_per_socket", guarded: false, what: "KB per idle socket (RSS)" },
];

export type Ratios = Record<string, { parley: number; baseline: number; ratio: number }>;

/** The ratios this run's results allow (a ratio needs both of its runs). */
export function ratiosOf(parley: Record<string, Summary>, baseline: Record<string, Summary>): Ratios {
  const out: Ratios = {};
  for (const r of RATIOS) {
    const p = parley[r.parley]?.[r.metric];
    const b = baseline[r.baseline]?.[r.metric];
    if (typeof p === "number" && typeof b === "number" && b > 0) out[r.name] = { parley: p, baseline: b, ratio: round(p / b, 2) };
  }
  return out;
}

export function formatRatios(ratios: Ratios): string {
  return RATIOS.filter((r) => ratios[r.name])
    .map((r) => {
      const x = ratios[r.name]!;
      return `${r.name.padEnd(28)} ${String(x.parley).padStart(9)} vs ${String(x.baseline).padStart(9)}  ${x.ratio.toFixed(2).padStart(6)} ×  ${r.what}${r.guarded ? "" : " (not guarded)"}`;
    })
    .join("\n");
}

/** What `--record` keeps, per size ("quick"/"full") and mode ("shared"/"pinned"). */
export interface RatioFile {
  about: string;
  recorded: Record<string, { ratios: Record<string, number>; machine: string; date: string; load: string; runs: number }>;
}

export const GUARD_FACTOR = 1.5;

export function readRatioFile(path: string): RatioFile | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as RatioFile) : undefined;
}

export function record(path: string, key: string, entry: RatioFile["recorded"][string]) {
  const file: RatioFile = readRatioFile(path) ?? {
    about: "Parley/baseline ratios recorded by `bun run bench -- --quick --record` (see README, Performance). .ci/run fails when a guarded ratio exceeds 1.5 × its value here.",
    recorded: {},
  };
  file.recorded[key] = entry;
  writeFileSync(path, JSON.stringify(file, null, 2) + "\n");
}

/** The guarded ratios worse than GUARD_FACTOR × their recorded value. */
export function regressions(ratios: Ratios, recorded: Record<string, number>): string[] {
  return RATIOS.filter((r) => r.guarded && ratios[r.name] && recorded[r.name] !== undefined && ratios[r.name]!.ratio > GUARD_FACTOR * recorded[r.name]!).map(
    (r) => `${r.name}: ${ratios[r.name]!.ratio} × > ${GUARD_FACTOR} × ${recorded[r.name]} (recorded)`,
  );
}

/**
 * Each ratio over repeated runs (a run that lacks one is skipped for it): the median to
 * report, the highest to record, so that noise in the recording raises the guard's bar
 * rather than lowering it.
 */
export function combineRatios(runs: Ratios[], how: "median" | "highest"): Ratios {
  const out: Ratios = {};
  for (const r of RATIOS) {
    const xs = runs.map((x) => x[r.name]).filter((x) => x !== undefined).sort((a, b) => a.ratio - b.ratio);
    if (xs.length) out[r.name] = how === "highest" ? xs[xs.length - 1]! : xs[Math.floor((xs.length - 1) / 2)]!;
  }
  return out;
}
