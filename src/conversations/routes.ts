import { Elysia } from "elysia";
import { op } from "../http/docs";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import { PageQuery, parseLimit } from "../http/paging";
import { AddMembersBody, ContactPolicy, Conversation, ConversationPage, CreateConversationBody, Member, MemberPage, RenameBody, RoleBody } from "./model";

export const conversationRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/conversations", tags: ["conversations"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .post(
      "",
      async ({ me, body, set }) => {
        const { created, conversation } = await ctx.store.conversations.create(me, body);
        set.status = created ? 201 : 200;
        return conversation;
      },
      {
        body: CreateConversationBody,
        detail: op("Create a direct (one per pair; 200 with the existing one) or group conversation", { 201: Conversation, 200: Conversation }, { write: true, errors: [403, 404] }),
      },
    )
    .get("", ({ me, query, set }) => {
      // Serialised by the service (the same text every new socket gets as conversation.list).
      set.headers["content-type"] = "application/json;charset=utf-8";
      return ctx.store.conversations.listJson(me.id, parseLimit(query.limit), query.cursor);
    }, {
      query: PageQuery,
      detail: op("The caller's conversations, most recent activity first", { 200: ConversationPage }),
    })
    .get("/:id", ({ me, params }) => ctx.store.conversations.get(me.id, params.id), { detail: op("One conversation (members only)", { 200: Conversation }, { errors: [404] }) })
    .patch("/:id", ({ me, params, body }) => ctx.store.conversations.rename(me, params.id, body.title), {
      body: RenameBody,
      detail: op("Rename a group (owner/admin)", { 200: Conversation }, { write: true, errors: [403, 404] }),
    })
    .delete(
      "/:id",
      async ({ me, params, set }) => {
        await ctx.store.conversations.remove(me, params.id);
        set.status = 204;
      },
      { detail: op("Delete (group owner, or either side of a direct conversation)", { 204: null }, { write: true, errors: [403, 404] }) },
    )
    .get("/:id/members", ({ me, params, query }) => ctx.store.conversations.members(me.id, params.id, parseLimit(query.limit), query.cursor), {
      query: PageQuery,
      detail: op("The conversation's members in join order, paged (members only)", { 200: MemberPage }, { errors: [404] }),
    })
    .post("/:id/members", ({ me, params, body }) => ctx.store.conversations.addMembers(me, params.id, body.user_ids), {
      body: AddMembersBody,
      detail: op("Add members to a group (owner/admin)", { 200: Conversation }, { write: true, errors: [403, 404] }),
    })
    .delete(
      "/:id/members/:user_id",
      async ({ me, params, set }) => {
        await ctx.store.conversations.removeMember(me, params.id, params.user_id);
        set.status = 204;
      },
      { detail: op("Remove a member (owner/admin) or leave (yourself)", { 204: null }, { write: true, errors: [403, 404] }) },
    )
    .patch("/:id/members/:user_id", ({ me, params, body }) => ctx.store.conversations.setRole(me, params.id, params.user_id, body.role), {
      body: RoleBody,
      detail: op("Set a member's role (owner); role owner hands ownership over", { 200: Member }, { write: true, errors: [403, 404] }),
    });

/** The server's CONTACT_POLICY (§7.2), for clients: under `open` a client offers conversations with anyone, not only friends. */
export const contactPolicyRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api", tags: ["conversations"] })
    .use(authPlugin(ctx))
    .get("/contact-policy", (): ContactPolicy => ({ contact_policy: ctx.config.contactPolicy }), {
      detail: op("Who may start a conversation with whom here: friends only, or anyone (CONTACT_POLICY)", { 200: ContactPolicy }),
    });
