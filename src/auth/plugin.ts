import { Elysia } from "elysia";
import type { AppContext } from "../context";
import { AppError } from "../errors";
import { getUserRow } from "../users/service";
import type { UserRow } from "../db/schema";

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  return m?.[1];
}

/** Resolves the caller from a token; 401 for a missing, bad or expired token or a deleted user. */
export async function authenticate(ctx: AppContext, token: string | undefined): Promise<UserRow> {
  if (!token) throw new AppError("unauthorized", "missing bearer token");
  const userId = await ctx.tokens.userIdOf(token);
  if (!userId) throw new AppError("unauthorized", "invalid or expired token");
  const me = getUserRow(ctx.db, userId);
  if (!me) throw new AppError("unauthorized", "user no longer exists");
  return me;
}

/** Routes that use this plugin get `me`, the authenticated user's row. */
export const authPlugin = (ctx: AppContext) =>
  // derive, not resolve: it runs before validation, so a request without a valid token is 401 whatever its body.
  new Elysia({ name: "parley.auth", seed: ctx.instance }).derive({ as: "scoped" }, async ({ headers }) => ({
    me: await authenticate(ctx, bearerToken(headers.authorization)),
  }));
