/** Users and presence (PROTOCOL §3.1, §4.4). */
import { t } from "elysia";
import { Characters, Id, named, Nullable, PageOf, Shape, Timestamp, TimestampOf, type FeatureModel, type Static } from "../lib/model";

/** A user's picture as served: an http(s) URL they set, or the path of one uploaded here. */
export const PICTURE = Nullable(t.String({ description: "an http(s) URL set by the user, or for a picture uploaded here a path on this server (/api/avatars/<id>): resolve it against the server's address" }));

/** The public view of a user. Never carries the password hash. */
export const User = named(
  "User",
  Shape({
    id: Id,
    username: t.String({ description: "3–32 of [a-z0-9_.], stored lower-case" }),
    display_name: t.String(),
    profile_image_url: PICTURE,
    last_active_at: TimestampOf("when the user last came online or went offline: presence, so to anyone who may not see their presence (not a friend, no conversation shared) it is created_at"),
    created_at: Timestamp,
  }),
);
export type User = Static<typeof User>;

export const UserPage = named("UserPage", PageOf(User));

export const USERNAME = t.String({ minLength: 3, maxLength: 32, pattern: "^[A-Za-z0-9_.]+$", "x-pattern-message": "may hold only letters a–z, digits, _ and .", description: "3–32 of [a-z0-9_.], case-insensitive" });
/** 8–128 characters: the schema bounds UTF-16 units, AccountService counts code points. */
export const PASSWORD = Characters(128, 512, { minLength: 8, description: "8–128 characters" });
/** 1–64 characters; the schema bounds UTF-16 units loosely, the service counts characters. */
export const DISPLAY_NAME = Characters(64, 256, { minLength: 1, description: "1–64 characters" });
/** An http(s) URL without whitespace or control characters (C0, DEL, C1: no part of a URL). */
export const IMAGE_URL = t.Union([t.String({ maxLength: 2048, pattern: "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2069\\ufeff]+$", "x-pattern-message": "must be an http:// or https:// address without spaces or invisible characters" }), t.Null()]);

/** An image upload of the caller's (POST /api/uploads, not attached to a message) made their picture. */
export const AVATAR_ATTACHMENT_ID = t.String({
  minLength: 1,
  maxLength: 64,
  description: "an image the caller uploaded (POST /api/uploads) and has not attached: it becomes their picture, profile_image_url /api/avatars/<id> (public); not with profile_image_url",
});

export const ProfilePatch = t.Object({ display_name: t.Optional(DISPLAY_NAME), profile_image_url: t.Optional(IMAGE_URL), avatar_attachment_id: t.Optional(AVATAR_ATTACHMENT_ID) });

/** `user.online` / `user.offline`, and the reply to subscribing to one user. */
export const Presence = named(
  "Presence",
  Shape({ user_id: Id, online: t.Boolean(), timestamp: Timestamp, last_active_at: Nullable(Timestamp) }),
);
export const PresenceStatus = named("PresenceStatus", Shape({ user_id: Id, online: t.Boolean(), last_active_at: Timestamp }));

/** `{user_id}` or `{user_ids}` (at most 500), never both: the branch is the shape that was validated (test/schema-audit.ts). */
const StatusTargets = t.Union([
  t.Object({ user_id: t.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
  t.Object({ user_ids: t.Array(t.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 500 }) }, { additionalProperties: false }),
]);

export const model = {
  events: { "user.update": User },
  signals: {
    "user.online": Presence,
    "user.offline": Presence,
    "user.status": Shape({ statuses: t.Array(PresenceStatus) }),
  },
  requests: {
    "user.status.subscribe": StatusTargets,
    "user.status.unsubscribe": StatusTargets,
  },
  acks: { "user.status.unsubscribe": t.Null() },
  replies: { "user.status.subscribe": ["user.online", "user.offline", "user.status"] },
} satisfies FeatureModel;
