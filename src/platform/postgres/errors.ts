/** PostgreSQL errors as the store needs them (drizzle wraps the driver's error as `cause`). */
const pgError = (e: unknown): { errno?: string; code?: string; constraint?: string } | undefined => {
  for (let x = e as { cause?: unknown } | undefined, depth = 0; x && depth < 4; x = x.cause as typeof x, depth++)
    if ((x as { name?: string }).name === "PostgresError") return x as never;
  return undefined;
};

/** A unique index refused the row (SQLSTATE 23505); `constraint` narrows it to one index. */
export function isUniqueViolation(e: unknown, constraint?: string): boolean {
  const pg = pgError(e);
  return pg?.errno === "23505" && (constraint === undefined || pg.constraint === constraint);
}
