ALTER TABLE `users` ADD `name_key` text;
--> statement-breakpoint
-- A rename by a build from before this migration (`parley migrate` run beside a live older
-- server) leaves the key of the old name: it is emptied, and user search matches such a row
-- by its names until the next start fills the key (src/users/name-key.ts).
CREATE TRIGGER `users_name_key_stale` AFTER UPDATE OF `display_name`, `username` ON `users`
  WHEN NEW.`name_key` IS OLD.`name_key` AND NEW.`name_key` IS NOT NULL
    AND (NEW.`display_name` IS NOT OLD.`display_name` OR NEW.`username` IS NOT OLD.`username`)
BEGIN
  UPDATE `users` SET `name_key` = NULL WHERE `id` = NEW.`id`;
END;
