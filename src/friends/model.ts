/** Friendships (PROTOCOL §3.2). */
import { t } from "elysia";
import { Id, named, Nullable, OneOf, PageOf, Shape, Timestamp, type FeatureModel, type Static } from "../lib/model";
import { User } from "../users/model";

export const FriendshipStatus = OneOf("pending", "accepted", "rejected");

export const Friendship = named(
  "Friendship",
  Shape({
    id: Id,
    user_id: t.String({ description: "the requester" }),
    friend_id: t.String({ description: "the addressee" }),
    status: FriendshipStatus,
    requested_at: Timestamp,
    accepted_at: Nullable(Timestamp),
    user: User,
    friend: User,
  }),
);
export type Friendship = Static<typeof Friendship>;

export const FriendshipPage = named("FriendshipPage", PageOf(Friendship));

export const FriendRequestBody = t.Object({ friend_id: t.String({ minLength: 1, maxLength: 64 }) });
export const FriendshipQuery = t.Object({
  status: t.Optional(t.Union([t.Literal("accepted"), t.Literal("pending"), t.Literal("rejected")])),
  direction: t.Optional(t.Union([t.Literal("incoming"), t.Literal("outgoing")])),
});

export const model = {
  events: {
    "friend.request": Shape({ request_id: Id, user_id: Id, friend_id: Id, status: t.Literal("pending"), requested_at: Timestamp, sender: User }),
    "friend.accept": Shape({ friendship_id: Id, user_id: Id, friend_id: Id, status: t.Literal("accepted"), accepted_at: Timestamp, acceptor: User }),
    "friend.remove": Shape({ friendship_id: Id, user_id: Id, friend_id: Id }),
  },
} satisfies FeatureModel;
