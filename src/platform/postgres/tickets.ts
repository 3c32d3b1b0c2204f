/**
 * Cluster tickets: a row per ticket in `ws_tickets`, so that any node redeems what any
 * node issued. Redeeming is one `DELETE … RETURNING`: of two nodes racing for one ticket,
 * the second's DELETE waits on the first's row lock, then finds the row gone. Expiry is
 * read on PostgreSQL's clock, one for every node, so nodes' clock skew cannot lengthen or
 * shorten a ticket. Rows left unredeemed are purged by the issuing path, now and then.
 */
import { createHash } from "node:crypto";
import { and, eq, gt, lte, sql } from "drizzle-orm";
import type { Logger } from "../../log";
import type { TicketGrant, TicketStore } from "../tickets";
import type { PgDB } from "./client";
import { wsTickets } from "./schema";

/** PostgreSQL's time now, in ms since the epoch (as every time column here). */
const NOW_MS = sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
/** How often (at most) a node purges expired rows. */
const PURGE_EVERY_MS = 60_000;

/** The key of a ticket at rest: 24 random bytes need no salt. */
const digest = (ticket: string) => createHash("sha256").update(ticket).digest("base64url");

export class PgTickets implements TicketStore {
  private nextPurge = 0;

  constructor(private db: PgDB, private log: Logger) {}

  async put(ticket: string, grant: TicketGrant, ttlMs: number): Promise<number> {
    if (Date.now() >= this.nextPurge) this.purge();
    const [row] = await this.db
      .insert(wsTickets)
      .values({ ticketHash: digest(ticket), userId: grant.userId, expiresAt: sql`${NOW_MS} + ${ttlMs}`, tokenExpiresAt: grant.tokenExpiresAtMs })
      .returning({ expiresAt: wsTickets.expiresAt });
    return row!.expiresAt;
  }

  async take(ticket: string): Promise<TicketGrant | undefined> {
    const [row] = await this.db
      .delete(wsTickets)
      .where(and(eq(wsTickets.ticketHash, digest(ticket)), gt(wsTickets.expiresAt, NOW_MS)))
      .returning({ userId: wsTickets.userId, tokenExpiresAtMs: wsTickets.tokenExpiresAt });
    return row;
  }

  /** Deletes expired rows, in the background (an issue never waits for it). */
  private purge() {
    this.nextPurge = Date.now() + PURGE_EVERY_MS;
    this.db
      .delete(wsTickets)
      .where(lte(wsTickets.expiresAt, NOW_MS))
      .then(
        () => {},
        (err) => this.log.warn({ err }, "purging expired WebSocket tickets failed"),
      );
  }
}
