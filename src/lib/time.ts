/**
 * Stored times are epoch milliseconds; the API speaks ISO-8601 UTC with milliseconds.
 * Remembered: the same few times are written again and again (a conversation's dates in
 * every list of every member, a frame's timestamp for every frame of the same millisecond),
 * and `toISOString` costs ~150 ns against ~10 for a lookup (a list of 5 has 15 dates; issue
 * #17). Bounded: emptied when full (~1 MB at most).
 */
export function iso(ms: number): string {
  let text = isoTexts.get(ms);
  if (text === undefined) {
    if (isoTexts.size >= ISO_TEXTS) isoTexts.clear();
    isoTexts.set(ms, (text = new Date(ms).toISOString()));
  }
  return text;
}
const ISO_TEXTS = 10_000;
const isoTexts = new Map<number, string>();
export const isoOrNull = (ms: number | null | undefined) => (ms == null ? null : iso(ms));

let lastActivity = 0;

/**
 * An ordering key for "most recent activity": microseconds since the epoch, bumped past
 * the previous key when two changes land in the same microsecond, so a later change always
 * sorts first. It can only run ahead of the clock past a million changes a second.
 */
export function activityKey(nowMs = Date.now()): number {
  lastActivity = Math.max(nowMs * 1000, lastActivity + 1);
  return lastActivity;
}

/** Continues from the highest key already stored (at start, so a restart never goes back). */
export function seedActivity(stored: number | null) {
  if (stored !== null && stored > lastActivity) lastActivity = stored;
}
