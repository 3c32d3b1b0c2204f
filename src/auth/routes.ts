import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { KeyedBuckets, addressKey } from "../lib/rate-limit";
import { toUser, UserSchema, USERNAME, PASSWORD, DISPLAY_NAME } from "../users/dto";
import { authPlugin } from "./plugin";

const AuthResponse = t.Object({ token: t.String(), expires_at: t.String({ format: "date-time" }), user: UserSchema });

/** The client's address as a rate-limit key (an IPv6 client by its /64). */
const clientAddress = (request: Request, server: { requestIP(r: Request): { address: string } | null } | null) =>
  addressKey(server?.requestIP(request)?.address ?? "unknown");

export const authRoutes = (ctx: AppContext) => {
  // Each registration costs an Argon2id hash and a row: one address must not loop it.
  const perHour = ctx.config.registrationsPerAddress;
  const registrations = new KeyedBuckets(perHour, perHour / 60);
  return new Elysia({ prefix: "/api/auth", tags: ["auth"] })
    .onStop(() => registrations.stop())
    .post(
      "/register",
      async ({ body, set, request, server }) => {
        registrations.spend(clientAddress(request, server), "too many registrations from this address, try again later");
        const user = await ctx.accounts.register(body);
        set.status = 201;
        return { ...(await ctx.tokens.issue(user.id)), user: toUser(user) };
      },
      {
        body: t.Object({ username: USERNAME, password: PASSWORD, display_name: t.Optional(DISPLAY_NAME) }),
        response: { 201: AuthResponse },
        detail: { summary: "Create an account and get a token; 429 past REGISTRATIONS_PER_ADDRESS an hour" },
      },
    )
    .post(
      "/login",
      async ({ body, request, server }) => {
        const user = await ctx.accounts.login(body, clientAddress(request, server));
        return { ...(await ctx.tokens.issue(user.id)), user: toUser(user) };
      },
      {
        // Loose on purpose: a wrong-shaped username is just a failed login, not a hint.
        body: t.Object({ username: t.String({ minLength: 1, maxLength: 128 }), password: t.String({ minLength: 1, maxLength: 1024 }) }),
        response: { 200: AuthResponse },
        detail: { summary: "Log in; 401 with one message for a wrong username or password, 429 when rate limited" },
      },
    )
    .use(refreshRoute(ctx));
};

/**
 * A fresh token for a valid one, so that a client that is in use never meets its token's
 * expiry (the web client refreshes at half of its token's life). An expired token is 401.
 */
const refreshRoute = (ctx: AppContext) =>
  // Mounted inside authRoutes (whose prefix applies), in its own instance so that the auth
  // plugin guards this route only.
  new Elysia({ tags: ["auth"] })
    .use(authPlugin(ctx))
    .post("/refresh", async ({ me }) => ({ ...(await ctx.tokens.issue(me.id)), user: toUser(me) }), {
      response: { 200: AuthResponse },
      detail: { summary: "Exchange a valid token for a new one with a full lifetime" },
    });
