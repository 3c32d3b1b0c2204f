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
const INSIDE = "inside";

/** True when this process runs in the benchmark's own namespace. */
export const inPrivateNetwork = () => process.env.BENCH_NETNS === INSIDE;

/** The loopback addresses the client may connect to. */
export const loopbackAddresses = () => (inPrivateNetwork() ? ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"] : ["127.0.0.1"]);

/**
 * Re-runs this command inside a new network namespace and exits with its status; returns
 * (doing nothing) when already inside, when asked not to (BENCH_NETNS=0), or when a
 * namespace cannot be made here.
 */
export function reenterInPrivateNetwork(): void {
  if (inPrivateNetwork() || process.env.BENCH_NETNS === "0" || process.platform !== "linux") return;
  const probe = Bun.spawnSync(["unshare", "-n", "ip", "link", "set", "lo", "up"], { stdout: "ignore", stderr: "ignore" });
  if (probe.exitCode !== 0) {
    console.error("note: no private network namespace (unshare/ip unavailable); all sockets go to 127.0.0.1");
    return;
  }
  const child = Bun.spawnSync(
    ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, ...process.argv.slice(1)],
    { env: { ...process.env, BENCH_NETNS: INSIDE }, stdio: ["inherit", "inherit", "inherit"] },
  );
  process.exit(child.exitCode ?? 1);
}
