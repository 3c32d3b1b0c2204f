/** Percentiles, and what /proc says about a process. */
import { readdirSync, readFileSync, statSync } from "node:fs";

export function percentiles(samples: Float64Array | number[], ps = [50, 99, 99.9, 100]): Record<string, number> {
  const sorted = Float64Array.from(samples).sort();
  const out: Record<string, number> = {};
  for (const p of ps) {
    const key = p === 100 ? "max" : `p${p}`;
    out[key] = sorted.length ? round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!) : 0;
  }
  return out;
}

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

const TICKS = 100; // USER_HZ

/**
 * CPU seconds of a process: the sum of its threads' run time in nanoseconds
 * (`/proc/<pid>/task/<tid>/schedstat`), since `/proc/<pid>/stat` counts in 10 ms ticks, too
 * coarse for the per-message costs of a short run. (Threads that exit are left out, which the
 * servers' threads do not while measured; `stat` when schedstat is unavailable.)
 */
export function cpuSeconds(pid: number): number {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {} // a thread that ended meanwhile
    }
  } catch {}
  return ns > 0 ? ns / 1e9 : cpuSecondsAllThreads(pid);
}

/**
 * CPU seconds of a process, threads that ended included (`/proc/<pid>/stat`, 10 ms ticks):
 * for runs long enough that a tick does not matter, where JavaScriptCore's JIT threads
 * come and go (their time would drop out of `cpuSeconds`).
 */
export function cpuSecondsAllThreads(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds of a process's live threads, summed by thread name (`comm`: the main thread is
 * named after the executable, JavaScriptCore's "JITWorker"…). Bun's Worker threads, all
 * named "Worker", live as long as the server and are told apart by their order of start
 * ("Worker 1", "Worker 2": Parley starts its checkpoints' before its search indexer's).
 */
export function cpuSecondsByThread(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let workers = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`).sort((a, b) => Number(a) - Number(b))) {
      try {
        let name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
        if (name === "Worker") name = `Worker ${++workers}`;
        out[name] = (out[name] ?? 0) + Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]) / 1e9;
      } catch {} // a thread that ended meanwhile
    }
  } catch {}
  return out;
}

/** CPU seconds (user + system; unrounded) and resident memory of a process, from /proc. */
export function procStats(pid: number): { cpu_s: number; rss_mb: number } {
  try {
    const cpu = cpuSeconds(pid);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpu_s: cpu, rss_mb: round(rssKb / 1024, 2) };
  } catch {
    return { cpu_s: 0, rss_mb: 0 };
  }
}

export function fileSizeMb(path: string): number {
  try {
    return round(statSync(path).size / 1024 / 1024, 2);
  } catch {
    return 0;
  }
}

export const clientCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** The client's CPU seconds spent in the kernel (connect(), socket I/O). */
export const clientKernelSeconds = () => process.cpuUsage().system / 1e6;
