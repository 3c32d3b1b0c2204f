import { Elysia } from "elysia";
import type { AppContext } from "../context";
import { clientAddressKey, trustedProxies } from "../http/client-address";
import { toUser } from "../users/dto";
import { op } from "../http/docs";
import { LoginBody, RegisterBody, Session } from "./model";
import { authPlugin } from "./plugin";

type Server = { requestIP(r: Request): { address: string } | null } | null;

export const authRoutes = (ctx: AppContext) => {
  const trusted = trustedProxies(ctx.config.trustedProxies);
  const clientAddress = (request: Request, server: Server) => clientAddressKey(server?.requestIP(request)?.address, request.headers.get("x-forwarded-for"), trusted);
  return new Elysia({ prefix: "/api/auth", tags: ["auth"] })
    .post(
      "/register",
      async ({ body, set, request, server }) => {
        // Each registration costs an Argon2id hash and a row: one address must not loop it.
        await ctx.budgets.registrations.spend(clientAddress(request, server), "too many registrations from this address, try again later");
        const user = await ctx.accounts.register(body);
        set.status = 201;
        return { ...(await ctx.tokens.issue(user.id)), user: toUser(user) };
      },
      {
        body: RegisterBody,
        detail: op("Create an account and get a token", { 201: Session }, { public: true, errors: [409, 429, 507], description: "409 when the username is taken; 429 past REGISTRATIONS_PER_ADDRESS an hour." }),
      },
    )
    .post(
      "/login",
      async ({ body, request, server }) => {
        const user = await ctx.accounts.login(body, clientAddress(request, server));
        return { ...(await ctx.tokens.issue(user.id)), user: toUser(user) };
      },
      {
        body: LoginBody,
        detail: op("Log in", { 200: Session }, { public: true, errors: [401, 429], description: "401 with one message for a wrong username or password; 429 when login failures are rate limited." }),
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
      detail: op("Exchange a valid token for a new one with a full lifetime", { 200: Session }),
    });
