/**
 * The cluster-mode store: each section on PostgreSQL (src/platform/postgres/<feature>.ts).
 * Every section answers from PostgreSQL; parts of the app still on SQLite fail loudly (notInClusterMode).
 */
import type { Config } from "../../config";
import type { Logger } from "../../log";
import type { Metrics } from "../../metrics";
import type { Store } from "../store";
import type { PgDB } from "./client";
import type { PgEvents } from "./writer";
import { pgUsers } from "./users";
import { pgFriends } from "./friends";
import { pgMessages } from "./messages";
import { pgConversations } from "./conversations";

/** What the PostgreSQL store sections are built from. */
export interface PgDeps {
  db: PgDB;
  events: PgEvents;
  config: Config;
  log: Logger;
  metrics: Metrics;
}

export function pgStore(deps: PgDeps): Store {
  return {
    users: pgUsers(deps),
    friends: pgFriends(deps),
    conversations: pgConversations(deps),
    messages: pgMessages(deps),
  };
}
