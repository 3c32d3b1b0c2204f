/**
 * A per-user limit on REST writes other than message sends (which have their own,
 * SENDS_PER_MINUTE): creating groups, changing members, profiles, friendships, tickets.
 * Each of those can fan out to many events, so one client must not be able to loop them.
 */
import { Elysia } from "elysia";
import type { AppContext } from "../context";
import { AppError } from "../errors";
import { KeyedBuckets } from "../lib/rate-limit";

/** One budget per app, shared by every route module that uses it. */
const budgets = new WeakMap<AppContext, KeyedBuckets>();

function budgetOf(ctx: AppContext): KeyedBuckets {
  let buckets = budgets.get(ctx);
  if (!buckets) budgets.set(ctx, (buckets = new KeyedBuckets(ctx.config.writesPerMinute, ctx.config.writesPerMinute)));
  return buckets;
}

/** Spends one write of the user's budget; 429 (with Retry-After) when it is used up. */
export function spendWrite(ctx: AppContext, userId: string) {
  const wait = budgetOf(ctx).take(userId);
  if (wait > 0) throw new AppError("rate_limited", "too many changes, slow down", undefined, wait);
}

/** Every non-GET route of the module that uses this spends from the budget. */
export const writeLimit = (ctx: AppContext) => {
  const budget = budgetOf(ctx);
  return new Elysia({ name: "parley.write-limit", seed: ctx.instance })
    .onStop(() => budget.stop())
    .onBeforeHandle({ as: "scoped" }, (c) => {
      if (c.request.method === "GET") return;
      const me = (c as unknown as { me?: { id: string } }).me;
      if (me) spendWrite(ctx, me.id);
    });
};
