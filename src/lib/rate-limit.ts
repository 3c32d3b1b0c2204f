/**
 * Rate limiting primitives, in memory (one process owns all traffic).
 */
import { AppError } from "../errors";

/** A token bucket: `capacity` tokens, refilled at `perMinute` per minute. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(private capacity: number, private perMinute: number, now = performance.now()) {
    this.tokens = capacity;
    this.last = now;
  }
  /** Whether the bucket has refilled completely (it is then the same as a new one). */
  isFull(now = performance.now()): boolean {
    return this.tokens + ((now - this.last) * this.perMinute) / 60000 >= this.capacity;
  }

  /** Takes a token; returns 0 when allowed, otherwise the milliseconds until one is available. */
  take(now = performance.now()): number {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.perMinute) / 60000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 60000) / this.perMinute);
  }
}

/** Token buckets keyed by a string (per user, per address), forgotten when full again. */
export class KeyedBuckets {
  private buckets = new Map<string, TokenBucket>();
  private sweeper: Timer;
  constructor(private capacity: number, private perMinute: number) {
    // A bucket idle for longer than a full refill is indistinguishable from a new one.
    const refillMs = (capacity / perMinute) * 60000;
    this.sweeper = setInterval(() => {
      for (const [key, bucket] of this.buckets) if (bucket.isFull()) this.buckets.delete(key);
    }, Math.max(refillMs, 60000));
    this.sweeper.unref();
  }
  /** Takes a token for `key`, or throws 429 `rate_limited` (with its Retry-After) saying `message`. */
  spend(key: string, message: string): void {
    const wait = this.take(key);
    if (wait > 0) throw new AppError("rate_limited", message, undefined, wait);
  }
  take(key: string): number {
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = new TokenBucket(this.capacity, this.perMinute)));
    return b.take();
  }
  stop() { clearInterval(this.sweeper); }
}

/** Counts failures per key in a fixed window (login attempts). */
export class FailureWindow {
  private entries = new Map<string, { count: number; resetAt: number }>();
  constructor(private max: number, private windowMs: number) {}
  /** 0 if the key may try again, else milliseconds until it may. */
  blockedFor(key: string, now = Date.now()): number {
    const e = this.entries.get(key);
    if (!e || e.resetAt <= now) return 0;
    return e.count >= this.max ? e.resetAt - now : 0;
  }
  fail(key: string, now = Date.now()) {
    const e = this.entries.get(key);
    if (!e || e.resetAt <= now) this.entries.set(key, { count: 1, resetAt: now + this.windowMs });
    else e.count++;
    if (this.entries.size > 100_000) for (const [k, v] of this.entries) if (v.resetAt <= now) this.entries.delete(k);
  }
  reset(key: string) { this.entries.delete(key); }
  /** Takes back one counted failure (an attempt counted up front that succeeded). */
  forgive(key: string) {
    const e = this.entries.get(key);
    if (e && e.count > 0) e.count--;
  }
}

/**
 * The key for a per-address limit: an IPv4 address as is, an IPv6 one by its /64 (one
 * host usually holds a whole /64, so counting single addresses would let it rotate them).
 */
export function addressKey(ip: string): string {
  const address = ip.split("%")[0]!; // no zone id
  if (!address.includes(":")) return address;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  const [head, tail] = address.split("::");
  const front = head ? head.split(":") : [];
  const back = tail ? tail.split(":") : [];
  const groups = tail === undefined ? front : [...front, ...Array(Math.max(0, 8 - front.length - back.length)).fill("0"), ...back];
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(":")}::/64`;
}
