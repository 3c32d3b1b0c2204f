/**
 * `last_active_at` is presence: it moves when a user comes online and goes offline. Presence
 * is visible only to the user, friends and conversation partners (PROTOCOL §5, §7.2), so
 * anyone else reads a user's `created_at` there: a stranger polling `GET /api/users/:id`
 * watched them come and go, while `user.status.subscribe` refused them (from an acceptance
 * pass). The field stays a timestamp, as §3.1's `User` has it.
 */
import type { AppContext } from "../context";
import type { User } from "./model";
import type { Friendship } from "../friends/model";

/** Which of `ids` `viewer` may see the presence of (themself included). */
async function visibleTo(ctx: AppContext, viewer: string, ids: string[]): Promise<Set<string>> {
  const others = [...new Set(ids)].filter((id) => id !== viewer);
  const visible = others.length ? await ctx.store.users.visibleAmong(viewer, others) : new Set<string>();
  return new Set([viewer, ...visible]);
}

const hidden = (u: User): User => ({ ...u, last_active_at: u.created_at });

/** `people` as `viewer` may see them. */
export async function usersFor(ctx: AppContext, viewer: string, people: User[]): Promise<User[]> {
  const visible = await visibleTo(ctx, viewer, people.map((u) => u.id));
  return people.map((u) => (visible.has(u.id) ? u : hidden(u)));
}

export const userFor = async (ctx: AppContext, viewer: string, person: User): Promise<User> => (await usersFor(ctx, viewer, [person]))[0]!;

/** Friendships as `viewer` may see them: a pending request's other side may be a stranger. */
export async function friendshipsFor(ctx: AppContext, viewer: string, list: Friendship[]): Promise<Friendship[]> {
  const pending = list.filter((f) => f.status !== "accepted");
  if (!pending.length) return list;
  const visible = await visibleTo(ctx, viewer, pending.flatMap((f) => [f.user.id, f.friend.id]));
  const seen = (u: User) => (visible.has(u.id) ? u : hidden(u));
  return list.map((f) => (f.status === "accepted" ? f : { ...f, user: seen(f.user), friend: seen(f.friend) }));
}
