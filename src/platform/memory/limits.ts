/** Single-node limits: token buckets and failure windows in this process's memory. */
import { TokenBucket } from "../../lib/rate-limit";
import { refuseIfWaiting, type Budget, type FailureCounter, type Limits } from "../limits";

/** Token buckets keyed by a string (per user, per address), forgotten when full again. */
export class KeyedBuckets implements Budget {
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
  spend(key: string, message: string): void {
    refuseIfWaiting(this.take(key), message);
  }
  take(key: string): number {
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = new TokenBucket(this.capacity, this.perMinute)));
    return b.take();
  }
  stop() { clearInterval(this.sweeper); }
}

/** Counts failures per key in a fixed window (login attempts). */
export class FailureWindow implements FailureCounter {
  private entries = new Map<string, { count: number; resetAt: number }>();
  constructor(private max: number, private windowMs: number) {}
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
  attempt(key: string): number {
    const wait = this.blockedFor(key);
    if (wait === 0) this.fail(key);
    return wait;
  }
  reset(key: string) { this.entries.delete(key); }
  forgive(key: string) {
    const e = this.entries.get(key);
    if (e && e.count > 0) e.count--;
  }
}

export const memoryLimits: Limits = {
  bucket: (_name, capacity, perMinute) => new KeyedBuckets(capacity, perMinute),
  failures: (_name, max, windowMs) => new FailureWindow(max, windowMs),
};
