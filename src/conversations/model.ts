/** Conversations and their members (PROTOCOL §3.3, §7.1). */
import { t } from "elysia";
import { Type } from "@sinclair/typebox";
import { Characters, Id, Int, named, Nullable, OneOf, PageOf, Shape, Timestamp, type FeatureModel, type Static } from "../lib/model";
import { User } from "../users/model";
import { Message } from "../messages/model";

const Ref = t.String({ minLength: 1, maxLength: 64 });

/** `GET /api/contact-policy`: who may put whom into a conversation on this server (§7.2), so that a client offers only what the server allows. */
export const ContactPolicy = named("ContactPolicy", Shape({
  contact_policy: t.Union([t.Literal("friends"), t.Literal("open")], { description: "friends: only with accepted friends; open: with anyone (CONTACT_POLICY)" }),
}));
export type ContactPolicy = Static<typeof ContactPolicy>;

export const Role = named("Role", OneOf("owner", "admin", "member"));
export type Role = Static<typeof Role>;

export const Member = named("Member", Shape({ user: User, role: Role, joined_at: Timestamp, last_read_message_id: Nullable(Id) }));
export type Member = Static<typeof Member>;

const ownFields = {
  id: Id,
  type: OneOf("direct", "group"),
  title: Nullable(t.String({ description: "a group's title; for a direct conversation the other member's display name" })),
  created_by: Id,
  created_at: Timestamp,
  updated_at: Timestamp,
};

/** The conversation's own fields, the same for every member. */
export const ConversationFields = named("ConversationFields", Shape(ownFields));
export type ConversationFields = Static<typeof ConversationFields>;

/** What is the same for every member at a point in time, besides the own fields. */
const sharedFields = {
  last_message_at: Nullable(Timestamp),
  is_subscribed: t.Boolean({ description: "always true for members" }),
  member_count: Int({ minimum: 1 }),
};

/**
 * The data of `conversation.update`: a `Conversation` less only what depends on the viewer
 * and the last message itself; merge it into the stored conversation.
 */
export const ConversationUpdate = named("ConversationUpdate", Shape({ ...ownFields, ...sharedFields }));
export type ConversationUpdate = Static<typeof ConversationUpdate>;

/** A conversation as the caller sees it: no member list (contract v2, §7.1). */
export const Conversation = named(
  "Conversation",
  Shape({
    ...ownFields,
    ...sharedFields,
    last_message: Nullable(Message),
    unread_count: Int({ minimum: 0 }),
    my_role: Role,
    my_last_read_message_id: Nullable(Id),
    peer: Nullable(User),
  }),
);
export type Conversation = Static<typeof Conversation>;

export const ConversationPage = named("ConversationPage", PageOf(Conversation));
export const MemberPage = named("MemberPage", PageOf(Member));

/** Shared by POST /api/conversations and the `conversation.create` frame. */
export const CreateConversationBody = t.Object({
  type: t.Union([t.Literal("direct"), t.Literal("group")]),
  user_id: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "direct: the other user" })),
  title: t.Optional(Characters(100, 400, { minLength: 1, description: "group: 1–100 characters" })),
  member_ids: t.Optional(t.Array(t.String({ minLength: 1, maxLength: 64 }), { maxItems: 100_000, description: "group: the other members" })),
});
export const RenameBody = t.Object({ title: t.Optional(Characters(100, 400, { minLength: 1, description: "1–100 characters" })) });
export const AddMembersBody = t.Object({ user_ids: t.Array(Ref, { minItems: 1, maxItems: 100_000 }) });
export const RoleBody = t.Object({ role: Role });

const InConversation = Shape({ conversation_id: Id, user_id: Id });
const Entered = Shape({ conversation_id: Id, success: t.Literal(true) });

export const model = {
  events: {
    "conversation.create": Conversation,
    "conversation.update": ConversationUpdate,
    "conversation.delete": Shape({ conversation_id: Id }),
    "conversation.member_add": Shape({
      conversation_id: Id,
      members: t.Array(Member, { minItems: 1, maxItems: 100 }),
      member_count: Int({ minimum: 1, description: "the count once this frame is applied" }),
    }),
    "conversation.member_remove": Shape({ conversation_id: Id, user_ids: t.Array(Id, { minItems: 1 }), member_count: Int({ minimum: 0 }) }),
    "conversation.member_update": Shape({ conversation_id: Id, member: Member }),
  },
  signals: {
    "conversation.list": ConversationPage,
    "conversation.joined": Entered,
    "conversation.left": Entered,
    "conversation.user_active": InConversation,
    "conversation.user_inactive": InConversation,
  },
  requests: {
    "conversation.join": t.Object({ conversation_id: Ref }),
    "conversation.leave": t.Object({ conversation_id: Ref }),
    "conversation.active": t.Object({ conversation_id: t.Union([Ref, t.Null()]) }),
    "conversation.create": CreateConversationBody,
    "conversation.load": t.Object({ cursor: t.Optional(t.String({ maxLength: 512 })), limit: t.Optional(Type.Integer({ minimum: 1, maximum: 100 })) }),
  },
  acks: { "conversation.create": Conversation },
  replies: { "conversation.join": ["conversation.joined"], "conversation.leave": ["conversation.left"], "conversation.load": ["conversation.list"] },
} satisfies FeatureModel;
