import { Elysia } from "elysia";
import type { AppContext } from "../context";
import { AppError } from "../errors";
import type { UserRow } from "../db/schema";

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  return m?.[1];
}

/** The authenticated caller, and when their token expires (a live socket is closed then). */
export interface Session { me: UserRow; expiresAtMs: number }

/** Resolves the caller from a token; 401 for a missing, bad or expired token or a deleted user. */
export async function authenticate(ctx: AppContext, token: string | undefined): Promise<Session> {
  if (!token) throw new AppError("unauthorized", "missing bearer token");
  const claims = await ctx.tokens.verify(token);
  if (!claims) throw new AppError("unauthorized", "invalid or expired token");
  const me = await ctx.store.users.row(claims.userId);
  if (!me) throw new AppError("unauthorized", "user no longer exists");
  return { me, expiresAtMs: claims.expiresAtMs };
}

/** Routes that use this plugin get `me`, the authenticated user's row, and the token's `expiresAtMs`. */
export const authPlugin = (ctx: AppContext) =>
  // derive, not resolve: it runs before validation, so a request without a valid token is 401 whatever its body.
  // The header is read from the request: naming the context's `headers` would have Elysia copy
  // every header into an object for every request of these routes (issue #17).
  new Elysia({ name: "parley.auth", seed: ctx.instance }).derive({ as: "scoped" }, async ({ request }) => {
    const { me, expiresAtMs } = await authenticate(ctx, bearerToken(request.headers.get("authorization") ?? undefined));
    return { me, expiresAtMs };
  });
