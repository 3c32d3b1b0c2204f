-- New messages no longer pass through the search queue (issue #17): the indexer reads
-- them from messages itself, by rowid above how far its index got (search.db's
-- state.indexed_rowid), since a new message's rowid is above every rowid the index has
-- seen. Unless a rowid is reused: a rowid table gives the next insert max(rowid) + 1, so
-- deleting the newest messages (a conversation's deletion) frees their rowids. An insert
-- at or below the largest rowid ever deleted is therefore still queued, as an entry that
-- replaces what the index may hold under that rowid. Edits and deletes are queued as
-- before (0012_search). The queue row and its sequence update per send (~1.5–3 µs of the
-- send's transaction, and pruning it later) are gone.
CREATE TABLE `search_rowids` (
	-- Inserts at or below this rowid are queued: raised by every delete above it.
	`reused_through` integer NOT NULL,
	-- Every message up to this rowid was queued when it was inserted (0012's trigger): an
	-- index built before this migration has seen no rowid above it.
	`queued_through` integer NOT NULL
);
--> statement-breakpoint
-- Deleted messages whose entries are still queued may sit above the largest live rowid.
INSERT INTO `search_rowids` (`reused_through`, `queued_through`)
	SELECT m, m FROM (SELECT max(coalesce((SELECT max(rowid) FROM `messages`), 0), coalesce((SELECT max(message_rowid) FROM `search_pending`), 0)) AS m);
--> statement-breakpoint
DROP TRIGGER `search_pending_insert`;
--> statement-breakpoint
CREATE TRIGGER `search_pending_insert` AFTER INSERT ON `messages` WHEN new.rowid <= (SELECT reused_through FROM search_rowids) BEGIN
  INSERT INTO search_pending(message_rowid, conversation_id) VALUES (new.rowid, new.conversation_id);
END;
--> statement-breakpoint
DROP TRIGGER `search_pending_delete`;
--> statement-breakpoint
CREATE TRIGGER `search_pending_delete` AFTER DELETE ON `messages` BEGIN
  INSERT INTO search_pending(message_rowid, conversation_id) VALUES (old.rowid, old.conversation_id);
  UPDATE search_rowids SET reused_through = old.rowid WHERE reused_through < old.rowid;
END;
