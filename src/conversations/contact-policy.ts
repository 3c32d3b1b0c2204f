/**
 * CONTACT_POLICY (PROTOCOL §7.2): who may put whom into a conversation. With `friends`
 * (the default), opening a direct conversation with someone or adding them to a group needs
 * an accepted friendship between the actor and them: a stranger cannot spam people into
 * groups, nor become their co-member to watch their presence. `open` lets anyone, as in v1.
 */
import type { AppContext } from "../context";
import type { DB } from "../db/client";
import { AppError } from "../errors";
import { pairKey } from "../friends/service";

/** Throws 403 not_friends naming every one of `userIds` the actor may not add; checks nothing under `open`. */
export function requireContacts(ctx: AppContext, db: DB, actorId: string, userIds: readonly string[]) {
  if (ctx.config.contactPolicy === "open" || userIds.length === 0) return;
  const keys = userIds.map((id) => pairKey(actorId, id));
  const accepted = new Set(
    (db.$client
      .query("SELECT pair_key FROM friendships WHERE status = 'accepted' AND pair_key IN (SELECT value FROM json_each(?))")
      .values(JSON.stringify(keys)) as [string][]).map((r) => r[0]),
  );
  const refused = userIds.filter((_, i) => !accepted.has(keys[i]!));
  if (refused.length === 0) return;
  throw new AppError(
    "not_friends",
    `not your friend${refused.length === 1 ? "" : `s (${refused.length} users)`}: only friends can be put into a conversation; send a friend request first`,
    refused.map((user_id) => ({ user_id })),
  );
}
