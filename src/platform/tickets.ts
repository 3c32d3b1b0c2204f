/**
 * Where WebSocket tickets (`POST /api/ws/ticket`, src/realtime/tickets.ts) wait to be
 * redeemed. A ticket issued on any node must be redeemable once on any node (issue #16): a
 * load balancer sends the upgrade wherever it likes. Single node: in memory, as cheap as
 * before the seam. Cluster: PostgreSQL, one statement per issue and one per redemption.
 */
import type { Awaitable } from "../lib/awaitable";

/** What a ticket stands in for: its user, and when the token it was issued with expires. */
export interface TicketGrant {
  userId: string;
  tokenExpiresAtMs: number;
}

export interface TicketStore {
  /** Keeps `grant` under `ticket` for `ttlMs`; answers when it expires (ms since the epoch). */
  put(ticket: string, grant: TicketGrant, ttlMs: number): Awaitable<number>;
  /**
   * Removes the ticket and answers its grant if it had not expired; undefined when unknown,
   * used or expired. Atomic: of two redemptions of one ticket at once, on any nodes, one wins.
   */
  take(ticket: string): Awaitable<TicketGrant | undefined>;
}
