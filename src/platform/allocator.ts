import { readFileSync } from "node:fs";

/**
 * The allocator's settings for a long-running server.
 *
 * Bun's allocator (its fork of mimalloc) by default also hands back to the kernel the free
 * blocks inside pages still in use ("hole purging"). A server reuses those blocks within
 * milliseconds, so each one is faulted in again: measured in `bun run bench` (README,
 * "The allocator"), 20–40 % of the server CPU of a send (the kernel's page faults on the
 * event loop, the scavenger's and JSC's warm-up threads), against ~20 MB less resident
 * memory. Freed whole pages still go back after mimalloc's delay.
 *
 * mimalloc reads its options from the environment once, when the process starts, so the
 * server replaces itself (`execve`: same process id, same arguments, same file descriptors)
 * with MIMALLOC_PURGE_HOLES=0 set. An operator who sets the variable keeps their value.
 */

/** The variables the server runs with, each unless already set. */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = { MIMALLOC_PURGE_HOLES: "0" };

/** The environment to run under when it lacks one of ALLOCATOR_ENV, else undefined. */
export function allocatorEnv(env: Record<string, string | undefined>): Record<string, string> | undefined {
  const missing = Object.entries(ALLOCATOR_ENV).filter(([name]) => env[name] === undefined);
  if (missing.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value;
  return { ...out, ...Object.fromEntries(missing) };
}

/** The commands that end within seconds, where a second start would only cost time (`parley healthcheck` runs every 30 s in a container). */
const SHORT_COMMANDS = new Set(["migrate", "backup", "new-epoch", "healthcheck", "help", "version", "--help", "-h", "--version", "-v"]);

/** Whether a command line (the arguments after the program) starts the server. */
export function startsServer(args: readonly string[]): boolean {
  return !args.some((a) => SHORT_COMMANDS.has(a));
}

/**
 * Re-executes this process with ALLOCATOR_ENV when it is to serve and lacks it; returns only
 * when it does not need to (or cannot: a runtime without `process.execve`, or execve refused).
 * Called first (./allocator-first.ts), before the rest of the program runs; the executable
 * is built with bytecode (package.json), so that a second start costs ~0.1 s, not ~0.2.
 */
export function applyAllocatorSettings(): void {
  const env = allocatorEnv(process.env);
  if (!env || typeof process.execve !== "function" || !startsServer(process.argv.slice(2))) return;
  try {
    process.execve(process.execPath, commandLine(), env);
  } catch {
    // Not replaced (e.g. the executable was removed since it started): run with the defaults.
  }
}

/** This process's own command line, exactly as it was started (Bun's flags included). */
function commandLine(): string[] {
  try {
    const args = readFileSync("/proc/self/cmdline", "utf8").split("\0");
    args.pop(); // each argument ends with a NUL
    if (args.length > 0) return args;
  } catch {}
  // Without /proc: a compiled executable's argv is ["bun", "/$bunfs/root/<name>", ...its
  // arguments]; the source's, Bun's path and the script (its flags are in execArgv).
  return Bun.main.startsWith("/$bunfs/") ? [process.execPath, ...process.argv.slice(2)] : [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
}
