import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { LIMIT, parseLimit } from "../http/paging";
import { searchConversations, searchMessages } from "./service";
import { op } from "../http/docs";
import { SearchHitPage } from "./model";
import { ConversationPage } from "../conversations/model";

/** Searches are reads, but a 1–2 character one scans: each spends the user's search budget. */
const spendSearch = (ctx: AppContext, userId: string) => ctx.budgets.searches.spend(userId, "too many searches, slow down");

const Q = t.Optional(t.String({ description: "words (all must match) and \"quoted phrases\"; 1–256 characters" }));
const Limit = LIMIT;

export const searchRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/search", tags: ["search"] })
    .use(authPlugin(ctx))
    .get(
      "/messages",
      async ({ me, query }) => {
        const limit = parseLimit(query.limit);
        await spendSearch(ctx, me.id);
        return await searchMessages(ctx, me, { ...query, limit });
      },
      {
        query: t.Object({
          q: Q,
          conversation_id: t.Optional(t.String()),
          sender_id: t.Optional(t.String()),
          before: t.Optional(t.String({ description: "ISO timestamp: sent before" })),
          after: t.Optional(t.String({ description: "ISO timestamp: sent after" })),
          cursor: t.Optional(t.String()),
          limit: Limit,
        }),
        detail: op("Messages of the caller's conversations matching q, newest first, with highlighted snippets", { 200: SearchHitPage }, { errors: [404, 429], description: "404 for a conversation_id that is not one of the caller's; 422 for an empty q; 429 past the per-user search budget." }),
      },
    )
    .get(
      "/conversations",
      async ({ me, query }) => {
        const limit = parseLimit(query.limit);
        await spendSearch(ctx, me.id);
        return await searchConversations(ctx, me, { ...query, limit });
      },
      {
        query: t.Object({ q: Q, cursor: t.Optional(t.String()), limit: Limit }),
        detail: op("The caller's conversations whose title or peer's name matches q (quick switcher)", { 200: ConversationPage }, { errors: [429] }),
      },
    );
