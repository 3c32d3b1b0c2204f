import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authPlugin } from "../auth/plugin";
import { writeLimit } from "../http/write-limit";
import { PageQuery, parseLimit } from "../http/paging";
import { CreateConversationBody } from "./schemas";
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
      { body: CreateConversationBody, detail: { summary: "Create a direct (one per pair; 200 with the existing one) or group conversation" } },
    )
    .get("", ({ me, query, set }) => {
      // Serialised by the service (the same text every new socket gets as conversation.list).
      set.headers["content-type"] = "application/json;charset=utf-8";
      return listConversationsJson(ctx, me.id, parseLimit(query.limit), query.cursor);
    }, {
      query: PageQuery,
      detail: { summary: "The caller's conversations, most recent activity first" },
    })
    .get("/:id", ({ me, params }) => getConversation(ctx, me.id, params.id), { detail: { summary: "One conversation (members only)" } })
    .patch("/:id", ({ me, params, body }) => renameConversation(ctx, me, params.id, body.title), {
      body: t.Object({ title: t.Optional(t.String({ minLength: 1, maxLength: 400, description: "1–100 characters" })) }),
      detail: { summary: "Rename a group (owner/admin)" },
    })
    .delete(
      "/:id",
      ({ me, params, set }) => {
        deleteConversation(ctx, me, params.id);
        set.status = 204;
      },
      { detail: { summary: "Delete (group owner, or either side of a direct conversation)" } },
    )
    .get("/:id/members", ({ me, params, query }) => listMembers(ctx, me.id, params.id, parseLimit(query.limit), query.cursor), {
      query: PageQuery,
      detail: { summary: "The conversation's members in join order, paged (members only)" },
    })
    .post("/:id/members", ({ me, params, body }) => addMembers(ctx, me, params.id, body.user_ids), {
      body: t.Object({ user_ids: t.Array(t.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 100_000 }) }),
      detail: { summary: "Add members to a group (owner/admin)" },
    })
    .delete(
      "/:id/members/:user_id",
      ({ me, params, set }) => {
        removeMember(ctx, me, params.id, params.user_id);
        set.status = 204;
      },
      { detail: { summary: "Remove a member (owner/admin) or leave (yourself)" } },
    )
    .patch("/:id/members/:user_id", ({ me, params, body }) => setRole(ctx, me, params.id, params.user_id, body.role), {
      body: t.Object({ role: t.Union([t.Literal("owner"), t.Literal("admin"), t.Literal("member")]) }),
      detail: { summary: "Set a member's role (owner); role owner hands ownership over" },
    });
