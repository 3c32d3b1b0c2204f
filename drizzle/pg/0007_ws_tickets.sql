-- WebSocket tickets (src/platform/postgres/tickets.ts). Generated, then made UNLOGGED by
-- hand (drizzle-kit cannot say it): no WAL for rows that live 30 s; a crash empties the
-- table, which costs each client one more ticket request.
CREATE UNLOGGED TABLE "ws_tickets" (
	"ticket_hash" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"expires_at" bigint NOT NULL,
	"token_expires_at" bigint NOT NULL
);
