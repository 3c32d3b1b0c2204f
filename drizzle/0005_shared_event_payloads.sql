CREATE TABLE `event_payloads` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`data` text NOT NULL
);
--> statement-breakpoint
ALTER TABLE `events` ADD `payload_id` integer;--> statement-breakpoint
CREATE INDEX `events_payload_id` ON `events` (`payload_id`) WHERE "events"."payload_id" IS NOT NULL;