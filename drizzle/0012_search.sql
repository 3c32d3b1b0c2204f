-- Message search (PROTOCOL §8). The trigram index itself lives in DATA_DIR/search.db,
-- built by a worker thread in large batches (FTS5 costs ~100 µs a row when it commits
-- 150 rows at a time, ~20 µs at 5,000). Here: the queue of messages whose text changed
-- since, filled by triggers inside the transaction of each write (send, edit, delete, a
-- cascade), so a search can read those rows directly until the index has them.
-- Self-contained: it may be renumbered if another migration lands first.
CREATE TABLE `search_pending` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`message_rowid` integer NOT NULL,
	-- Where the index files the message's text (it may be gone from messages by then).
	`conversation_id` text NOT NULL,
	-- 1: a new message, which the index cannot hold yet (no stale entry to delete first).
	`fresh` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TRIGGER `search_pending_insert` AFTER INSERT ON `messages` BEGIN
  INSERT INTO search_pending(message_rowid, conversation_id, fresh) VALUES (new.rowid, new.conversation_id, 1);
END;
--> statement-breakpoint
CREATE TRIGGER `search_pending_update` AFTER UPDATE OF content ON `messages` WHEN old.content IS NOT new.content BEGIN
  INSERT INTO search_pending(message_rowid, conversation_id) VALUES (new.rowid, new.conversation_id);
END;
--> statement-breakpoint
CREATE TRIGGER `search_pending_delete` AFTER DELETE ON `messages` BEGIN
  INSERT INTO search_pending(message_rowid, conversation_id) VALUES (old.rowid, old.conversation_id);
END;
-- Existing messages are queued when the server first opens DATA_DIR/search.db
-- (src/search/sqlite.ts, adopt), and indexed in the background.
