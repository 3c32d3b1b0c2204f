import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import { parseLimit, PageQuery } from "../http/paging";
import { DISPLAY_NAME, IMAGE_URL, toUser, UserSchema } from "./dto";
import { getUser, searchUsers, updateProfile } from "./service";

export const userRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/users", tags: ["users"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .get("/me", ({ me }) => toUser(me), { response: UserSchema, detail: { summary: "The caller's profile" } })
    .patch("/me", ({ me, body }) => toUser(updateProfile(ctx, me.id, body)), {
      body: t.Object({ display_name: t.Optional(DISPLAY_NAME), profile_image_url: t.Optional(IMAGE_URL) }),
      response: UserSchema,
      detail: { summary: "Update the caller's profile; friends and conversation partners get user.update" },
    })
    .get("/:id", ({ params }) => getUser(ctx.db, params.id), { response: UserSchema, detail: { summary: "A user's public profile" } })
    .get("", ({ query }) => searchUsers(ctx.db, query.q, parseLimit(query.limit), query.cursor), {
      query: t.Composite([PageQuery, t.Object({ q: t.Optional(t.String({ maxLength: 64, description: "matches username or display name" })) })]),
      response: t.Object({ items: t.Array(UserSchema), next_cursor: t.Union([t.String(), t.Null()]) }),
      detail: { summary: "Search users by username or display name" },
    });
