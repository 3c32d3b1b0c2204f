import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { AppError } from "../errors";
import { parseLimit } from "../http/paging";
import { EditBody, ReactionBody, ReadBody, SendBody } from "./schemas";
import { deleteMessage, editMessage, listMessages, markRead, react, sendMessage } from "./service";
import { KeyedBuckets } from "../lib/rate-limit";

export const messageRoutes = (ctx: AppContext) => {
  const sends = new KeyedBuckets(ctx.config.sendsPerMinute, ctx.config.sendsPerMinute);
  return new Elysia({ tags: ["messages"] })
    .use(authPlugin(ctx))
    .onStop(() => sends.stop())
    .post(
      "/api/conversations/:id/messages",
      async ({ me, params, body, set }) => {
        const wait = sends.take(me.id);
        if (wait > 0) throw new AppError("rate_limited", "too many messages, slow down", undefined, wait);
        const { created, message } = await sendMessage(ctx, me, params.id, body);
        set.status = created ? 201 : 200;
        return message;
      },
      { body: SendBody, detail: { summary: "Send (201); a repeated client_msg_id returns the stored message (200)" } },
    )
    .get(
      "/api/conversations/:id/messages",
      ({ me, params, query }) => listMessages(ctx, me, params.id, { before: query.before, after: query.after, cursor: query.cursor, limit: parseLimit(query.limit) }),
      {
        query: t.Object({
          before: t.Optional(t.String({ description: "newest first, older than this message id" })),
          after: t.Optional(t.String({ description: "oldest first, newer than this message id" })),
          cursor: t.Optional(t.String()),
          limit: t.Optional(t.String({ description: "1–100, default 50" })),
        }),
        detail: { summary: "History" },
      },
    )
    .post("/api/conversations/:id/read", ({ me, params, body }) => markRead(ctx, me, params.id, body.message_id), {
      body: ReadBody,
      detail: { summary: "Move the caller's read position forward" },
    })
    .patch("/api/messages/:id", ({ me, params, body }) => editMessage(ctx, me, params.id, body.content), {
      body: EditBody,
      detail: { summary: "Edit (sender only)" },
    })
    .delete(
      "/api/messages/:id",
      ({ me, params, set }) => {
        deleteMessage(ctx, me, params.id);
        set.status = 204;
      },
      { detail: { summary: "Delete (sender, or group owner/admin); leaves a tombstone" } },
    )
    .post("/api/messages/:id/reactions", ({ me, params, body }) => react(ctx, me, params.id, body.emoji, "add"), {
      body: ReactionBody,
      detail: { summary: "Add the caller's reaction" },
    })
    .delete("/api/messages/:id/reactions/:emoji", ({ me, params }) => react(ctx, me, params.id, params.emoji, "remove"), {
      detail: { summary: "Remove the caller's reaction (emoji URL-encoded)" },
    });
};
