/**
 * The attachment rows behind Files (uploads, downloads, the orphan sweep), so that Files
 * does not know the engine: this SQLite implementation, and the PostgreSQL one of cluster
 * mode (src/platform/postgres/attachments.ts). Attaching to and releasing from a message
 * happen inside the message's own transaction: `attach` and `release` here (SQLite).
 */
import { and, eq, getTableColumns, inArray, isNotNull, lt, ne, sql, type Column } from "drizzle-orm";
import type { DB } from "../db/client";
import { inJsonArray, prepared } from "../db/prepared";
import { attachments, type AttachmentRow } from "../db/schema";
import { AppError, invalid } from "../errors";
import type { Tx } from "../events/log";
import { MAX_ATTACHMENTS } from "./paths";

/** Each answers now (SQLite) or later (PostgreSQL). */
type Maybe<T> = T | Promise<T>;

export interface AttachmentRows {
  /**
   * Bytes the user's attachments take (attached, new, or released and not yet swept): one
   * row of attachment_usage, kept by triggers (summing the attachments grew with their number).
   */
  usedBytes(userId: string): Maybe<number>;
  /**
   * Commits the upload's blob (`commitBlob`), then inserts its row unless the uploader's
   * attachments would pass `quota` bytes (false). The blob's commit and the row, and a
   * forgetBlob of the same key, never interleave (on any node): the sweep cannot delete a
   * blob between its commit and the row that names it.
   */
  insertWithinQuota(row: AttachmentRow, quota: number, commitBlob: () => Promise<void>): Promise<boolean>;
  /** The row, if the viewer may download it: its uploader, or a member of a conversation holding a live message with it. */
  readable(id: string, viewerId: string): Maybe<AttachmentRow | undefined>;
  /** The attachment, if it is someone's profile picture now (public). */
  avatar(id: string): Maybe<AttachmentRow | undefined>;
  /** Deletes up to `limit` attachments unheld since before `cutoff` and returns them. */
  takeUnheld(cutoff: number, limit: number): Maybe<AttachmentRow[]>;
  /** Runs `removeBlob` unless an attachment still names the blob (see insertWithinQuota). */
  forgetBlob(storageKey: string, removeBlob: () => Promise<void>): Promise<void>;
}

export function sqliteAttachmentRows(db: DB): AttachmentRows {
  // The upload path on bun:sqlite's own statements and transaction, made once: drizzle built a
  // transaction object per upload and mapped the row through placeholders (~40 µs of ~160).
  const sqlite = db.$client;
  const columns = Object.entries(getTableColumns(attachments));
  const insert = sqlite.prepare<void, [AttachmentRow]>(
    `INSERT INTO attachments (${columns.map(([, c]) => `"${c.name}"`).join(", ")}) VALUES (${columns.map(([k]) => `$${k}`).join(", ")})`,
  );
  const usage = sqlite.prepare<{ bytes: number }, [string]>("SELECT bytes FROM attachment_usage WHERE user_id = ?1");
  const usedBytes = (userId: string) => usage.get(userId)?.bytes ?? 0;
  const insertIfRoom = sqlite.transaction((row: AttachmentRow, quota: number) => {
    if (usedBytes(row.uploaderId) + row.size > quota) return false;
    insert.run(row);
    return true;
  });
  return {
    usedBytes,
    // One process (Files' per-key lock orders a blob's commit and its removal) and SQLite's
    // single writer: the check and the insert cannot interleave with another upload's.
    insertWithinQuota: async (row, quota, commitBlob) => {
      await commitBlob();
      return insertIfRoom(row, quota);
    },
    readable: (id, viewerId) => db.select().from(attachments).where(readableWhere(attachments, id, viewerId)).get(),
    avatar: (id) => db.select().from(attachments).where(and(eq(attachments.id, id), eq(attachments.state, "avatar"))).get(),
    takeUnheld: (cutoff, limit) =>
      db
        .delete(attachments)
        .where(inArray(attachments.id, db.select({ id: attachments.id }).from(attachments).where(and(isNotNull(attachments.unheldAt), lt(attachments.unheldAt, cutoff))).limit(limit)))
        .returning()
        .all(),
    forgetBlob: async (key, removeBlob) => {
      if (db.select({ id: attachments.id }).from(attachments).where(eq(attachments.storageKey, key)).limit(1).get() === undefined) await removeBlob();
    },
  };
}

/** The attachment `id`, if the viewer may download it (either dialect's attachments table). */
export const readableWhere = (table: { id: Column; uploaderId: Column; messageId: Column }, id: string, viewerId: string) =>
  and(
    eq(table.id, id),
    sql`(${table.uploaderId} = ${viewerId} OR EXISTS (SELECT 1 FROM messages m JOIN conversation_members cm
      ON cm.conversation_id = m.conversation_id AND cm.user_id = ${viewerId} WHERE m.id = ${table.messageId} AND m.deleted_at IS NULL))`,
  );

/** The checks on a send's attachment_ids that need no rows: at most MAX_ATTACHMENTS, none twice. */
export function checkAttachmentIds(ids: string[]) {
  if (ids.length > MAX_ATTACHMENTS) throw invalid("attachment_ids", `at most ${MAX_ATTACHMENTS}`);
  if (new Set(ids).size !== ids.length) throw invalid("attachment_ids", "an attachment is listed twice");
  // No upload's id holds U+0000; PostgreSQL refuses it in a query (400), SQLite finds nothing: unknown alike.
  const nul = ids.filter((id) => id.includes("\u0000"));
  if (nul.length) throw notUsable(nul);
}

/** `attachment_ids` naming no unattached upload of the sender's, each named in the details. */
const notUsable = (ids: string[]) =>
  new AppError("validation_failed", "attachment_ids: not uploads of yours that are still unattached", ids.map((id) => ({ field: "attachment_ids", message: `${id}: no such unattached upload of yours` })));

/**
 * The send's uploads as attached to `messageId`, in the given order, from their rows
 * before: each must exist, be the sender's, and not be attached yet.
 */
export function attachedRows(rows: AttachmentRow[], senderId: string, messageId: string, ids: string[]): AttachmentRow[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const unusable = ids.filter((id) => {
    const r = byId.get(id);
    return !r || r.uploaderId !== senderId || r.state !== "new";
  });
  if (unusable.length) throw notUsable(unusable);
  return ids.map((id, position) => ({ ...byId.get(id)!, state: "attached", messageId, position, unheldAt: null }));
}

/**
 * Takes the sender's new uploads for a message being sent, in the given order; inside
 * the send's transaction.
 */
export function attach(tx: Tx, senderId: string, messageId: string, ids: string[]): AttachmentRow[] {
  if (ids.length === 0) return [];
  checkAttachmentIds(ids);
  // Prepared once per connection (a writer's `tx` is the connection itself, events/log.ts):
  // drizzle built and prepared both statements for every send with files.
  const q = prepared(tx, "attachments.attach", (d) => ({
    rows: d.select().from(attachments).where(inJsonArray(attachments.id, "ids")).prepare(),
    take: d
      .update(attachments)
      .set({ state: "attached", messageId: sql`${sql.placeholder("message")}`, position: sql`${sql.placeholder("position")}`, unheldAt: null })
      .where(eq(attachments.id, sql.placeholder("id")))
      .prepare(),
  }));
  const taken = attachedRows(q.rows.all({ ids: JSON.stringify(ids) }), senderId, messageId, ids);
  for (const r of taken) q.take.run({ message: messageId, position: r.position, id: r.id });
  return taken;
}

/** `avatar_attachment_id` naming no image upload of the user's that is still unattached. */
export const notAnAvatar = (id: string) => invalid("avatar_attachment_id", `${id}: no such unattached image upload of yours`);

type AvatarColumns = { id: Column; uploaderId: Column; state: Column; thumbnailKey: Column };

/**
 * The upload `id` if it may become `userId`'s picture (either dialect's attachments table): an
 * image of theirs (decoded: it has a thumbnail) that no message holds yet. Null for an id no
 * upload has (U+0000: PostgreSQL refuses it in a query; the same answer on both).
 */
export const avatarTakeWhere = (table: AvatarColumns, id: string, userId: string) =>
  id.includes("\u0000") ? null : and(eq(table.id, id), eq(table.uploaderId, userId), eq(table.state, "new"), isNotNull(table.thumbnailKey));

/** `userId`'s pictures but `keepId`: the ones a new picture (or none) replaces. */
export const avatarsReplacedWhere = (table: AvatarColumns, userId: string, keepId: string | null) =>
  and(eq(table.uploaderId, userId), eq(table.state, "avatar"), keepId === null ? undefined : ne(table.id, keepId));

/**
 * A user's picture changes (inside the profile's transaction): the upload `takeId` becomes it
 * (else 422), and the one it replaces, if any, is let go (the sweep removes it after
 * UPLOAD_ORPHAN_TTL). `takeId` null: a picture by URL, or none.
 */
export function changeAvatar(tx: Tx, userId: string, takeId: string | null, now: number) {
  if (takeId !== null) {
    const where = avatarTakeWhere(attachments, takeId, userId);
    const taken = where && tx.update(attachments).set({ state: "avatar", unheldAt: null }).where(where).returning({ id: attachments.id }).get();
    if (!taken) throw notAnAvatar(takeId);
  }
  tx.update(attachments).set({ state: "released", unheldAt: now }).where(avatarsReplacedWhere(attachments, userId, takeId)).run();
}

/** Lets go of a deleted message's files: the sweep removes them after UPLOAD_ORPHAN_TTL. */
export function release(tx: Tx, messageId: string, now: number) {
  tx.update(attachments).set({ state: "released", messageId: null, unheldAt: now }).where(eq(attachments.messageId, messageId)).run();
}
