/**
 * createApp: opens the database, applies migrations, and assembles the Elysia app from
 * the feature modules. Used by the CLI and by tests (which listen on port 0).
 */
import { Elysia } from "elysia";
import { join, resolve } from "node:path";
import { ensureDataDir, type Config } from "./config";
import type { AppContext } from "./context";
import { keepTempInMemory, openDatabase } from "./db/client";
import { lockDataDir, type DataDirLock } from "./db/lock";
import { migrate } from "./db/migrate";
import { Checkpointer } from "./db/checkpointer";
import { checkFreeSpace } from "./db/storage";
import { createLogger, type Logger } from "./log";
import { Metrics } from "./metrics";
import { loadOrCreateSecret } from "./auth/secret";
import { createTokens } from "./auth/tokens";
import { AccountService, sqliteAccountRows } from "./auth/service";
import { pgAccountRows } from "./platform/postgres/accounts";
import { authRoutes } from "./auth/routes";
import { userRoutes } from "./users/routes";
import { friendRoutes } from "./friends/routes";
import { contactPolicyRoutes, conversationRoutes } from "./conversations/routes";
import { eventRoutes } from "./events/routes";
import { messageRoutes } from "./messages/routes";
import { searchRoutes } from "./search/routes";
import { SqliteSearchIndex } from "./search/sqlite";
import { Hub } from "./realtime/hub";
import { FRAME_READ_LIMIT, wsRoutes } from "./realtime/ws";
import { webRoutes } from "./web/routes";
import { Tickets, ticketRoutes } from "./realtime/tickets";
import { EventLog } from "./events/log";
import { sqliteStore } from "./platform/sqlite/store";
import { notInClusterMode, type PostgresParts } from "./platform/postgres/open";
import { pgStore } from "./platform/postgres/store";
import { PgSearchIndex } from "./platform/postgres/search";
import type { DB } from "./db/client";
import { errorHandling } from "./http/errors";
import { requestLogging } from "./http/request-log";
import { seedActivity } from "./lib/time";
import type { Broker } from "./platform/broker";
import type { Presence } from "./platform/presence";
import type { Limits } from "./platform/limits";
import { MemoryBroker } from "./platform/memory/broker";
import { MemoryPresence } from "./platform/memory/presence";
import { MemoryTickets } from "./platform/memory/tickets";
import { PgTickets } from "./platform/postgres/tickets";
import { memoryLimits } from "./platform/memory/limits";
import { Files } from "./files/service";
import { sqliteAttachmentRows } from "./files/rows";
import { pgAttachmentRows } from "./platform/postgres/attachments";
import { openStore } from "./files/open-store";
import { fileRoutes, signedLinks } from "./files/routes";
import { docsRoutes } from "./docs/routes";
import { Health } from "./http/model";
import { op } from "./http/docs";
import { t } from "elysia";

export const databaseFile = (dataDir: string) => join(dataDir, "parley.db");
/** The search index: derived from parley.db, rebuilt in the background when missing. */
export const searchFile = (dataDir: string) => join(dataDir, "search.db");

export interface CreateAppOptions {
  log?: Logger;
  /** Cluster mode (config.databaseUrl): PostgreSQL, opened and migrated (openPostgresParts). */
  postgres?: PostgresParts;
}

/**
 * Live traffic, presence and limits: in this process on a single node; in cluster mode on
 * NATS (live traffic) and, so that they hold across nodes, presence and limits on Redis when
 * REDIS_URL is set, else on PostgreSQL (the store's own pool). The one place that picks
 * implementations of these seams.
 */
function livePlatform(
  config: Config,
  nodeId: string,
  log: Logger,
  pg: PostgresParts | undefined,
): { broker: Broker; presence: Presence; limits: Limits; close(): Promise<void>; /** With REDIS_URL: whether Redis answers. */ redisReachable?: () => Promise<boolean> } {
  if (config.natsUrl === null || !pg) {
    const broker = new MemoryBroker();
    return { broker, presence: new MemoryPresence(config.presenceGraceMs), limits: memoryLimits, close: () => broker.close() };
  }
  // Loaded only here: the NATS client adds ~16 MB and a noticeable start-up time that a
  // single node has no use for.
  const { NatsBroker } = require("./platform/nats/broker") as typeof import("./platform/nats/broker");
  const broker = new NatsBroker(config.natsUrl, { prefix: config.clusterName, name: `parley ${nodeId}`, nodeId, log, gapCheckMs: config.presenceResyncIntervalMs });
  const presenceOptions = { nodeId, graceMs: config.presenceGraceMs, heartbeatIntervalMs: config.heartbeatIntervalMs, log };
  if (config.redisUrl === null) {
    const { PgPresence } = require("./platform/postgres/presence") as typeof import("./platform/postgres/presence");
    const { pgLimits } = require("./platform/postgres/limits") as typeof import("./platform/postgres/limits");
    const limits = pgLimits(pg.db.$client, { log });
    return {
      broker,
      presence: new PgPresence(pg.db.$client, presenceOptions),
      limits,
      async close() {
        limits.stop();
        await broker.close();
      },
    };
  }
  const { RedisPresence } = require("./platform/redis/presence") as typeof import("./platform/redis/presence");
  const { redisLimits } = require("./platform/redis/limits") as typeof import("./platform/redis/limits");
  const { RedisLink } = require("./platform/redis/client") as typeof import("./platform/redis/client");
  const redis = new RedisLink(config.redisUrl);
  const keys = `${config.clusterName}:`;
  return {
    broker,
    presence: new RedisPresence(redis, { ...presenceOptions, prefix: keys }),
    limits: redisLimits(redis, keys),
    redisReachable: () => redis.ping(),
    async close() {
      await broker.close();
      redis.close();
    },
  };
}

/** How long a stop lets in-flight requests finish before it closes their connections (the CLI exits by force at 9.5 s). */
export const STOP_GRACE_MS = 5000;

export function createApp(config: Config, options: CreateAppOptions = {}) {
  ensureDataDir(config.dataDir);
  checkFreeSpace(config.dataDir);
  const lock = options.postgres ? null : lockDataDir(config.dataDir);
  try {
    return assembleApp(config, options, lock);
  } catch (e) {
    lock?.release();
    throw e;
  }
}

function assembleApp(config: Config, options: CreateAppOptions, lock: DataDirLock | null) {
  const log = options.log ?? createLogger(config.logLevel);
  const pg = options.postgres;
  if (pg && !config.jwtSecret) throw new Error("cluster mode needs JWT_SECRET (every node signs and checks the same tokens)");
  const db = pg ? notInClusterMode<DB>("the SQLite database") : openDatabase(databaseFile(config.dataDir));
  if (!pg) {
    const applied = migrate(db);
    if (applied) log.info({ applied }, "migrations applied");
    keepTempInMemory(db);
    seedActivity((db.$client.query("SELECT max(activity_at) AS at FROM conversations").all()[0] as { at: number | null }).at);
  }
  const secret = loadOrCreateSecret(config.dataDir, config.jwtSecret);
  const tokens = createTokens(secret, config.jwtTtlSeconds);
  const checkpointer = pg ? null : new Checkpointer(db, databaseFile(config.dataDir), log, config.checkpointIntervalMs, config.walRestartPages);
  const instance = Bun.randomUUIDv7();
  const live = livePlatform(config, instance, log, pg);
  // Every node must see every file (§11): S3, or one volume shared by all of them.
  if (pg && config.storage.kind === "local")
    log.warn({ files: join(resolve(config.dataDir), "files") }, "cluster mode with STORAGE=local: DATA_DIR/files must be one volume shared by every node (else use STORAGE=s3)");
  const { limits } = live;

  const ctx: AppContext = {
    config,
    db,
    log,
    metrics: new Metrics(),
    tokens,
    accounts: new AccountService(pg ? pgAccountRows(pg.db) : sqliteAccountRows(db), config, limits),
    events: pg ? notInClusterMode<EventLog>("the SQLite event log") : new EventLog(db, (err) => log.error({ err }, "after-commit listener failed")),
    feed: undefined as never,
    budgets: {
      sends: limits.bucket("sends", config.sendsPerMinute, config.sendsPerMinute),
      writes: limits.bucket("writes", config.writesPerMinute, config.writesPerMinute),
      uploads: limits.bucket("uploads", config.uploadsPerMinute, config.uploadsPerMinute),
      searches: limits.bucket("searches", Math.ceil(config.searchesPerMinute / 4), config.searchesPerMinute),
      registrations: limits.bucket("registrations", config.registrationsPerAddress, config.registrationsPerAddress / 60),
    },
    broker: live.broker,
    presence: live.presence,
    files: new Files(pg ? pgAttachmentRows(pg.db) : sqliteAttachmentRows(db), openStore(config), config, log, secret),
    search: pg ? new PgSearchIndex(pg.db) : new SqliteSearchIndex(db.$client, databaseFile(config.dataDir), searchFile(config.dataDir), { log, maxLagMs: config.searchIndexLagMs }),
    instance,
    store: undefined as never,
  };
  ctx.store = pg ? pgStore({ db: pg.db, events: pg.events, config, log, metrics: ctx.metrics }) : sqliteStore(ctx);
  ctx.feed = pg ? pg.events : ctx.events;
  if (pg) {
    // Other nodes' commits wake this node's follower at once (NOTIFY does too; the broker is quicker across a cluster).
    pg.onAppended(() => live.broker.wake(pg.events.deliveredSeq));
    live.broker.onWake(() => pg.events.wake());
  }
  ctx.feed.onCommit((events) => {
    for (const e of events) ctx.metrics.eventsAppendedOf(e.type).inc();
  });

  // Events older than EVENT_RETENTION are pruned at start and then hourly, a chunk at a
  // time. SQLite prunes at start before serving, at once; PostgreSQL's log is the
  // cluster's: every node prunes, and nodes pruning at once take turns (PgEventLog.prune).
  const retentionMs = config.eventRetentionSeconds * 1000;
  const pruned = (removed: number) => removed && log.info({ removed }, "event log pruned");
  const pruneFailed = (err: unknown) => log.error({ err }, "event log pruning failed");
  const stopping = new AbortController();
  /** The pruning run in progress, if any: stop() waits for it before closing the database. */
  let pruning: Promise<unknown> | null = null;
  const prune = (run: () => number | Promise<number>) => {
    if (pruning) return;
    pruning = Promise.resolve()
      .then(run)
      .then(pruned, pruneFailed)
      .finally(() => (pruning = null));
  };
  if (pg) prune(() => pg.events.prune(retentionMs, Date.now(), stopping.signal));
  else {
    try {
      pruned(ctx.events.prune(retentionMs));
    } catch (err) {
      pruneFailed(err);
    }
  }
  const pruneTimer = setInterval(() => prune(() => ctx.feed.pruneGradually(retentionMs, stopping.signal)), Math.min(3600_000, retentionMs));
  pruneTimer.unref();

  const hub = new Hub(ctx);
  // Any node redeems what any node issued (issue #16): the tickets live in PostgreSQL.
  const tickets = new Tickets(pg ? new PgTickets(pg.db, log) : new MemoryTickets(), config.ticketTtlMs);

  // The documents describe the whole app's routes (read once the app is built).
  const routes = (): never => app.routes as never;
  const handle = (request: Request): Promise<Response> => (app as { handle(r: Request): Promise<Response> }).handle(request);
  const app = new Elysia({
    // No cap of Bun's own: its 413 has no body and closes the connection while the client is
    // still sending (Node's fetch then sees EPIPE, not a status). Every limit is ours instead:
    // uploads answer 413/403 in the contract's format from Content-Length or as the bytes pass
    // the limit, the JSON parser reads at most BODY_LIMIT; Bun then discards the rest of the
    // body as it arrives (memory stays flat, checked with 300 MB bodies).
    // No SO_REUSEPORT (Elysia's default): a second server on a taken port must fail to
    // start, not silently share the port and split requests between two databases.
    serve: { maxRequestBodySize: Number.MAX_SAFE_INTEGER, reusePort: false },
    // Elysia's router takes the path to start at the first "/" from index 11 of the URL,
    // which assumes a host of 4+ characters: behind a proxy forwarding `Host: app` the
    // upgrade (and every route Bun does not match natively) would find a wrong path and
    // 404. From index 7 — right after "http://" — it is right for every host. This server
    // never terminates TLS itself (in an "https://" URL, index 7 is the second "/").
    handler: { standardHostname: false },
    websocket: {
      // Over BODY_LIMIT (64 KiB) a frame is refused by the socket handler, with an alert first.
      maxPayloadLength: FRAME_READ_LIMIT,
      // Past MAX_BUFFERED_BYTES the hub closes a socket as a slow consumer (with an alert and
      // 1013). Bun's own limit sits well above it, as a backstop that closes the socket rather
      // than silently dropping frames, should output outrun the hub's periodic check.
      backpressureLimit: config.maxBufferedBytes + 16 * 1024 * 1024,
      closeOnBackpressureLimit: true,
      perMessageDeflate: false,
      // The hub's own heartbeat pings every socket and drops dead ones (see Hub); Bun's idle
      // timeout (4 s granularity) stays as a backstop beyond it.
      sendPings: true,
      idleTimeout: Math.min(960, Math.ceil((3 * config.heartbeatIntervalMs) / 1000) + 8),
    },
  })
    .onStart(({ server }) => {
      if (server) hub.attach(server as never);
    })
    .use(requestLogging(ctx))
    .use(errorHandling(ctx))
    .use(signedLinks(ctx))
    .use(docsRoutes(() => routes(), handle))
    .get("/health", async ({ set }) => {
      // A single server answers exactly as §1 says; a cluster node names itself (§11).
      if (!pg) return { status: "ok" as const };
      // Cluster mode: whether this node reaches PostgreSQL, NATS and (with REDIS_URL) Redis: 503 when not, so a load balancer skips it.
      const [postgres, redis] = await Promise.all([
        Promise.race([pg.db.$client`SELECT 1`.then(() => true, () => false), Bun.sleep(2000).then(() => false)]),
        live.redisReachable?.(),
      ]);
      const nats = live.broker.connected();
      const status = postgres && nats && redis !== false ? ("ok" as const) : ("unavailable" as const);
      if (status !== "ok") {
        set.status = 503;
        set.headers["retry-after"] = "1";
      }
      const state = (up: boolean) => (up ? ("ok" as const) : ("unreachable" as const));
      return { status, node_id: ctx.instance, postgres: state(postgres), nats: state(nats), ...(redis === undefined ? {} : { redis: state(redis) }) };
    }, { detail: { ...op("Health: the database is open and migrated; in cluster mode, this node's id and whether it reaches PostgreSQL, NATS and (with REDIS_URL) Redis (503 when not)", { 200: Health, 503: Health }, { public: true }), tags: ["ops"] } })
    .get("/metrics", ({ set }) => {
      set.headers["content-type"] = "text/plain; version=0.0.4";
      return ctx.metrics.render();
    }, { detail: { ...op("Prometheus metrics", { 200: t.String() }, { public: true, text: true }), tags: ["ops"] } })
    .use(authRoutes(ctx))
    .use(userRoutes(ctx))
    .use(friendRoutes(ctx))
    .use(conversationRoutes(ctx))
    .use(contactPolicyRoutes(ctx))
    .use(messageRoutes(ctx))
    .use(searchRoutes(ctx))
    .use(eventRoutes(ctx))
    .use(fileRoutes(ctx))
    .use(ticketRoutes(ctx, tickets))
    .use(wsRoutes(ctx, hub, tickets))
    .use(webRoutes());

  let closed = false;
  /** Stops accepting, lets in-flight requests finish, then closes the database. */
  async function stop() {
    if (closed) return;
    closed = true;
    clearInterval(pruneTimer);
    stopping.abort();
    for (const budget of Object.values(ctx.budgets)) budget.stop();
    const left = hub.stop();
    if (app.server) {
      // In-flight requests may finish, for a while: a client that never completes its request
      // (headers half sent, an upload at a trickle) would otherwise hold the stop until the
      // force exit, and the database would be left unclosed.
      const server = app.server;
      const cut = setTimeout(() => {
        log.warn({ after_ms: STOP_GRACE_MS }, "requests still in flight at shutdown; closing their connections");
        void server.stop(true);
      }, STOP_GRACE_MS);
      await app.stop(false);
      clearTimeout(cut);
    }
    await left;
    await live.close();
    await ctx.files.stop();
    await pruning; // stopped between chunks by `stopping`
    if (pg) {
      await pg.close();
      return;
    }
    // Both workers close their connections before the database does.
    await Promise.all([checkpointer!.stop(), ctx.search.stop()]);
    // Fold the WAL back into the database file so a copy of parley.db alone is complete.
    try {
      const [folded] = db.$client.query("PRAGMA wal_checkpoint(TRUNCATE)").all() as { busy: number }[];
      if (folded?.busy) log.warn("the final checkpoint was busy; the WAL is applied at the next start");
    } catch (err) {
      // A full disk: nothing is lost, the WAL stays beside the database until the next start.
      log.warn({ err }, "the final checkpoint failed; the WAL is applied at the next start");
    }
    db.$client.close();
    lock?.release();
  }

  return { app, ctx, hub, checkpointer, stop };
}

export type ParleyApp = ReturnType<typeof createApp>;
