ALTER TABLE `conversations` ADD `member_count` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
UPDATE `conversations` SET `member_count` = (SELECT count(*) FROM `conversation_members` m WHERE m.`conversation_id` = `conversations`.`id`);--> statement-breakpoint
CREATE TRIGGER `conversation_members_count_insert` AFTER INSERT ON `conversation_members` BEGIN
	UPDATE `conversations` SET `member_count` = `member_count` + 1 WHERE `id` = NEW.`conversation_id`;
END;--> statement-breakpoint
CREATE TRIGGER `conversation_members_count_delete` AFTER DELETE ON `conversation_members` BEGIN
	UPDATE `conversations` SET `member_count` = `member_count` - 1 WHERE `id` = OLD.`conversation_id`;
END;
