/**
 * The one Redis connection of a node (presence, connection counts, budgets), that fails
 * fast while Redis is away: a request then gets 503 `unavailable` with Retry-After
 * (PROTOCOL §12), as when PostgreSQL is away, instead of waiting for Redis to come back.
 */
import type { RedisClient } from "bun";
import { AppError } from "../../errors";

/** How long a command (or a reconnect before it) may take before Redis counts as unreachable. */
export const REDIS_DEADLINE_MS = 2000;
const RETRY_AFTER_MS = 1000;

const unreachable = (cause?: unknown) =>
  Object.assign(new AppError("unavailable", "presence and limits (Redis) are unreachable; try again shortly", undefined, RETRY_AFTER_MS), { cause });

/** Error codes of Bun's client that mean the connection, not the command, failed. */
const CONNECTION_CODES = new Set(["ERR_REDIS_CONNECTION_CLOSED", "ERR_REDIS_CONNECTION_TIMEOUT", "ERR_REDIS_IDLE_TIMEOUT", "ECONNREFUSED", "ECONNRESET"]);

function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(unreachable()), ms)));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

export class RedisLink {
  private readonly client: RedisClient;
  /** The first connection: commands wait for it (within the deadline); after it, Bun reconnects by itself. */
  private first: Promise<unknown> | null;

  constructor(url: string, private readonly deadlineMs = REDIS_DEADLINE_MS) {
    // No offline queue: a command sent while the connection is down fails at once instead of
    // waiting (and running later, after its caller was told 503).
    this.client = new Bun.RedisClient(url, { autoReconnect: true, maxRetries: 2 ** 32 - 1, enableOfflineQueue: false, connectionTimeout: deadlineMs });
    this.first = this.client.connect().then(() => (this.first = null));
    this.first.catch(() => {});
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /**
   * Sends one command. Throws AppError `unavailable` when Redis cannot be reached within the
   * deadline (a command that timed out may still run later); Redis's own errors as they are.
   */
  async send(command: string, args: string[]): Promise<unknown> {
    try {
      if (!this.client.connected) {
        if (!this.first) throw unreachable(); // lost since: at once, while Bun reconnects
        await within(this.first, this.deadlineMs);
      }
      return await within(this.client.send(command, args), this.deadlineMs);
    } catch (e) {
      if (e instanceof AppError) throw e;
      if (CONNECTION_CODES.has((e as { code?: string }).code ?? "")) throw unreachable(e);
      throw e; // Redis's own answer (a script's error, NOSCRIPT)
    }
  }

  /** Whether Redis answers within the deadline (GET /health). */
  ping(): Promise<boolean> {
    return this.send("PING", []).then(
      () => true,
      () => false,
    );
  }

  close() {
    this.client.close();
  }
}
