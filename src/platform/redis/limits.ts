/**
 * Cluster-wide limits in Redis: each decision is one script, atomic on the Redis server,
 * timed by its clock (nodes' clocks may differ). A bucket is a hash {t: tokens, l: last
 * refill ms} that expires once it would be full again, so idle keys cost nothing.
 */
import type { RedisLink } from "./client";
import { refuseIfWaiting, type Budget, type FailureCounter, type Limits } from "../limits";
import { RedisScript } from "./script";

const TAKE = new RedisScript(`
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local b = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens = tonumber(b[1]) or cap
local last = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - last) * rate)
if tokens >= 1 then
  tokens = tokens - 1
  redis.call('HSET', KEYS[1], 't', tostring(tokens), 'l', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate) + 1000)
  return 0
end
return math.ceil((1 - tokens) / rate)
`);

// ARGV: max, window (ms).
const ATTEMPT = new RedisScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return math.max(1, redis.call('PTTL', KEYS[1])) end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`);

const FORGIVE = new RedisScript(`
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
`);

class RedisBudget implements Budget {
  constructor(private redis: RedisLink, private prefix: string, private capacity: number, private perMinute: number) {}
  async take(key: string) {
    return Number(await TAKE.run(this.redis, [this.prefix + key], [this.capacity, this.perMinute]));
  }
  async spend(key: string, message: string) {
    refuseIfWaiting(await this.take(key), message);
  }
  stop() {}
}

class RedisFailures implements FailureCounter {
  constructor(private redis: RedisLink, private prefix: string, private max: number, private windowMs: number) {}
  async attempt(key: string) { return Number(await ATTEMPT.run(this.redis, [this.prefix + key], [this.max, this.windowMs])); }
  async reset(key: string) { await this.redis.send("DEL", [this.prefix + key]); }
  async forgive(key: string) { await FORGIVE.run(this.redis, [this.prefix + key]); }
}

/** `prefix` keeps clusters (and tests) sharing one Redis apart. */
export function redisLimits(redis: RedisLink, prefix = "parley:"): Limits {
  return {
    bucket: (name, capacity, perMinute) => new RedisBudget(redis, `${prefix}b:${name}:`, capacity, perMinute),
    failures: (name, max, windowMs) => new RedisFailures(redis, `${prefix}f:${name}:`, max, windowMs),
  };
}
