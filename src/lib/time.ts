/** Stored times are epoch milliseconds; the API speaks ISO-8601 UTC with milliseconds. */
export const iso = (ms: number) => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null | undefined) => (ms == null ? null : iso(ms));
