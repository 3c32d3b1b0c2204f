/** The event log over HTTP (PROTOCOL §6); its page model (`EventPage`) is built in src/models.ts from the event catalogue. */
import { t } from "elysia";
import type { FeatureModel } from "../lib/model";
import { LIMIT } from "../http/paging";

/** The name of the event log's timeline (PROTOCOL §7.5): a seq means something only with its epoch. */
export const Epoch = t.String({ description: "the event log's epoch: resume with since and this epoch" });

export const EventQuery = t.Object({
  since: t.Optional(t.String({ description: "the highest seq already processed (default 0)", documented: { type: "integer", minimum: 0, default: 0 } })),
  limit: LIMIT,
  cursor: t.Optional(t.String()),
  epoch: t.Optional(t.String({ description: "the epoch `since` belongs to; another one is 410 sync_reset" })),
});

export const model = {} satisfies FeatureModel;
