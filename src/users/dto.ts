import type { UserRow } from "../db/schema";
import { iso } from "../lib/time";
import { User } from "./model";

export { User as UserSchema, USERNAME, PASSWORD, DISPLAY_NAME, IMAGE_URL } from "./model";
export type { User } from "./model";

/** 8–128 characters, counted in code points by AccountService. */
export const PASSWORD_CHARACTERS = { min: 8, max: 128 };

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
