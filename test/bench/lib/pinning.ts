/**
 * Pinned mode (`--pinned`): the server under test on one core and the load generator on
 * another, with `taskset`, so that neither takes the other's core. Shared mode (the
 * default) lets the kernel place both on any core, as a user's machine would.
 */
import { cpus } from "node:os";

export type Mode = "shared" | "pinned";

/** The core the server is pinned to, when pinned. */
let serverCore: number | undefined;

/** The command that starts the server, on its own core when pinned. */
export const placed = (cmd: string[]) => (serverCore === undefined ? cmd : ["taskset", "-c", String(serverCore), ...cmd]);

/**
 * Pins every thread of this process (the load generator) to the last core and the servers
 * it starts to core 0. Returns the mode it could set up and, when not the one asked for, why.
 */
export function setUpMode(wanted: Mode): { mode: Mode; note?: string } {
  if (wanted === "shared") return { mode: "shared" };
  const cores = cpus().length;
  if (cores < 2) return { mode: "shared", note: `--pinned needs 2 cores, this machine has ${cores}: server and client share it` };
  const clientCore = cores - 1;
  let ok = false;
  try {
    ok = Bun.spawnSync(["taskset", "-a", "-p", "-c", String(clientCore), String(process.pid)], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {} // taskset not installed
  if (!ok) return { mode: "shared", note: "--pinned needs taskset (util-linux): server and client share the cores" };
  serverCore = 0;
  return { mode: "pinned", note: `server on core 0, load generator on core ${clientCore} of ${cores}` };
}
