/**
 * WebSocket tickets (`POST /api/ws/ticket`): single-use, 30-second stand-ins for the JWT,
 * for clients that keep the token out of URLs. Kept in memory: a restart voids them,
 * which costs a client one more ticket request.
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

export class Tickets {
  /** ticket → its user, its own expiry, and that of the token it stands in for. */
  private live = new Map<string, { userId: string; expiresAt: number; tokenExpiresAtMs: number }>();

  constructor(private ttlMs: number) {}

  issue(userId: string, tokenExpiresAtMs: number) {
    const now = Date.now();
    for (const [k, v] of this.live) if (v.expiresAt <= now) this.live.delete(k);
    const ticket = randomBytes(24).toString("base64url");
    const expiresAt = now + this.ttlMs;
    this.live.set(ticket, { userId, expiresAt, tokenExpiresAtMs });
    return { ticket, expires_at: iso(expiresAt) };
  }

  /** Consumes a ticket: 401 when unknown, used or expired. The socket lives as long as the token would have. */
  async redeem(ctx: AppContext, ticket: string): Promise<Session> {
    const entry = this.live.get(ticket);
    this.live.delete(ticket);
    if (!entry || entry.expiresAt <= Date.now()) throw new AppError("unauthorized", "invalid or expired ticket");
    const me = await ctx.store.users.row(entry.userId);
    if (!me) throw new AppError("unauthorized", "user no longer exists");
    return { me, expiresAtMs: entry.tokenExpiresAtMs };
  }
}

export const ticketRoutes = (ctx: AppContext, tickets: Tickets) =>
  new Elysia({ prefix: "/api/ws", tags: ["realtime"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .post("/ticket", ({ me, expiresAtMs }) => tickets.issue(me.id, expiresAtMs), {
      detail: op("A single-use ticket, valid 30 s, accepted as /ws/user?ticket= instead of the token", { 200: Ticket }, { write: true }),
    });
