/** The error body of every REST error (PROTOCOL §2, §12). */
import { t } from "elysia";
import { named, OneOf, Shape, type FeatureModel } from "../lib/model";
import { ERROR_CODES } from "../errors";

export const ErrorCode = OneOf(...ERROR_CODES);

export const ErrorBody = named(
  "Error",
  Shape({
    error: Shape({
      code: ErrorCode,
      message: t.String({ description: "for humans; never a stack trace or SQL" }),
      details: t.Optional(t.Unknown({ description: "validation_failed: [{field, message}]; others: what the code names" })),
    }),
  }),
);

/** GET /health. */
export const Health = named(
  "Health",
  Shape({
    status: OneOf("ok", "unavailable"),
    node_id: t.Optional(t.String({ description: "this node (cluster mode: each node its own; /metrics are per node)" })),
    postgres: t.Optional(OneOf("ok", "unreachable")),
    nats: t.Optional(OneOf("ok", "unreachable")),
    redis: t.Optional(OneOf("ok", "unreachable")),
  }),
);

export const model = {} satisfies FeatureModel;
