import { Elysia } from "elysia";
import { op } from "../http/docs";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { AppError } from "../errors";
import { parseLimit } from "../http/paging";
import { EditBody, HistoryQuery, Message, MessagePage, ReactionBody, ReadBody, ReadReceipt, SendBody } from "./model";
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
        await spendSend(ctx, me.id);
        const { created, message, json } = await ctx.store.messages.send(me, params.id, body);
        set.status = created ? 201 : 200;
        if (json === undefined) return message;
        // The text the event log stored: the message is not serialised a second time.
        set.headers["content-type"] = "application/json;charset=utf-8";
        return json;
      },
      { body: SendBody, detail: op("Send (201); a repeated client_msg_id returns the stored message (200)", { 201: Message, 200: Message }, { write: true, errors: [404] }) },
    )
    .get(
      "/api/conversations/:id/messages",
      ({ me, params, query }) => ctx.store.messages.list(me, params.id, { before: query.before, after: query.after, cursor: query.cursor, limit: parseLimit(query.limit) }),
      {
        query: HistoryQuery,
        detail: op("History: newest first, or with `after` oldest first", { 200: MessagePage }, { errors: [404] }),
      },
    )
    .post("/api/conversations/:id/read", async ({ me, params, body }) => (await spendSend(ctx, me.id), ctx.store.messages.markRead(me, params.id, body.message_id)), {
      body: ReadBody,
      detail: op("Move the caller's read position forward", { 200: ReadReceipt }, { write: true, errors: [404] }),
    })
    .patch("/api/messages/:id", async ({ me, params, body }) => (await spendWrite(ctx, me.id), ctx.store.messages.edit(me, params.id, body.content)), {
      body: EditBody,
      detail: op("Edit (sender only)", { 200: Message }, { write: true, errors: [403, 404, 409] }),
    })
    .delete(
      "/api/messages/:id",
      async ({ me, params, set }) => {
        await spendWrite(ctx, me.id);
        await ctx.store.messages.remove(me, params.id);
        set.status = 204;
      },
      { detail: op("Delete (sender, or group owner/admin); leaves a tombstone", { 204: null }, { write: true, errors: [403, 404] }) },
    )
    .post("/api/messages/:id/reactions", async ({ me, params, body }) => (await spendWrite(ctx, me.id), ctx.store.messages.react(me, params.id, body.emoji, "add")), {
      body: ReactionBody,
      detail: op("Add the caller's reaction", { 200: Message }, { write: true, errors: [404, 409] }),
    })
    .delete("/api/messages/:id/reactions/:emoji", async ({ me, params, request }) => (await spendWrite(ctx, me.id), ctx.store.messages.react(me, params.id, emojiSegment(request), "remove")), {
      detail: op("Remove the caller's reaction (emoji URL-encoded)", { 200: Message }, { write: true, errors: [404, 409] }),
    });
};
