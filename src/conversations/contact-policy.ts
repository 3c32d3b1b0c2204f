/**
 * CONTACT_POLICY (PROTOCOL §7.2): who may put whom into a conversation. With `friends`
 * (the default), opening a direct conversation with someone or adding them to a group needs
 * an accepted friendship between the actor and them: a stranger cannot spam people into
 * groups, nor become their co-member to watch their presence. `open` lets anyone, as in v1.
 */
import type { AppContext } from "../context";
import type { Config } from "../config";
import type { DB } from "../db/client";
import { AppError } from "../errors";
import { pairKey } from "../friends/service";

/** Throws 403 not_friends naming every one of `userIds` the actor may not add; checks nothing under `open`. */
export function requireContacts(ctx: AppContext, db: DB, actorId: string, userIds: readonly string[]) {
  const keys = contactKeys(ctx.config, actorId, userIds);
  if (!keys) return;
  const accepted = db.$client
    .query("SELECT pair_key FROM friendships WHERE status = 'accepted' AND pair_key IN (SELECT value FROM json_each(?))")
    .values(JSON.stringify(keys)) as [string][];
  refuseStrangers(userIds, keys, new Set(accepted.map((r) => r[0])));
}

/** The pair keys to look up (one per user, in order), or undefined when there is nothing to check. */
export function contactKeys(config: Pick<Config, "contactPolicy">, actorId: string, userIds: readonly string[]): string[] | undefined {
  if (config.contactPolicy === "open" || userIds.length === 0) return undefined;
  return userIds.map((id) => pairKey(actorId, id));
}

/** Throws 403 not_friends naming, in order, every user whose key is not among the accepted friendships. */
export function refuseStrangers(userIds: readonly string[], keys: string[], accepted: Set<string>) {
  const refused = userIds.filter((_, i) => !accepted.has(keys[i]!));
  if (refused.length === 0) return;
  throw new AppError(
    "not_friends",
    `not your friend${refused.length === 1 ? "" : `s (${refused.length} users)`}: only friends can be put into a conversation; send a friend request first`,
    refused.map((user_id) => ({ user_id })),
  );
}
