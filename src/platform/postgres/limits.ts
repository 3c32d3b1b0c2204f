/**
 * Cluster-wide limits in PostgreSQL (cluster mode without REDIS_URL), on the store's own
 * connection pool: the same behaviour as src/platform/redis/limits.ts, on the UNLOGGED tables
 * limit_buckets and limit_failures. Each decision is one statement, `INSERT … ON CONFLICT DO
 * UPDATE … RETURNING`: the conflicting row is locked and updated from its latest version,
 * so nodes taking at once from one bucket take turns and never overdraw it. Timed by
 * PostgreSQL's clock (nodes' clocks may differ). Rows that would read as new again (a full
 * bucket, an ended window) are swept every minute.
 */
import type { SQL } from "bun";
import type { Logger } from "../../log";
import { refuseIfWaiting, type Budget, type FailureCounter, type Limits } from "../limits";

const NOW_MS = "extract(epoch FROM clock_timestamp())::float8 * 1000";

// $1 kind, $2 key, $3 capacity, $4 tokens per ms. A new bucket is full: one token taken.
// `granted` says whether this take got a token (RETURNING sees only the row after it).
const TAKE = `
WITH p AS (SELECT $1::text AS kind, $2::text AS key, $3::float8 AS cap, $4::float8 AS rate, ${NOW_MS} AS now)
INSERT INTO limit_buckets AS b (kind, key, tokens, at, granted, full_at)
SELECT kind, key, cap - 1, now, true, now + 1 / rate FROM p
ON CONFLICT (kind, key) DO UPDATE SET (tokens, at, granted, full_at) = (
  SELECT r.left, r.at, r.granted, r.at + (p.cap - r.left) / p.rate
  FROM p,
    LATERAL (SELECT least(p.cap, b.tokens + greatest(0, p.now - b.at) * p.rate) AS tokens, greatest(b.at, p.now) AS at) t,
    LATERAL (SELECT t.tokens >= 1 AS granted, t.at, t.tokens - (t.tokens >= 1)::int AS left) r)
RETURNING tokens, granted`;

// $1 kind, $2 key, $3 max, $4 window (ms). Counted up front unless blocked; `wait` is then 0.
const ATTEMPT = `
WITH p AS (SELECT $1::text AS kind, $2::text AS key, $3::int AS max, $4::bigint AS win, (${NOW_MS})::bigint AS now),
up AS (
  INSERT INTO limit_failures AS f (kind, key, count, reset_at, refused)
  SELECT kind, key, 1, now + win, false FROM p
  ON CONFLICT (kind, key) DO UPDATE SET (count, reset_at, refused) = (
    SELECT CASE WHEN s.ended THEN 1 WHEN s.blocked THEN f.count ELSE f.count + 1 END,
      CASE WHEN s.ended THEN p.now + p.win ELSE f.reset_at END,
      s.blocked
    FROM p, LATERAL (SELECT f.reset_at <= p.now AS ended, f.reset_at > p.now AND f.count >= p.max AS blocked) s)
  RETURNING refused, reset_at)
SELECT CASE WHEN up.refused THEN greatest(1, up.reset_at - p.now) ELSE 0 END AS wait FROM up, p`;

class PgBudget implements Budget {
  private readonly rate: number;
  constructor(private sql: SQL, private kind: string, private capacity: number, perMinute: number) {
    this.rate = perMinute / 60000;
  }
  async take(key: string) {
    const [row] = await this.sql.unsafe(TAKE, [this.kind, key, this.capacity, this.rate]);
    return row.granted ? 0 : Math.ceil((1 - row.tokens) / this.rate);
  }
  async spend(key: string, message: string) {
    refuseIfWaiting(await this.take(key), message);
  }
  stop() {}
}

class PgFailures implements FailureCounter {
  constructor(private sql: SQL, private kind: string, private max: number, private windowMs: number) {}
  async attempt(key: string) {
    const [row] = await this.sql.unsafe(ATTEMPT, [this.kind, key, this.max, this.windowMs]);
    return Number(row.wait);
  }
  async reset(key: string) {
    await this.sql`DELETE FROM limit_failures WHERE kind = ${this.kind} AND key = ${key}`;
  }
  async forgive(key: string) {
    await this.sql`UPDATE limit_failures SET count = count - 1 WHERE kind = ${this.kind} AND key = ${key} AND count > 0`;
  }
}

/** Limits on `sql` (the store's pool); `stop()` ends the sweep. */
export function pgLimits(sql: SQL, o: { sweepMs?: number; log?: Logger } = {}): Limits & { sweep(): Promise<void>; stop(): void } {
  const sweep = async () => {
    await sql.unsafe(`DELETE FROM limit_buckets WHERE full_at < ${NOW_MS}`);
    await sql.unsafe(`DELETE FROM limit_failures WHERE reset_at < ${NOW_MS}`);
  };
  // Every node sweeps; a row deleted by another is skipped. Without an index on the times
  // (updates stay HOT, sends cheaper), a sweep reads the whole table, once a minute.
  const sweeper = setInterval(() => void sweep().catch((err) => o.log?.warn({ err }, "limits: sweeping failed")), o.sweepMs ?? 60_000);
  sweeper.unref();
  return {
    bucket: (name, capacity, perMinute) => new PgBudget(sql, name, capacity, perMinute),
    failures: (name, max, windowMs) => new PgFailures(sql, name, max, windowMs),
    sweep,
    stop: () => clearInterval(sweeper),
  };
}
