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
/** Pending output past which the lines are written at once. */
const FLUSH_AT = 16 * 1024;
/** How long an info line may wait for others to share its write. */
const FLUSH_AFTER_MS = 10;

/**
 * Lines gathered for up to FLUSH_AFTER_MS (or FLUSH_AT bytes) and written to the file
 * descriptor in one `write`, instead of one synchronous write per line (pino's synchronous
 * SonicBoom also copies every line into a Buffer): every request has its line, and under
 * load that was one system call per request (issue #17). Warnings, errors and fatal lines
 * are written at once, with whatever came before them, and so is everything at exit
 * (`process.exit`, an uncaught error, the end of the event loop) and on `flush()` (the
 * shutdown calls it). A `kill -9` (or a crash of the runtime itself) loses the info and
 * debug lines of the last 10 ms at most.
 */
export class LineBuffer implements pino.DestinationStream {
  /** pino tells the stream each line's level (`lastLevel`) before writing it. */
  readonly [pino.symbols.needsMetadataGsym] = true;
  lastLevel = 0;
  private pending = "";
  private timer: Timer | undefined;
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
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, FLUSH_AFTER_MS);
      // It never keeps the process alive: exit writes what is pending.
      this.timer.unref();
    }
  }

  private onTimer = () => {
    this.timer = undefined;
    this.flush();
  };

  /** Writes every pending line now; `done` (pino's `logger.flush(cb)`) is called after. */
  flush(done?: (err?: Error) => void) {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
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

/** pino's level number of `info`. */
const INFO = 30;

/**
 * Info lines written without pino's per-line work, for the one line every request has:
 * pino's formatting of it (its object, the child's bindings, the tracing channel, the
 * metadata handed to the stream) was ~3 µs of a REST send's main thread (issue #17).
 * `fields` is the JSON of the line's fields, each `,"key":value`, serialised by the caller;
 * the line is the one createLogger's pino would write for the same fields, byte for byte
 * but the time (test/log.test.ts compares them).
 */
export function infoLines(logger: Logger): (fields: string, msg: string) => void {
  const stream = (logger as unknown as Record<symbol, pino.DestinationStream & { lastLevel?: number }>)[pino.symbols.streamSym]!;
  return (fields, msg) => {
    if (logger.levelVal > INFO) return;
    // A LineBuffer learns each line's level from pino; here from us. (pino's other metadata,
    // lastMsg, lastObj…, is left as it was: no destination of ours reads it.)
    stream.lastLevel = INFO;
    stream.write(`{"level":"info","time":"${new Date().toISOString()}"${fields},"msg":${JSON.stringify(msg)}}\n`);
  };
}
