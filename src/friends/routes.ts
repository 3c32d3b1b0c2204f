import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import { PageQuery, parseLimit } from "../http/paging";
import { acceptFriend, listFriendships, rejectFriend, removeFriend, requestFriend } from "./service";

export const friendRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/friendships", tags: ["friends"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .post(
      "",
      ({ me, body, set }) => {
        const { created, friendship } = requestFriend(ctx, me, body.friend_id);
        set.status = created ? 201 : 200;
        return friendship;
      },
      {
        body: t.Object({ friend_id: t.String({ minLength: 1, maxLength: 64 }) }),
        detail: { summary: "Send a friend request (201); if they already asked you, it is accepted instead (200)" },
      },
    )
    .patch("/:id/accept", ({ me, params }) => acceptFriend(ctx, me, params.id), { detail: { summary: "Accept (addressee only)" } })
    .patch("/:id/reject", ({ me, params }) => rejectFriend(ctx, me, params.id), { detail: { summary: "Reject (addressee only)" } })
    .delete(
      "/:id",
      ({ me, params, set }) => {
        removeFriend(ctx, me, params.id);
        set.status = 204;
      },
      { detail: { summary: "Cancel a request or unfriend (either side)" } },
    )
    .get("", ({ me, query }) => listFriendships(ctx, me, query, parseLimit(query.limit), query.cursor), {
      query: t.Composite([
        PageQuery,
        t.Object({
          status: t.Optional(t.Union([t.Literal("accepted"), t.Literal("pending"), t.Literal("rejected")])),
          direction: t.Optional(t.Union([t.Literal("incoming"), t.Literal("outgoing")])),
        }),
      ]),
      detail: { summary: "The caller's friendships (default: pending and accepted), newest first" },
    });
