import { t } from "elysia";
import type { UserRow } from "../db/schema";
import { iso } from "../lib/time";

/** The public view of a user (PROTOCOL §3.1). Never carries the password hash. */
export const UserSchema = t.Object({
  id: t.String(),
  username: t.String(),
  display_name: t.String(),
  profile_image_url: t.Union([t.String(), t.Null()]),
  last_active_at: t.String({ format: "date-time" }),
  created_at: t.String({ format: "date-time" }),
});
export type User = typeof UserSchema.static;

type UserFields = Pick<UserRow, "id" | "username" | "displayName" | "profileImageUrl" | "lastActiveAt" | "createdAt">;

export function toUser(u: UserFields): User {
  return {
    id: u.id,
    username: u.username,
    display_name: u.displayName,
    profile_image_url: u.profileImageUrl,
    last_active_at: iso(u.lastActiveAt),
    created_at: iso(u.createdAt),
  };
}

export const USERNAME = t.String({ minLength: 3, maxLength: 32, pattern: "^[A-Za-z0-9_.]+$", description: "3–32 of [a-z0-9_.], case-insensitive" });
/** 8–128 characters: the schema bounds UTF-16 units, AccountService counts code points. */
export const PASSWORD = t.String({ minLength: 8, maxLength: 512, description: "8–128 characters" });
export const PASSWORD_CHARACTERS = { min: 8, max: 128 };
/** 1–64 characters; the schema bounds UTF-16 units loosely, the service counts characters. */
export const DISPLAY_NAME = t.String({ minLength: 1, maxLength: 256, description: "1–64 characters" });
/** An http(s) URL without whitespace or control characters (C0, DEL, C1: no part of a URL). */
export const IMAGE_URL = t.Union([t.String({ maxLength: 2048, pattern: "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$" }), t.Null()]);
