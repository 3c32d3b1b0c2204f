import { Elysia, t } from "elysia";
import { op } from "../http/docs";
import { Friendship, FriendshipPage, FriendshipQuery, FriendRequestBody } from "./model";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import { PageQuery, parseLimit } from "../http/paging";
import { friendshipsFor } from "../users/presence-view";

export const friendRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/friendships", tags: ["friends"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .post(
      "",
      async ({ me, body, set }) => {
        const { created, friendship } = await ctx.store.friends.request(me, body.friend_id);
        set.status = created ? 201 : 200;
        return (await friendshipsFor(ctx, me.id, [friendship]))[0];
      },
      {
        body: FriendRequestBody,
        detail: op("Send a friend request (201); if they already asked you, it is accepted instead (200)", { 201: Friendship, 200: Friendship }, { write: true, errors: [404, 409] }),
      },
    )
    .patch("/:id/accept", ({ me, params }) => ctx.store.friends.accept(me, params.id), { detail: op("Accept (addressee only)", { 200: Friendship }, { write: true, errors: [403, 404, 409] }) })
    .patch("/:id/reject", async ({ me, params }) => (await friendshipsFor(ctx, me.id, [await ctx.store.friends.reject(me, params.id)]))[0], { detail: op("Reject (addressee only)", { 200: Friendship }, { write: true, errors: [403, 404, 409] }) })
    .delete(
      "/:id",
      async ({ me, params, set }) => {
        await ctx.store.friends.remove(me, params.id);
        set.status = 204;
      },
      { detail: op("Cancel a request or unfriend (either side)", { 204: null }, { write: true, errors: [404] }) },
    )
    .get("", async ({ me, query }) => {
      const page = await ctx.store.friends.list(me, query, parseLimit(query.limit), query.cursor);
      return { ...page, items: await friendshipsFor(ctx, me.id, page.items) };
    }, {
      query: t.Composite([PageQuery, FriendshipQuery]),
      detail: op("The caller's friendships (default: pending and accepted), newest first", { 200: FriendshipPage }),
    });
