-- Message search on PostgreSQL (src/platform/postgres/search.ts). pg_trgm ships with
-- PostgreSQL (contrib) and is a trusted extension: the database's owner may create it.
-- search_text is fold(content), written by the app (PostgreSQL cannot fold as search does).
CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "search_text" text;--> statement-breakpoint
CREATE INDEX "messages_search_text" ON "messages" USING gin ("search_text" gin_trgm_ops);