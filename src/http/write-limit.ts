/**
 * The per-user write budget (WRITES_PER_MINUTE, AppContext.budgets) on every non-GET route
 * of a module: creating groups, changing members, profiles, friendships, tickets.
 */
import { Elysia } from "elysia";
import type { AppContext } from "../context";

/** Spends one write of the user's budget; 429 (with Retry-After) when it is used up. */
export const spendWrite = (ctx: AppContext, userId: string) => ctx.budgets.writes.spend(userId, "too many changes, slow down");

/** Spends one message send (or read position) of the user's budget. */
export const spendSend = (ctx: AppContext, userId: string) => ctx.budgets.sends.spend(userId, "too many messages, slow down");

/** Every non-GET route of the module that uses this spends from the write budget. */
export const writeLimit = (ctx: AppContext) =>
  new Elysia({ name: "parley.write-limit", seed: ctx.instance }).onBeforeHandle({ as: "scoped" }, async (c) => {
    if (c.request.method === "GET") return;
    const me = (c as unknown as { me?: { id: string } }).me;
    // Awaited: a cluster's budget answers from PostgreSQL or Redis; a refusal throws.
    if (me) await spendWrite(ctx, me.id);
  });
