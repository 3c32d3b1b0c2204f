-- Kept as on SQLite (drizzle/0009, 0010, 0011): member counts by trigger, the event log's
-- epoch, and a removed message's files released.
CREATE FUNCTION conversation_members_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE conversations SET member_count = member_count + 1 WHERE id = NEW.conversation_id;
  ELSE
    UPDATE conversations SET member_count = member_count - 1 WHERE id = OLD.conversation_id;
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER conversation_members_count AFTER INSERT OR DELETE ON conversation_members
  FOR EACH ROW EXECUTE FUNCTION conversation_members_count();
--> statement-breakpoint
CREATE FUNCTION attachments_release_on_message_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE attachments SET state = 'released', message_id = NULL, unheld_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
    WHERE message_id = OLD.id;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER attachments_release_on_message_removal AFTER DELETE ON messages
  FOR EACH ROW EXECUTE FUNCTION attachments_release_on_message_removal();
--> statement-breakpoint
INSERT INTO meta (key, value) VALUES ('epoch', md5(random()::text || clock_timestamp()::text)) ON CONFLICT (key) DO NOTHING;
