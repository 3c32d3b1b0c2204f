/** The `Attachment` shape (PROTOCOL §9) and the attachments of a set of messages. */
import { asc } from "drizzle-orm";
import { attachments, type AttachmentRow } from "../db/schema";
import { inJsonArray, prepared } from "../db/prepared";
import type { DB } from "../db/client";
import type { Tx } from "../events/log";
import { iso } from "../lib/time";
import { attachmentPath } from "./paths";

import type { Attachment } from "./model";
/** Its `url`s are bare paths in stored and broadcast messages; signed for the viewer on the way out (links.ts). */
export type { Attachment };

export function toAttachment(a: AttachmentRow): Attachment {
  return {
    id: a.id,
    filename: a.filename,
    content_type: a.contentType,
    size: a.size,
    sha256: a.sha256,
    width: a.width,
    height: a.height,
    url: attachmentPath(a.id),
    thumbnail_url: a.thumbnailKey ? `${attachmentPath(a.id)}/thumbnail` : null,
    created_at: iso(a.createdAt),
  };
}

/** message id → its attachments in order, for the messages among `ids` that have any. */
export function attachmentsOf(db: DB | Tx, ids: string[]): Map<string, Attachment[]> {
  const out = new Map<string, Attachment[]>();
  if (ids.length === 0) return out;
  const rows = prepared(db, "attachments.ofMessages", (d) =>
    d.select().from(attachments).where(inJsonArray(attachments.messageId, "ids")).orderBy(asc(attachments.position)).prepare(),
  ).all({ ids: JSON.stringify(ids) });
  return groupAttachments(rows);
}

/** message id → its attachments, from attached rows in position order. */
export function groupAttachments(rows: AttachmentRow[]): Map<string, Attachment[]> {
  const out = new Map<string, Attachment[]>();
  for (const r of rows) {
    let list = out.get(r.messageId!);
    if (!list) out.set(r.messageId!, (list = []));
    list.push(toAttachment(r));
  }
  return out;
}
