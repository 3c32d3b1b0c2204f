/**
 * Limits (PROTOCOL §11): per-user and per-address budgets that hold however many nodes
 * serve the traffic. Token buckets (sends, writes, uploads, searches, registrations) and
 * fixed-window failure counts (logins). Single node: in memory, synchronous, as cheap as
 * before the seam. Cluster: PostgreSQL (one atomic statement per decision), or Redis with
 * REDIS_URL (one atomic script per decision).
 */
import { AppError } from "../errors";
import type { Awaitable } from "../lib/awaitable";

/** A token bucket per key: `capacity` tokens, refilled at `perMinute` a minute. */
export interface Budget {
  /** Takes a token for `key`: 0 when allowed, else the milliseconds until one is available. */
  take(key: string): Awaitable<number>;
  /** Takes a token for `key`, or fails with 429 `rate_limited` (with its Retry-After) saying `message`. */
  spend(key: string, message: string): Awaitable<void>;
  stop(): void;
}

/** Failures per key in a fixed window that starts with the first one (login attempts). */
export interface FailureCounter {
  /**
   * An attempt, counted as a failure up front (so that parallel attempts cannot all slip
   * under the limit): 0, or when the key is blocked, nothing counted and the milliseconds
   * until it may try again. One atomic step.
   */
  attempt(key: string): Awaitable<number>;
  reset(key: string): Awaitable<void>;
  /** Takes back one counted failure (an attempt counted up front that succeeded). */
  forgive(key: string): Awaitable<void>;
}

export interface Limits {
  /** `name` keeps the budgets of one kind apart (in a shared store). */
  bucket(name: string, capacity: number, perMinute: number): Budget;
  failures(name: string, max: number, windowMs: number): FailureCounter;
}

/** The refusal for a wait from Budget.take. */
export function refuseIfWaiting(wait: number, message: string) {
  if (wait > 0) throw new AppError("rate_limited", message, undefined, wait);
}
