import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { AppError } from "../errors";
import { parseLimit } from "../http/paging";
import { EditBody, ReactionBody, ReadBody, SendBody } from "./schemas";
import { deleteMessage, editMessage, listMessages, markRead, react, sendMessage } from "./service";
import { spendSend, spendWrite } from "../http/write-limit";

/**
 * The `:emoji` segment, percent-decoded. Elysia hands over the raw text when decoding
 * fails, which would then remove a reaction named "%E0%A4%A"; that is a 400 instead.
 */
function emojiSegment(request: Request): string {
  // Elysia also matches the route with a trailing slash.
  const path = new URL(request.url).pathname.replace(/\/+$/, "");
  try {
    return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
  } catch {
    throw new AppError("bad_request", "emoji: not valid percent-encoded UTF-8");
  }
}

export const messageRoutes = (ctx: AppContext) => {
  // Sends and read positions (which a client moves as fast as messages arrive) spend the
  // send budget; edits, deletes and reactions the write budget (AppContext.budgets).
  return new Elysia({ tags: ["messages"] })
    .use(authPlugin(ctx))
    .post(
      "/api/conversations/:id/messages",
      async ({ me, params, body, set }) => {
        spendSend(ctx, me.id);
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
    .post("/api/conversations/:id/read", ({ me, params, body }) => (spendSend(ctx, me.id), markRead(ctx, me, params.id, body.message_id)), {
      body: ReadBody,
      detail: { summary: "Move the caller's read position forward" },
    })
    .patch("/api/messages/:id", ({ me, params, body }) => (spendWrite(ctx, me.id), editMessage(ctx, me, params.id, body.content)), {
      body: EditBody,
      detail: { summary: "Edit (sender only)" },
    })
    .delete(
      "/api/messages/:id",
      ({ me, params, set }) => {
        spendWrite(ctx, me.id);
        deleteMessage(ctx, me, params.id);
        set.status = 204;
      },
      { detail: { summary: "Delete (sender, or group owner/admin); leaves a tombstone" } },
    )
    .post("/api/messages/:id/reactions", ({ me, params, body }) => (spendWrite(ctx, me.id), react(ctx, me, params.id, body.emoji, "add")), {
      body: ReactionBody,
      detail: { summary: "Add the caller's reaction" },
    })
    .delete("/api/messages/:id/reactions/:emoji", ({ me, params, request }) => (spendWrite(ctx, me.id), react(ctx, me, params.id, emojiSegment(request), "remove")), {
      detail: { summary: "Remove the caller's reaction (emoji URL-encoded)" },
    });
};
