CREATE TABLE `attachments` (
	`id` text PRIMARY KEY NOT NULL,
	`uploader_id` text NOT NULL,
	`state` text NOT NULL,
	`message_id` text,
	`position` integer DEFAULT 0 NOT NULL,
	`filename` text NOT NULL,
	`content_type` text NOT NULL,
	`size` integer NOT NULL,
	`sha256` text NOT NULL,
	`storage_key` text NOT NULL,
	`thumbnail_key` text,
	`width` integer,
	`height` integer,
	`created_at` integer NOT NULL,
	`unheld_at` integer,
	FOREIGN KEY (`uploader_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `attachments_message` ON `attachments` (`message_id`,`position`) WHERE "attachments"."message_id" IS NOT NULL;--> statement-breakpoint
CREATE INDEX `attachments_uploader` ON `attachments` (`uploader_id`,`size`);--> statement-breakpoint
CREATE INDEX `attachments_storage_key` ON `attachments` (`storage_key`);--> statement-breakpoint
CREATE INDEX `attachments_unheld` ON `attachments` (`unheld_at`) WHERE "attachments"."unheld_at" IS NOT NULL;--> statement-breakpoint
-- Messages are only removed with their conversation (deletes leave tombstones): their files are released then.
CREATE TRIGGER `attachments_release_on_message_removal` AFTER DELETE ON `messages` BEGIN
	UPDATE `attachments` SET `state` = 'released', `message_id` = NULL, `unheld_at` = CAST(unixepoch('subsec') * 1000 AS integer) WHERE `message_id` = OLD.`id`;
END;
