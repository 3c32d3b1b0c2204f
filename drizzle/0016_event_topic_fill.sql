-- An event appended without its topic's number (by a build from before 0015 run on this
-- database, or by hand) gets it here, so that replay finds it: the server itself always
-- gives the number (src/events/log.ts), and then the trigger only tests its condition.
CREATE TRIGGER `events_topic_id_fill` AFTER INSERT ON `events` WHEN new.`topic_id` IS NULL BEGIN
	INSERT OR IGNORE INTO `event_topics` (`topic`) VALUES (new.`topic`);
	UPDATE `events` SET `topic_id` = (SELECT `id` FROM `event_topics` WHERE `topic` = new.`topic`) WHERE `seq` = new.`seq`;
END;
