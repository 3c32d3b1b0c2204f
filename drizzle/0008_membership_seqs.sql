CREATE TABLE `member_stints` (
	`conversation_id` text NOT NULL,
	`user_id` text NOT NULL,
	`joined_seq` integer NOT NULL,
	`left_seq` integer NOT NULL,
	PRIMARY KEY(`user_id`, `conversation_id`, `joined_seq`),
	FOREIGN KEY (`conversation_id`) REFERENCES `conversations`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `member_stints_left` ON `member_stints` (`left_seq`);--> statement-breakpoint
ALTER TABLE `conversation_members` ADD `joined_seq` integer DEFAULT 0 NOT NULL;