/** Stored times are epoch milliseconds; the API speaks ISO-8601 UTC with milliseconds. */
export const iso = (ms: number) => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null | undefined) => (ms == null ? null : iso(ms));

let lastActivity = 0;

/**
 * An ordering key for "most recent activity": milliseconds, bumped past the previous key
 * when two changes land in the same millisecond, so a later change always sorts first.
 */
export function activityKey(now = Date.now()): number {
  lastActivity = Math.max(now, lastActivity + 1);
  return lastActivity;
}
