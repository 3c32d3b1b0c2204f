import type { Config } from "./config";
import type { DB } from "./db/client";
import type { Logger } from "./log";
import type { Metrics } from "./metrics";
import type { AccountService } from "./auth/service";
import type { Tokens } from "./auth/tokens";
import type { EventFeed, EventLog } from "./events/log";
import type { Budget } from "./platform/limits";
import type { Broker } from "./platform/broker";
import type { Presence } from "./platform/presence";
import type { Files } from "./files/service";
import type { SearchIndex } from "./search/index";
import type { Store } from "./platform/store";

/** What the feature modules of one running app share. Built once by createApp. */
export interface AppContext {
  config: Config;
  db: DB;
  log: Logger;
  metrics: Metrics;
  tokens: Tokens;
  accounts: AccountService;
  /** The SQLite event log that the SQLite services write through. */
  events: EventLog;
  /** Committed events in seq order, whichever engine holds the log (the hub follows it). */
  feed: EventFeed;
  /** The data operations the doors call (SQLite here; PostgreSQL in cluster mode). */
  store: Store;
  /**
   * Per-user budgets, spent alike by REST routes and WebSocket frames: message sends and
   * read positions (SENDS_PER_MINUTE); every other write (WRITES_PER_MINUTE), since each
   * can fan out to many events; searches (SEARCHES_PER_MINUTE), reads that may scan;
   * registrations per client address (REGISTRATIONS_PER_ADDRESS an hour).
   */
  budgets: { sends: Budget; writes: Budget; uploads: Budget; searches: Budget; registrations: Budget };
  /** Ephemeral frames and log wake-ups between nodes (in-process on a single node). */
  broker: Broker;
  /** Who is online, on any node, and how many sockets each user holds. */
  presence: Presence;
  /** Attachments: the blob store, signed links, the orphan sweep. */
  files: Files;
  /** Message and conversation search (SQLite FTS5 here). */
  search: SearchIndex;
  /** Distinguishes plugin instances of several apps in one process (tests). */
  instance: string;
}
