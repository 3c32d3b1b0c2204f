/**
 * Rate limiting primitives: the token bucket (per socket here, per key in
 * platform/memory/limits.ts) and the key of a per-address limit.
 */

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
