import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { toUser, UserSchema, USERNAME, PASSWORD, DISPLAY_NAME } from "../users/dto";

const AuthResponse = t.Object({ token: t.String(), expires_at: t.String({ format: "date-time" }), user: UserSchema });

export const authRoutes = (ctx: AppContext) =>
  new Elysia({ prefix: "/api/auth", tags: ["auth"] })
    .post(
      "/register",
      async ({ body, set }) => {
        const user = await ctx.accounts.register(body);
        set.status = 201;
        return { ...(await ctx.tokens.issue(user.id)), user: toUser(user) };
      },
      {
        body: t.Object({ username: USERNAME, password: PASSWORD, display_name: t.Optional(DISPLAY_NAME) }),
        response: { 201: AuthResponse },
        detail: { summary: "Create an account and get a token" },
      },
    )
    .post(
      "/login",
      async ({ body, request, server }) => {
        const address = server?.requestIP(request)?.address ?? "unknown";
        const user = await ctx.accounts.login(body, address);
        return { ...(await ctx.tokens.issue(user.id)), user: toUser(user) };
      },
      {
        // Loose on purpose: a wrong-shaped username is just a failed login, not a hint.
        body: t.Object({ username: t.String({ minLength: 1, maxLength: 128 }), password: t.String({ minLength: 1, maxLength: 1024 }) }),
        response: { 200: AuthResponse },
        detail: { summary: "Log in; 401 with one message for a wrong username or password, 429 when rate limited" },
      },
    );
