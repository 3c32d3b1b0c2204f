/** Attachments (PROTOCOL §9). */
import { t } from "elysia";
import { Id, Int, named, Nullable, Shape, Timestamp, type FeatureModel, type Static } from "../lib/model";

export const Attachment = named(
  "Attachment",
  Shape({
    id: Id,
    filename: t.String(),
    content_type: t.String({ description: "sniffed from the content, never the client's word" }),
    size: Int({ minimum: 0, description: "bytes" }),
    sha256: t.String({ description: "hex" }),
    width: Nullable(Int({ minimum: 1, description: "images only" })),
    height: Nullable(Int({ minimum: 1, description: "images only" })),
    url: t.String({ description: "a link signed for the viewer (valid ATTACHMENT_URL_TTL); the bearer header works too" }),
    thumbnail_url: Nullable(t.String({ description: "images only: a WebP fitting 400×400, signed like url" })),
    created_at: Timestamp,
  }),
);
export type Attachment = Static<typeof Attachment>;

export const model = {} satisfies FeatureModel;
