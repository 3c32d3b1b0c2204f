import { Elysia } from "elysia";
import { op } from "../http/docs";
import { EventQuery } from "./model";
import { EventPage } from "../models";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { AppError } from "../errors";
import { parseLimit } from "../http/paging";
import { parseEpoch } from "./epoch";

/** A seq from a query string: a non-negative integer, else 400. */
export function parseSeq(name: string, raw: string | undefined): number {
  if (raw === undefined || raw === "") return 0;
  if (!/^\d{1,15}$/.test(raw)) throw new AppError("bad_request", `${name}: not a sequence number`);
  return Number(raw);
}

export const eventRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/events", tags: ["events"] })
    .use(authPlugin(ctx))
    .get(
      "",
      async ({ me, query }) => {
        // Both are parsed (a bad `since` is 400 with a cursor too); the cursor, when given, wins.
        const since = parseSeq("since", query.since);
        const after = query.cursor ? parseSeq("cursor", query.cursor) : since;
        const limit = parseLimit(query.limit, 50, 100); // a list like any other (§2)
        const epoch = parseEpoch(query.epoch);
        const rows = await ctx.feed.replay(me.id, after, limit + 1, epoch);
        const items = rows.slice(0, limit);
        return { items, next_cursor: rows.length > limit ? String(items[items.length - 1]!.seq) : null, epoch: ctx.feed.epoch };
      },
      {
        query: EventQuery,
        detail: op("Replay: the caller's events after `since`, in seq order, and the log's epoch", { 200: EventPage }, {
          errors: [410],
          description: "410 sync_reset when `since` is outside the retained log or `epoch` is not this log's. Each item's `data` is its event's model, as on the WebSocket (/docs/ws).",
        }),
      },
    );
