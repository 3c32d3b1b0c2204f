import { Elysia } from "elysia";
import { op } from "../http/docs";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import { PageQuery, parseLimit } from "../http/paging";
import { AddMembersBody, Conversation, ConversationPage, CreateConversationBody, Member, MemberPage, RenameBody, RoleBody } from "./model";
import { addMembers, createConversation, deleteConversation, getConversation, listConversationsJson, listMembers, removeMember, renameConversation, setRole } from "./service";

export const conversationRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/conversations", tags: ["conversations"] })
    .use(authPlugin(ctx))
    .use(writeLimit(ctx))
    .post(
      "",
      ({ me, body, set }) => {
        const { created, conversation } = createConversation(ctx, me, body);
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
      return listConversationsJson(ctx, me.id, parseLimit(query.limit), query.cursor);
    }, {
      query: PageQuery,
      detail: op("The caller's conversations, most recent activity first", { 200: ConversationPage }),
    })
    .get("/:id", ({ me, params }) => getConversation(ctx, me.id, params.id), { detail: op("One conversation (members only)", { 200: Conversation }, { errors: [404] }) })
    .patch("/:id", ({ me, params, body }) => renameConversation(ctx, me, params.id, body.title), {
      body: RenameBody,
      detail: op("Rename a group (owner/admin)", { 200: Conversation }, { write: true, errors: [403, 404] }),
    })
    .delete(
      "/:id",
      ({ me, params, set }) => {
        deleteConversation(ctx, me, params.id);
        set.status = 204;
      },
      { detail: op("Delete (group owner, or either side of a direct conversation)", { 204: null }, { write: true, errors: [403, 404] }) },
    )
    .get("/:id/members", ({ me, params, query }) => listMembers(ctx, me.id, params.id, parseLimit(query.limit), query.cursor), {
      query: PageQuery,
      detail: op("The conversation's members in join order, paged (members only)", { 200: MemberPage }, { errors: [404] }),
    })
    .post("/:id/members", ({ me, params, body }) => addMembers(ctx, me, params.id, body.user_ids), {
      body: AddMembersBody,
      detail: op("Add members to a group (owner/admin)", { 200: Conversation }, { write: true, errors: [403, 404] }),
    })
    .delete(
      "/:id/members/:user_id",
      ({ me, params, set }) => {
        removeMember(ctx, me, params.id, params.user_id);
        set.status = 204;
      },
      { detail: op("Remove a member (owner/admin) or leave (yourself)", { 204: null }, { write: true, errors: [403, 404] }) },
    )
    .patch("/:id/members/:user_id", ({ me, params, body }) => setRole(ctx, me, params.id, params.user_id, body.role), {
      body: RoleBody,
      detail: op("Set a member's role (owner); role owner hands ownership over", { 200: Member }, { write: true, errors: [403, 404] }),
    });
