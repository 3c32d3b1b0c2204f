/**
 * Runs the benchmark in a network namespace of its own, where loopback is the only
 * interface. There the server under test can listen on every address (0.0.0.0) without
 * being reachable from outside, so the client can spread its sockets over several loopback
 * destinations (127.0.0.1–127.0.0.4). Linux picks a connect()'s source port per destination,
 * and past ~14,000 sockets to one address:port every new socket scans the whole (even) half
 * of the ephemeral range: the connection scenario then measures the client's kernel, not
 * the server. Needs `unshare` and `ip` and the right to use them (root here); without them
 * the benchmark runs as before, on 127.0.0.1 alone, and says so.
 */
import { readlinkSync } from "node:fs";

const netns = () => {
  try {
    return readlinkSync("/proc/self/ns/net");
  } catch {
    return "";
  }
};

/**
 * True when this process runs in the namespace the benchmark made: BENCH_NETNS names the
 * namespace it left, and this is another one (a stray variable never opens 0.0.0.0).
 */
export const inPrivateNetwork = () => {
  const left = process.env.BENCH_NETNS?.startsWith("left:") ? process.env.BENCH_NETNS.slice(5) : undefined;
  return left !== undefined && left !== "" && netns() !== "" && netns() !== left;
};

/** The loopback addresses the client may connect to. */
export const loopbackAddresses = () => (inPrivateNetwork() ? ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"] : ["127.0.0.1"]);

function tryRun(cmd: string[]): boolean {
  try {
    return Bun.spawnSync(cmd, { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {
    return false; // not installed
  }
}

/**
 * Re-runs this command inside a new network namespace and exits with its status (signals
 * are passed on); returns, doing nothing, when already inside, when asked not to
 * (BENCH_NETNS=0), or when a namespace cannot be made here.
 */
export async function reenterInPrivateNetwork(): Promise<void> {
  if (inPrivateNetwork() || process.env.BENCH_NETNS === "0" || process.platform !== "linux") return;
  // Re-run once at most, whatever happened.
  if (process.env.BENCH_NETNS?.startsWith("left:")) return;
  if (!netns() || !tryRun(["unshare", "-n", "ip", "link", "set", "lo", "up"])) {
    console.error("note: no private network namespace (unshare/ip unavailable); all sockets go to 127.0.0.1");
    return;
  }
  const child = Bun.spawn(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, ...process.argv.slice(1)], {
    env: { ...process.env, BENCH_NETNS: `left:${netns()}` },
    stdio: ["inherit", "inherit", "inherit"],
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
  const code = await child.exited;
  process.exit(child.signalCode ? 1 : code);
}
