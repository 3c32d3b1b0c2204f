ALTER TABLE "users" ADD COLUMN "name_key" text;
--> statement-breakpoint
-- As on SQLite (drizzle/0019): a rename by a node of an older build (a rolling upgrade)
-- empties the key of the old name; user search matches such a row by its names until a
-- node's next start fills the key (src/users/name-key.ts).
CREATE FUNCTION users_name_key_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.name_key IS NOT DISTINCT FROM OLD.name_key
     AND (NEW.display_name IS DISTINCT FROM OLD.display_name OR NEW.username IS DISTINCT FROM OLD.username) THEN
    NEW.name_key := NULL;
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER users_name_key_stale BEFORE UPDATE OF display_name, username ON users
  FOR EACH ROW EXECUTE FUNCTION users_name_key_stale();
