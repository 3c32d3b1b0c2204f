/**
 * pino, JSON lines to stdout with a synchronous destination: no transports, because
 * worker-thread transports cannot resolve their targets inside the compiled binary.
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
      // Belt and braces: these never get logged, but if an object carrying them ever is, they are hidden.
      redact: { paths: ["password", "token", "ticket", "*.password", "*.token", "*.ticket", "req.headers.authorization"], censor: "[redacted]" },
    },
    destination,
  );
}
