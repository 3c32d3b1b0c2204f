/** Starts the server under test (Parley or the baseline) as a child process. */
import { mkdtempSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { inPrivateNetwork, loopbackAddresses } from "./netns";
import { placed } from "./pinning";
import { procStats } from "./stats";
import { ALLOCATOR_ENV } from "../../../src/platform/allocator";

export const root = resolve(import.meta.dir, "../../..");

export interface ServerUnderTest {
  kind: "parley" | "baseline" | "raw-upload";
  pid: number;
  base: string;
  wsBase: string;
  /** The same WebSocket endpoint on every loopback address the client may use. */
  wsBases: string[];
  dataDir: string;
  startMs: number;
  stats: () => { cpu_s: number; rss_mb: number };
  stop: () => Promise<void>;
  /** Several Parley processes measured as one (cluster mode): `stats` sums them. */
  nodes?: ServerUnderTest[];
  /**
   * The services' share of the work (cluster mode: PostgreSQL, NATS, Redis): started where
   * the scenario first reads `stats`, its result read where it reads them last (totals over
   * that window, e.g. CPU seconds and WAL bytes).
   */
  services?: () => Promise<() => Promise<Record<string, number>>>;
}

// Below the ephemeral range (32768–60999), so a client socket never holds it.
const freePort = () => 10000 + Math.floor(Math.random() * 20000);

async function waitHealthy(base: string, proc: Subprocess, timeoutMs = 15_000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {}
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
    if (performance.now() > deadline) throw new Error("server did not become healthy");
    await Bun.sleep(5);
  }
}

const binary = process.env.BENCH_PARLEY || join(root, "dist", "parley");
const source = [process.execPath, join(root, "src", "index.ts")];
/** The command that runs Parley (what startParley starts, without a profiler). */
export const parleyCommand = () => (existsSync(binary) ? [binary] : source);

/** Creates (or migrates) a Parley data directory without serving it. */
export function migrateDataDir(dataDir: string) {
  const cmd = existsSync(binary) ? [binary, "migrate"] : [...source, "migrate"];
  const done = Bun.spawnSync(cmd, { env: { ...process.env, DATA_DIR: dataDir }, stdout: "ignore", stderr: "inherit" });
  if (done.exitCode !== 0) throw new Error(`parley migrate exited with ${done.exitCode}`);
}

/**
 * Parley: the compiled executable when it exists (what users run), else the source.
 * BENCH_PARLEY=<path> runs another build (e.g. the previous commit's, to measure a change).
 * `dataDir`: an existing one (default: a new, empty one).
 */
export async function startParley(env: Record<string, string> = {}, dataDir?: string): Promise<ServerUnderTest> {
  // BENCH_CPU_PROF=<dir>: run the source under Bun's sampling profiler, a Markdown profile per server in <dir>.
  const profileDir = process.env.BENCH_CPU_PROF;
  const cmd = profileDir
    ? [process.execPath, "--cpu-prof-md", `--cpu-prof-dir=${profileDir}`, "--cpu-prof-interval=250", ...source.slice(1)]
    : parleyCommand();
  return start("parley", cmd, {
    // Under the profiler the server is given its allocator settings: its re-execution of
    // itself to apply them (src/platform/allocator.ts) hung there in ~1 start out of 3.
    ...(profileDir ? runtimeEnv() : {}),
    ARGON2_MEMORY_KIB: "1024",
    SENDS_PER_MINUTE: "100000000",
    REGISTRATIONS_PER_ADDRESS: "100000000",
    WS_FRAMES_PER_MINUTE: "1000000",
    SEARCHES_PER_MINUTE: "100000000",
    PRESENCE_GRACE_MS: "0",
    // The scenarios group strangers (19,000 users in groups of 10): befriending every pair
    // first would only slow the set-up, since the policy is checked when members are added,
    // never on a send or a connect.
    CONTACT_POLICY: "open",
    ...env,
  }, dataDir);
}

/**
 * The baselines run with the allocator settings Parley gives itself (src/platform/allocator.ts),
 * so that a ratio compares the two servers' work, not two configurations of the runtime.
 */
const runtimeEnv = () => Object.fromEntries(Object.entries(ALLOCATOR_ENV).filter(([name]) => process.env[name] === undefined));

export async function startBaseline(): Promise<ServerUnderTest> {
  return start("baseline", [process.execPath, join(import.meta.dir, "..", "baseline.ts")], runtimeEnv());
}

/** The uploads scenario's baseline (see raw-upload.ts). */
export async function startRawUpload(): Promise<ServerUnderTest> {
  return start("raw-upload", [process.execPath, join(import.meta.dir, "..", "raw-upload.ts")], runtimeEnv());
}

async function start(kind: ServerUnderTest["kind"], cmd: string[], env: Record<string, string>, given?: string): Promise<ServerUnderTest> {
  // A data directory made here is removed on stop (the uploads scenario writes gigabytes).
  const dataDir = given ?? mkdtempSync(join(tmpdir(), `bench-${kind}-`));
  const port = freePort();
  const started = performance.now();
  const proc = Bun.spawn(placed(cmd), {
    // In the benchmark's own network namespace, every address is a loopback one.
    env: { ...process.env, PORT: String(port), HOST: inPrivateNetwork() ? "0.0.0.0" : "127.0.0.1", DATA_DIR: dataDir, ...env },
    stdout: "ignore",
    stderr: "inherit",
  });
  const base = `http://127.0.0.1:${port}`;
  await waitHealthy(base, proc);
  return {
    kind,
    pid: proc.pid,
    base,
    wsBase: `ws://127.0.0.1:${port}`,
    wsBases: loopbackAddresses().map((a) => `ws://${a}:${port}`),
    dataDir,
    startMs: performance.now() - started,
    stats: () => procStats(proc.pid),
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
      if (!given) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
