/** Stored times are epoch milliseconds; the API speaks ISO-8601 UTC with milliseconds. */
export const iso = (ms: number) => new Date(ms).toISOString();
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
