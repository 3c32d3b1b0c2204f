-- Replay finds a topic's events by the topic's number instead of its text (issue #17):
-- an index entry of a few bytes instead of ~48, so the ten or more places that a busy
-- minute appends to split and rebalance their pages far less often (src/db/schema.ts).
CREATE TABLE `event_topics` (
	`id` integer PRIMARY KEY NOT NULL,
	`topic` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `event_topics_topic_unique` ON `event_topics` (`topic`);--> statement-breakpoint
ALTER TABLE `events` ADD `topic_id` integer;--> statement-breakpoint
-- The events already logged get their topics' numbers (one pass over the log, at the upgrade).
INSERT INTO `event_topics` (`topic`) SELECT DISTINCT `topic` FROM `events` ORDER BY `topic`;--> statement-breakpoint
UPDATE `events` SET `topic_id` = (SELECT `id` FROM `event_topics` t WHERE t.`topic` = `events`.`topic`);--> statement-breakpoint
DROP INDEX `events_topic_seq`;--> statement-breakpoint
CREATE INDEX `events_topic_id_seq` ON `events` (`topic_id`,`seq`);
