/**
 * Cluster-wide presence in Redis: the store's half of ClusterPresence (../cluster-presence.ts,
 * which keeps this node's bookkeeping and the heartbeat). Per user a hash `u:<id>`: one field per node with the
 * user's socket count there, `a` while user.online is out, `g` a generation bumped by every
 * connect and every last disconnect (a grace timer settles only the generation it started
 * with, so a reconnect anywhere cancels it). Per node a set `n:<node>` of the users it
 * holds or is settling, and one sorted set `nodes`: each node's heartbeat deadline (by
 * Redis's clock, so nodes' clocks may differ).
 *
 * A node beats every HEARTBEAT_INTERVAL_MS / 3; a node silent for HEARTBEAT_INTERVAL_MS is
 * dead, and the next beat of any node removes it in the same script: its users with no
 * socket left anywhere go offline, announced by that node. A node killed right after a beat
 * thus takes its users offline within 4/3 × the interval (the contract allows 2 ×).
 *
 * Redis holds soft state only: after it restarts empty, each node's next beat finds its
 * heartbeat gone and writes its users back.
 */
import type { RedisLink } from "./client";
import type { Arrival } from "../presence";
import { ClusterPresence, type ClusterPresenceOptions } from "../cluster-presence";
import { RedisScript } from "./script";

/** The user hash's totals (node fields summed); shared by the scripts below. */
const STATE = `
local function state(key)
  local h = redis.call('HGETALL', key)
  local total, announced, gen = 0, false, false
  for i = 1, #h, 2 do
    local f = h[i]
    if f == 'a' then announced = true
    elseif f == 'g' then gen = h[i + 1]
    else total = total + tonumber(h[i + 1]) end
  end
  return total, announced, gen
end
`;

/** Takes the user's sockets on a node away; a user left with none anywhere is removed, and added to `offline` if announced. */
const TAKE = STATE + `
local function take(prefix, node, user, offline)
  local key = prefix .. 'u:' .. user
  redis.call('HDEL', key, node)
  local total, announced = state(key)
  if total == 0 then
    redis.call('DEL', key)
    if announced then offline[#offline + 1] = user end
  end
end
`;

// KEYS: user hash, node set. ARGV: node, max, user id.
const CONNECT = new RedisScript(STATE + `
local total, announced = state(KEYS[1])
if total >= tonumber(ARGV[2]) then return 'full' end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], 'g', 1)
redis.call('SADD', KEYS[2], ARGV[3])
if total > 0 or announced then return 'more' end
return 'first'
`);

// KEYS: user hash. ARGV: node. Returns the generation to settle when no socket is left, else -1.
const DISCONNECT = new RedisScript(STATE + `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local total = state(KEYS[1])
if total > 0 then return -1 end
return redis.call('HINCRBY', KEYS[1], 'g', 1)
`);

// KEYS: user hash, node set. ARGV: node, generation, user id. 0: still online; 1: offline; 2: offline, announce it.
const SETTLE = new RedisScript(STATE + `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
local total, announced, gen = state(KEYS[1])
if total > 0 or gen ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
if announced then return 2 end
return 1
`);

// KEYS: user hashes. One 0/1 each.
const ONLINE = new RedisScript(STATE + `
local out = {}
for i, key in ipairs(KEYS) do
  local total, announced = state(key)
  out[i] = (total > 0 or announced) and 1 or 0
end
return out
`);

// KEYS: the nodes set. ARGV: node, ms from now. A node leaving: its deadline moved to the
// end of the presence grace (by Redis's clock, as every deadline).
const LEAVE = new RedisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
`);

// KEYS: the nodes set. ARGV: node, dead after (ms), key prefix. Returns {beat was new (0/1), users gone offline announced}.
// A node's score is its own deadline, so nodes with different intervals judge each other right.
const BEAT = new RedisScript(TAKE + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fresh = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local offline = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do
  local set = ARGV[3] .. 'n:' .. node
  for _, user in ipairs(redis.call('SMEMBERS', set)) do take(ARGV[3], node, user, offline) end
  redis.call('DEL', set)
  redis.call('ZREM', KEYS[1], node)
end
return {fresh, offline}
`);

// KEYS: node set. ARGV: node, key prefix, then user id and count pairs.
const REREGISTER = new RedisScript(`
for i = 3, #ARGV, 2 do
  redis.call('HSET', ARGV[2] .. 'u:' .. ARGV[i], ARGV[1], ARGV[i + 1], 'a', 1)
  redis.call('SADD', KEYS[1], ARGV[i])
end
return 0
`);

// KEYS: node set. ARGV: node, key prefix, the number of users to skip, those users, then
// user id and count pairs. Sets the node's counts to the pairs', removes its sockets of the
// other users in its set (but the skipped), settles those left with none anywhere; returns
// the announced ones.
const RESYNC = new RedisScript(TAKE + `
local node, prefix, nskip = ARGV[1], ARGV[2], tonumber(ARGV[3])
local keep = {}
for i = 4, 3 + nskip do keep[ARGV[i]] = true end
for i = 4 + nskip, #ARGV, 2 do
  keep[ARGV[i]] = true
  local key = prefix .. 'u:' .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then redis.call('HSET', key, 'a', 1) end
  redis.call('HSET', key, node, ARGV[i + 1])
  redis.call('SADD', KEYS[1], ARGV[i])
end
local offline = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[user] then
    redis.call('SREM', KEYS[1], user)
    take(prefix, node, user, offline)
  end
end
return offline
`);

export interface RedisPresenceOptions extends ClusterPresenceOptions {
  /** Keeps clusters (and tests) sharing one Redis apart. */
  prefix?: string;
}

export class RedisPresence extends ClusterPresence {
  private readonly prefix: string;
  private readonly nodeSet: string;
  private readonly nodes: string;

  constructor(private redis: RedisLink, o: RedisPresenceOptions) {
    super(o);
    this.prefix = o.prefix ?? "parley:";
    this.nodeSet = `${this.prefix}n:${o.nodeId}`;
    this.nodes = `${this.prefix}nodes`;
    this.start();
  }

  private userKey(userId: string) { return `${this.prefix}u:${userId}`; }

  async liveNodes() {
    return (await this.redis.send("ZRANGE", [this.nodes, "0", "-1"])) as string[];
  }

  protected async storeBeat() {
    const [fresh, offline] = (await BEAT.run(this.redis, [this.nodes], [this.o.nodeId, this.o.heartbeatIntervalMs, this.prefix])) as [number, string[]];
    return { fresh: fresh === 1, offline };
  }

  protected async storeReregister(users: [string, number][]) {
    await REREGISTER.run(this.redis, [this.nodeSet], [this.o.nodeId, this.prefix, ...users.flat()]);
  }

  protected async storeResync(users: [string, number][], skip: string[]) {
    return (await RESYNC.run(this.redis, [this.nodeSet], [this.o.nodeId, this.prefix, skip.length, ...skip, ...users.flat()])) as string[];
  }

  protected async storeConnect(userId: string, max: number) {
    return (await CONNECT.run(this.redis, [this.userKey(userId), this.nodeSet], [this.o.nodeId, max, userId])) as Arrival;
  }

  protected async storeDisconnect(userId: string) {
    const generation = Number(await DISCONNECT.run(this.redis, [this.userKey(userId)], [this.o.nodeId]));
    return generation < 0 ? null : String(generation);
  }

  protected async storeSettle(userId: string, generation: string) {
    const outcome = Number(await SETTLE.run(this.redis, [this.userKey(userId), this.nodeSet], [this.o.nodeId, generation, userId]));
    return outcome > 0 ? outcome === 2 : null;
  }

  protected async storeAnnounced(userId: string) {
    await this.redis.send("HSET", [this.userKey(userId), "a", "1"]);
  }

  protected async storeLeave(graceMs: number) {
    await LEAVE.run(this.redis, [this.nodes], [this.o.nodeId, graceMs]);
  }

  async connections(userId: string) {
    const counts = (await this.redis.send("HGETALL", [this.userKey(userId)])) as Record<string, string> | string[] | null;
    const entries: [string, string][] = Array.isArray(counts)
      ? Array.from({ length: counts.length / 2 }, (_, i) => [counts[2 * i]!, counts[2 * i + 1]!])
      : Object.entries(counts ?? {});
    let total = 0;
    for (const [field, n] of entries) if (field !== "a" && field !== "g") total += Number(n);
    return total;
  }

  async online(userIds: string[]) {
    if (!userIds.length) return [];
    const flags = (await ONLINE.run(this.redis, userIds.map((id) => this.userKey(id)))) as number[];
    return flags.map((f) => f === 1);
  }
}
