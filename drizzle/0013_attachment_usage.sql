CREATE TABLE `attachment_usage` (
	`user_id` text PRIMARY KEY NOT NULL,
	`bytes` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
INSERT INTO `attachment_usage` (`user_id`, `bytes`) SELECT `uploader_id`, sum(`size`) FROM `attachments` GROUP BY `uploader_id`;--> statement-breakpoint
-- Every attachment counts against its uploader from its insert to its delete (the sweep, or
-- the user's removal); its size and uploader never change.
CREATE TRIGGER `attachment_usage_add` AFTER INSERT ON `attachments` BEGIN
	INSERT INTO `attachment_usage` (`user_id`, `bytes`) VALUES (NEW.`uploader_id`, NEW.`size`)
		ON CONFLICT (`user_id`) DO UPDATE SET `bytes` = `bytes` + excluded.`bytes`;
END;--> statement-breakpoint
CREATE TRIGGER `attachment_usage_remove` AFTER DELETE ON `attachments` BEGIN
	UPDATE `attachment_usage` SET `bytes` = `bytes` - OLD.`size` WHERE `user_id` = OLD.`uploader_id`;
END;
