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
    /** The user id a valid, unexpired token was issued for; null for anything else. */
    async userIdOf(token: string | undefined | null): Promise<string | null> {
      if (!token) return null;
      const known = verified.get(token);
      if (known && known.expiresAtMs > Date.now()) return known.userId;
      const payload = await verify(token, { algorithms: ["HS256"] });
      if (!payload || typeof payload.sub !== "string") return null;
      if (verified.size >= 10_000) verified.clear();
      if (typeof payload.exp === "number") verified.set(token, { userId: payload.sub, expiresAtMs: payload.exp * 1000 });
      return payload.sub;
    },
  };
}

export type Tokens = ReturnType<typeof createTokens>;
