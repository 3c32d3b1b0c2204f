/**
 * The cluster-mode store: each section on PostgreSQL (src/platform/postgres/<feature>.ts).
 * Sections not yet ported fail loudly (notInClusterMode), never on a node-local database.
 */
import type { Config } from "../../config";
import type { Logger } from "../../log";
import type { Metrics } from "../../metrics";
import type { ConversationStore, Store } from "../store";
import type { PgDB } from "./client";
import type { PgEvents } from "./writer";
import { pgUsers } from "./users";
import { pgFriends } from "./friends";
import { notInClusterMode } from "./open";
import { pgMessages } from "./messages";

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
    conversations: notInClusterMode<ConversationStore>("conversations"),
    messages: pgMessages(deps),
  };
}
