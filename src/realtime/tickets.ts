/**
 * WebSocket tickets (`POST /api/ws/ticket`): single-use, 30-second stand-ins for the JWT,
 * for clients that keep the token out of URLs. Redeemable on any node (a TicketStore: in
 * memory on one node, a restart voiding them; PostgreSQL in cluster mode).
 */
import { randomBytes } from "node:crypto";
import { Elysia } from "elysia";
import { op } from "../http/docs";
import { Ticket } from "./model";
import type { AppContext } from "../context";
import { AppError } from "../errors";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import type { Session } from "../auth/plugin";
import { iso } from "../lib/time";
import type { TicketStore } from "../platform/tickets";

export class Tickets {
  constructor(private store: TicketStore, private ttlMs: number) {}

  async issue(userId: string, tokenExpiresAtMs: number) {
    const ticket = randomBytes(24).toString("base64url");
    const expiresAt = await this.store.put(ticket, { userId, tokenExpiresAtMs }, this.ttlMs);
    return { ticket, expires_at: iso(expiresAt) };
  }

  /**
   * Consumes a ticket: 401 when unknown, used or expired, or when the token it was issued
   * for has expired since (§4: an expired token is refused before the upgrade). The socket
   * lives as long as the token would have.
   */
  async redeem(ctx: AppContext, ticket: string): Promise<Session> {
    const grant = await this.store.take(ticket);
    if (!grant) throw new AppError("unauthorized", "invalid or expired ticket");
    if (grant.tokenExpiresAtMs <= Date.now()) throw new AppError("unauthorized", "the token this ticket was issued for has expired");
    const me = await ctx.store.users.row(grant.userId);
    if (!me) throw new AppError("unauthorized", "user no longer exists");
    return { me, expiresAtMs: grant.tokenExpiresAtMs };
  }
}

export const ticketRoutes = (ctx: AppContext, tickets: Tickets) =>
  new Elysia({ prefix: "/api/ws", tags: ["realtime"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .post("/ticket", ({ me, expiresAtMs }) => tickets.issue(me.id, expiresAtMs), {
      detail: op("A single-use ticket, valid 30 s, accepted as /ws/user?ticket= instead of the token", { 200: Ticket }, { write: true }),
    });
