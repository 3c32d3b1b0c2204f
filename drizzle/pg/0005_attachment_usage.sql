CREATE TABLE "attachment_usage" (
	"user_id" text PRIMARY KEY NOT NULL,
	"bytes" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "attachment_usage" ADD CONSTRAINT "attachment_usage_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
INSERT INTO attachment_usage (user_id, bytes) SELECT uploader_id, sum(size) FROM attachments GROUP BY uploader_id;
--> statement-breakpoint
-- As on SQLite (drizzle/0013): an attachment counts against its uploader from its insert to
-- its delete; its size and uploader never change. Per statement, the usage rows locked in
-- one order: two sweeps (on two nodes) freeing files of the same users cannot deadlock.
CREATE FUNCTION attachment_usage_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attachment_usage (user_id, bytes)
    SELECT uploader_id, sum(size) FROM added GROUP BY uploader_id ORDER BY uploader_id
    ON CONFLICT (user_id) DO UPDATE SET bytes = attachment_usage.bytes + excluded.bytes;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER attachment_usage_add AFTER INSERT ON attachments
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION attachment_usage_add();
--> statement-breakpoint
CREATE FUNCTION attachment_usage_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM attachment_usage WHERE user_id IN (SELECT uploader_id FROM gone) ORDER BY user_id FOR NO KEY UPDATE;
  UPDATE attachment_usage u SET bytes = u.bytes - g.bytes
    FROM (SELECT uploader_id, sum(size) AS bytes FROM gone GROUP BY uploader_id) g WHERE u.user_id = g.uploader_id;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER attachment_usage_remove AFTER DELETE ON attachments
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION attachment_usage_remove();
