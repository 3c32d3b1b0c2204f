/**
 * The cluster-mode store: each section on PostgreSQL (src/platform/postgres/<feature>.ts).
 * Sections not yet ported fail loudly (notInClusterMode), never on a node-local database.
 */
import type { Config } from "../../config";
import type { Logger } from "../../log";
import type { ConversationStore, MessageStore, Store } from "../store";
import type { PgDB } from "./client";
import type { PgEvents } from "./writer";
import { pgUsers } from "./users";
import { pgFriends } from "./friends";
import { notInClusterMode } from "./open";

/** What the PostgreSQL store sections are built from. */
export interface PgDeps {
  db: PgDB;
  events: PgEvents;
  config: Config;
  log: Logger;
}

export function pgStore(deps: PgDeps): Store {
  return {
    users: pgUsers(deps),
    friends: pgFriends(deps),
    conversations: notInClusterMode<ConversationStore>("conversations"),
    messages: notInClusterMode<MessageStore>("messages"),
  };
}
