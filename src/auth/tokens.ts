import { jwt } from "@elysiajs/jwt";
import { iso } from "../lib/time";

/**
 * HS256 tokens through @elysiajs/jwt. The plugin's sign/verify are also used outside a
 * request context (the WebSocket upgrade), so they are taken from its decorator once.
 */
export function createTokens(secret: string, ttlSeconds: number) {
  const plugin = jwt({ name: "jwt", secret, alg: "HS256" });
  const { sign, verify } = plugin.decorator.jwt;
  // Tokens already verified, until they expire: a client sends the same token with every
  // request, and the HMAC check is a visible share of a message send. Bounded; cleared when full.
  const verified = new Map<string, { userId: string; expiresAtMs: number }>();
  return {
    plugin,
    async issue(userId: string) {
      const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
      const token = await sign({ sub: userId, exp });
      return { token, expires_at: iso(exp * 1000) };
    },
    /**
     * Who a valid, unexpired token was issued for, and until when; null for anything else,
     * including a token without `exp` (Parley never issues one: it would never expire).
     */
    async verify(token: string | undefined | null): Promise<{ userId: string; expiresAtMs: number } | null> {
      if (!token) return null;
      const known = verified.get(token);
      if (known && known.expiresAtMs > Date.now()) return known;
      const payload = await verify(token, { algorithms: ["HS256"] });
      if (!payload || typeof payload.sub !== "string" || typeof payload.exp !== "number") return null;
      if (verified.size >= 10_000) verified.clear();
      const claims = { userId: payload.sub, expiresAtMs: payload.exp * 1000 };
      verified.set(token, claims);
      return claims;
    },
  };
}

export type Tokens = ReturnType<typeof createTokens>;
