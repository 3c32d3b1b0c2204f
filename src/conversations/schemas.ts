import { t } from "elysia";

/** Shared by POST /api/conversations and the `conversation.create` frame. */
export const CreateConversationBody = t.Object({
  type: t.Union([t.Literal("direct"), t.Literal("group")]),
  user_id: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "direct: the other user" })),
  title: t.Optional(t.String({ minLength: 1, maxLength: 400, description: "group: 1–100 characters" })),
  member_ids: t.Optional(t.Array(t.String({ minLength: 1, maxLength: 64 }), { maxItems: 100_000, description: "group: the other members" })),
});
