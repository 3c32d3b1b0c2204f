/**
 * The implementations of the presence and limits seams, for the platform tests to run the
 * same cases against each: in memory (one node), Redis and PostgreSQL (several nodes, each
 * with its own connection(s), on the machine's services). Each test of a shared backend
 * starts from empty state: Redis keys under a prefix of its own, or a PostgreSQL database
 * of the file's whose presence and limit tables are emptied between tests.
 */
import { afterAll, afterEach, beforeAll } from "bun:test";
import type { Presence } from "../src/platform/presence";
import type { Budget, FailureCounter, Limits } from "../src/platform/limits";
import { MemoryPresence } from "../src/platform/memory/presence";
import { memoryLimits } from "../src/platform/memory/limits";
import { RedisPresence } from "../src/platform/redis/presence";
import { RedisLink } from "../src/platform/redis/client";
import { redisLimits } from "../src/platform/redis/limits";
import { PgPresence } from "../src/platform/postgres/presence";
import { pgLimits } from "../src/platform/postgres/limits";
import { openPostgres, type PgDB } from "../src/platform/postgres/client";
import { PG_ADMIN_URL, REDIS_TEST_URL, createTestDatabase, dropKeys, prepareTemplate, servicesUp, uniquePrefix } from "./services";

/** `via`: the URL the node reaches its store by, given the store's (a relay's, to cut the node off). */
export interface NodeOptions { graceMs?: number; heartbeatIntervalMs?: number; via?: (url: string) => string }

/** A presence node of a shared backend: it beats on its own, and on demand. */
export type ClusterPresence = Presence & { heartbeat(): Promise<void> };

export interface Backend {
  name: "memory" | "redis" | "postgres";
  /** Whether several nodes share its state (in memory, one process is one node). */
  shared: boolean;
  /** Whether its service answers (false: skip, with the reason printed; CI fails instead). */
  up: boolean;
  open(): Promise<void>;
  /** A presence node (memory: a node of its own). */
  presence(nodeId: string, o?: NodeOptions): ClusterPresence;
  /** Node `i`'s limits (memory: one node serves them all). */
  limits(i: number): Limits;
  /** Empties the shared state, as a restart of the service does (Redis without persistence; PostgreSQL's crash for UNLOGGED tables). */
  wipe(): Promise<void>;
  /** For test/presence-node.ts to be a node of this backend in its own process. */
  childEnv(): Record<string, string>;
  /** After each test: stops its nodes, forgets its state. */
  reset(): Promise<void>;
  close(): Promise<void>;
  /** PostgreSQL: a query on the test's database. */
  query?(text: string): Promise<Record<string, unknown>[]>;
}

const grace = (o: NodeOptions) => o.graceMs ?? 0;
const interval = (o: NodeOptions) => o.heartbeatIntervalMs ?? 1000;

/** One process: every "node" shares one budget of a kind (as one node serving all the traffic). */
function memoryBackend(): Backend {
  const presences: MemoryPresence[] = [];
  let budgets = new Map<string, Budget | FailureCounter>();
  const once = <T extends Budget | FailureCounter>(key: string, make: () => T) => (budgets.get(key) ?? budgets.set(key, make()).get(key)) as T;
  const limits: Limits = {
    bucket: (name, capacity, perMinute) => once(`b${name}`, () => memoryLimits.bucket(name, capacity, perMinute)),
    failures: (name, max, windowMs) => once(`f${name}`, () => memoryLimits.failures(name, max, windowMs)),
  };
  return {
    name: "memory",
    shared: false,
    up: true,
    async open() {},
    presence(_nodeId, o = {}) {
      const p = new MemoryPresence(grace(o));
      presences.push(p);
      return Object.assign(p, { heartbeat: async () => {} });
    },
    limits: () => limits,
    async wipe() {},
    childEnv: () => ({}),
    async reset() {
      for (const p of presences.splice(0)) await p.stop();
      for (const b of budgets.values()) if ("stop" in b) b.stop();
      budgets = new Map();
    },
    async close() {},
  };
}

function redisBackend(up: boolean): Backend {
  const clients: RedisLink[] = [];
  const presences: RedisPresence[] = [];
  const nodeLimits = new Map<number, Limits>();
  let prefix = uniquePrefix("platform") + ":";
  const client = (via: (url: string) => string = (u) => u) => {
    const c = new RedisLink(via(REDIS_TEST_URL));
    clients.push(c);
    return c;
  };
  return {
    name: "redis",
    shared: true,
    up,
    async open() {},
    presence(nodeId, o = {}) {
      const p = new RedisPresence(client(o.via), { nodeId, prefix, graceMs: grace(o), heartbeatIntervalMs: interval(o) });
      presences.push(p);
      return p;
    },
    limits(i) {
      if (!nodeLimits.has(i)) nodeLimits.set(i, redisLimits(client(), prefix));
      return nodeLimits.get(i)!;
    },
    wipe: () => dropKeys(prefix),
    childEnv: () => ({ BACKEND: "redis", REDIS_URL: REDIS_TEST_URL, PREFIX: prefix }),
    async reset() {
      for (const p of presences.splice(0)) await p.stop();
      for (const c of clients.splice(0)) c.close();
      nodeLimits.clear();
      await dropKeys(prefix);
      prefix = uniquePrefix("platform") + ":";
    },
    async close() {},
  };
}

const PG_TABLES = "presence_nodes, presence_users, presence_sockets, limit_buckets, limit_failures";

function postgresBackend(up: boolean): Backend {
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let admin: PgDB | undefined;
  const pools: PgDB[] = [];
  const presences: PgPresence[] = [];
  const nodeLimits = new Map<number, ReturnType<typeof pgLimits>>();
  /** A node's own pool (as a node's store has), so that nodes' statements run at once. */
  const pool = (via: (url: string) => string = (u) => u) => {
    const db = openPostgres(via(database!.url), 4);
    pools.push(db);
    return db.$client;
  };
  return {
    name: "postgres",
    shared: true,
    up,
    async open() {
      database = await createTestDatabase("parley_test", await prepareTemplate());
      admin = openPostgres(database.url, 1);
    },
    presence(nodeId, o = {}) {
      const p = new PgPresence(pool(o.via), { nodeId, graceMs: grace(o), heartbeatIntervalMs: interval(o) });
      presences.push(p);
      return p;
    },
    limits(i) {
      if (!nodeLimits.has(i)) nodeLimits.set(i, pgLimits(pool()));
      return nodeLimits.get(i)!;
    },
    async wipe() {
      // What PostgreSQL does to UNLOGGED tables after a crash.
      await admin!.$client.unsafe(`TRUNCATE ${PG_TABLES}`);
    },
    childEnv: () => ({ BACKEND: "postgres", DATABASE_URL: database!.url }),
    query: (text) => admin!.$client.unsafe(text),
    async reset() {
      for (const p of presences.splice(0)) await p.stop();
      for (const l of nodeLimits.values()) l.stop();
      nodeLimits.clear();
      for (const db of pools.splice(0)) await db.$client.close();
      await admin?.$client.unsafe(`TRUNCATE ${PG_TABLES}`);
    },
    async close() {
      await admin?.$client.close();
      await database?.drop();
    },
  };
}

/** The three implementations; a shared one whose service is down is marked so (see `up`). */
export async function backends(what: string): Promise<Backend[]> {
  return [
    memoryBackend(),
    redisBackend(await servicesUp({ Redis: REDIS_TEST_URL }, `${what} on Redis`)),
    postgresBackend(await servicesUp({ PostgreSQL: PG_ADMIN_URL }, `${what} on PostgreSQL`)),
  ];
}

/**
 * A describe block's hooks for `b`: opened once, reset after each test. Making a database
 * can take seconds on a busy machine: more than bun's 5 s for a hook.
 */
export function useBackend(b: Backend) {
  beforeAll(() => b.open(), 60_000);
  afterEach(() => b.reset(), 60_000);
  afterAll(() => b.close(), 60_000);
}
