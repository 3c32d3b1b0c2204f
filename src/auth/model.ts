/** Accounts and tokens (PROTOCOL §3.1). */
import { t } from "elysia";
import { named, Shape, Timestamp, type FeatureModel } from "../lib/model";
import { DISPLAY_NAME, PASSWORD, User, USERNAME } from "../users/model";

export const Session = named("Session", Shape({ token: t.String({ description: "a JWT for Authorization: Bearer" }), expires_at: Timestamp, user: User }));

export const RegisterBody = t.Object({ username: USERNAME, password: PASSWORD, display_name: t.Optional(DISPLAY_NAME) });
/** Loose on purpose: a wrong-shaped username is just a failed login, not a hint. */
export const LoginBody = t.Object({ username: t.String({ minLength: 1, maxLength: 128 }), password: t.String({ minLength: 1, maxLength: 1024 }) });

export const model = {} satisfies FeatureModel;
