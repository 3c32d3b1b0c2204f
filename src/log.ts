/**
 * pino, JSON lines to stdout with a synchronous destination: no transports, because
 * worker-thread transports cannot resolve their targets inside the compiled binary.
 * Log calls name their fields explicitly (never a request, body or query object), so
 * tokens, tickets and passwords have no way in; the tests check the output for them.
 */
import pino from "pino";
import type { LogLevel } from "./config";

export type Logger = pino.Logger;

export function createLogger(level: LogLevel, destination: pino.DestinationStream = pino.destination({ dest: 1, sync: true })): Logger {
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
