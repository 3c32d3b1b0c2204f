import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import { parseLimit, PageQuery } from "../http/paging";
import { toUser } from "./dto";
import { op } from "../http/docs";
import { ProfilePatch, User, UserPage } from "./model";
import { userFor, usersFor } from "./presence-view";

export const userRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/users", tags: ["users"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .get("/me", ({ me }) => toUser(me), { detail: op("The caller's profile", { 200: User }) })
    .patch("/me", async ({ me, body }) => toUser(await ctx.store.users.updateProfile(me.id, body)), {
      body: ProfilePatch,
      detail: op("Update the caller's profile; friends and conversation partners get user.update", { 200: User }, { write: true }),
    })
    .get("/:id", async ({ me, params }) => userFor(ctx, me.id, await ctx.store.users.get(params.id)), { detail: op("A user's public profile", { 200: User }, { errors: [404] }) })
    .get("", async ({ me, query }) => {
      const page = await ctx.store.users.search(query.q, parseLimit(query.limit), query.cursor);
      return { ...page, items: await usersFor(ctx, me.id, page.items) };
    }, {
      query: t.Composite([PageQuery, t.Object({ q: t.Optional(t.String({ maxLength: 64, description: "matches username or display name" })) })]),
      detail: op("Search users by username or display name", { 200: UserPage }),
    });
