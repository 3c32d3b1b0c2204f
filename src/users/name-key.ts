/**
 * What user search (`GET /api/users?q=`) matches: the username and display name folded as
 * message search folds text (case, accents, width: search/fold.js), so "emile" and "ÉMILE"
 * find "Émile Zola" on SQLite and PostgreSQL alike (their LIKE folds A–Z alone). Stored in
 * `users.name_key`, written with the names and brought up to date when the server migrates.
 *
 * The key ends with a control character naming the fold() it was made with: a query can
 * never hold a control character (422), so it never matches that mark or the line break
 * between the two names, and a key made by another fold() is found and made again.
 */
import { fold, FOLD_VERSION } from "../search/fold.js";

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

// Both characters of the mark are C0 controls (U+0010–U+001F hold versions up to 15).
if (FOLD_VERSION > 15) throw new Error("name-key.ts: the key's version mark holds FOLD_VERSION up to 15");
const MARK = `\u0001${String.fromCharCode(0x10 + FOLD_VERSION)}`;

export const nameKey = (username: string, displayName: string): string => `${fold(username)}\n${fold(displayName)}${MARK}`;

/**
 * The LIKE patterns (backslash escapes) of a checked, non-empty user search: `folded` for
 * keys, `raw` for a row without one yet (SQLite's LIKE folds A–Z, as ILIKE under "C" does).
 * Null when `q` folds to nothing (tatweel alone, say): then it matches no one, not everyone.
 */
export function nameKeyPatterns(q: string): { folded: string; raw: string } | null {
  const folded = fold(q);
  return folded === "" ? null : { folded: `%${escapeLike(folded)}%`, raw: `%${escapeLike(q)}%` };
}

/** LIKE pattern of a key made by this fold(): a row whose key is not LIKE it is filled again. */
export const CURRENT_KEY = `%${MARK}`;

/** A user whose key is missing or was made by another fold(). */
export interface UnkeyedUser { id: string; username: string; display_name: string }
export const KEY_BATCH = 1000;

/**
 * Fills the missing or outdated name keys of SQLite's users, in batches; run with the
 * migrations (0019 added the column), so search finds everyone from the first request.
 */
export function fillNameKeys(db: { $client: import("bun:sqlite").Database }): number {
  const stale = db.$client.query<UnkeyedUser, [string, string, number]>("SELECT id, username, display_name FROM users WHERE id > ? AND (name_key IS NULL OR name_key NOT LIKE ?) ORDER BY id LIMIT ?");
  // Only while the name is the one read: a rename meanwhile wrote its own key.
  const update = db.$client.query("UPDATE users SET name_key = ? WHERE id = ? AND display_name = ?");
  let done = 0;
  for (let after = ""; ; ) {
    const rows = stale.all(after, CURRENT_KEY, KEY_BATCH);
    if (rows.length === 0) return done;
    db.$client.transaction(() => rows.forEach((r) => update.run(nameKey(r.username, r.display_name), r.id, r.display_name)))();
    done += rows.length;
    after = rows[rows.length - 1]!.id;
  }
}
