/**
 * pino, JSON lines to stdout: no transports, because worker-thread transports cannot
 * resolve their targets inside the compiled binary. Log calls name their fields explicitly
 * (never a request, body or query object), so tokens, tickets and passwords have no way in;
 * the tests check the output for them.
 */
import { writeSync } from "node:fs";
import pino from "pino";
import type { LogLevel } from "./config";

export type Logger = pino.Logger;

/** pino's level number of `warn`: lines at or above it are written at once. */
const WARN = 40;
/** Pending output past which the lines are written without waiting for the turn's end. */
const FLUSH_AT = 16 * 1024;

/**
 * Lines gathered during one turn of the event loop and written to the file descriptor in
 * one `write` at its end (a `setImmediate`), instead of one synchronous write per line
 * (pino's synchronous SonicBoom also copies every line into a Buffer): under load a turn
 * answers dozens of requests, each with its line (issue #17). Warnings, errors and fatal
 * lines are written at once, with whatever came before them, and so is everything at
 * exit (`process.exit` and the end of the event loop) and on `flush()` (the shutdown
 * calls it). A `kill -9` loses only the current turn's lines (at most FLUSH_AT bytes of
 * info/debug lines), which were written out at the end of that turn before.
 */
export class LineBuffer implements pino.DestinationStream {
  /** pino tells the stream each line's level (`lastLevel`) before writing it. */
  readonly [pino.symbols.needsMetadataGsym] = true;
  lastLevel = 0;
  private pending = "";
  private scheduled = false;
  /** The reader went away (EPIPE): nothing more is written, as pino's own destination does. */
  private closed = false;
  private failure: string | null = null;

  constructor(private readonly fd: number) {
    process.on("exit", () => this.flush());
  }

  write(line: string) {
    if (this.closed) return;
    this.pending += line;
    if (this.lastLevel >= WARN || this.pending.length >= FLUSH_AT) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.endOfTurn);
    }
  }

  private endOfTurn = () => {
    this.scheduled = false;
    this.flush();
  };

  /** Writes every pending line now; `done` (pino's `logger.flush(cb)`) is called after. */
  flush(done?: (err?: Error) => void) {
    const text = this.pending;
    this.pending = "";
    if (text && !this.closed) this.writeAll(text);
    done?.();
  }

  private writeAll(text: string) {
    // The string itself (a copy into a Buffer only for what a partial write left).
    let rest: string | Buffer = text;
    for (;;) {
      try {
        const written = typeof rest === "string" ? writeSync(this.fd, rest) : writeSync(this.fd, rest);
        if (written >= (typeof rest === "string" ? Buffer.byteLength(rest) : rest.length)) break;
        rest = (typeof rest === "string" ? Buffer.from(rest) : rest).subarray(written);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // A non-blocking pipe that is full: wait for its reader, as SonicBoom does.
        if (code === "EAGAIN" || code === "EBUSY") {
          Bun.sleepSync(10);
          continue;
        }
        if (code === "EPIPE") this.closed = true;
        // Anything else (a full disk behind a redirect): these lines are lost; said once on stderr.
        else if (this.failure !== code) {
          this.failure = code ?? "unknown";
          process.stderr.write(`parley: writing the log failed (${this.failure}); lines were dropped\n`);
        }
        return;
      }
    }
    this.failure = null;
  }
}

let stdout: LineBuffer | undefined;
/** The process's one buffer for stdout (every logger of the process shares it). */
export const stdoutLines = () => (stdout ??= new LineBuffer(1));

export function createLogger(level: LogLevel, destination: pino.DestinationStream = stdoutLines()): Logger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
