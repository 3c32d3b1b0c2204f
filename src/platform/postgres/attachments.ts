/**
 * Attachment rows on PostgreSQL: the AttachmentRows behind Files (src/files/rows.ts has
 * the interface and the SQLite twin), attaching to and releasing from a message inside
 * its transaction, and the attachments of a page of messages.
 */
import { and, asc, eq, inArray, isNotNull, lt, sql } from "drizzle-orm";
import type { AttachmentRow } from "../../db/schema";
import { attachedRows, avatarsReplacedWhere, avatarTakeWhere, checkAttachmentIds, notAnAvatar, readableWhere, type AttachmentRows } from "../../files/rows";
import { groupAttachments, type Attachment } from "../../files/view";
import type { PgDB } from "./client";
import { attachmentUsage, attachments, users } from "./schema";
import type { PgRunner, PgTx } from "./writer";

/** The advisory locks of blob keys: (this class, a hash of the key), apart from other advisory locks. */
const BLOB_LOCKS = 0x626c6f62; // "blob"

/**
 * Until this transaction ends, no other node commits or removes this blob (the per-key
 * lock inside Files covers one node only). Held across the blob store's I/O: one
 * connection per upload or removal in progress.
 */
const lockBlob = (tx: PgTx, key: string) => tx.execute(sql`SELECT pg_advisory_xact_lock(${BLOB_LOCKS}, hashtext(${key}))`);

export function pgAttachmentRows(db: PgDB): AttachmentRows {
  const usedBytes = async (r: PgRunner, userId: string) => {
    const [row] = await r.select({ bytes: attachmentUsage.bytes }).from(attachmentUsage).where(eq(attachmentUsage.userId, userId));
    return row?.bytes ?? 0;
  };
  return {
    usedBytes: (userId) => usedBytes(db, userId),
    insertWithinQuota: (row, quota, commitBlob) =>
      db.transaction(async (tx) => {
        await lockBlob(tx, row.storageKey);
        await commitBlob();
        // Uploads of one user on any node take turns here (SQLite had its single writer):
        // two that each fit cannot both pass the check (the first one's usage row may not
        // exist yet: the user's row is the lock). NO KEY UPDATE: foreign-key checks on the user go on.
        await tx.select({ id: users.id }).from(users).where(eq(users.id, row.uploaderId)).for("no key update");
        if ((await usedBytes(tx, row.uploaderId)) + row.size > quota) return false;
        await tx.insert(attachments).values(row);
        return true;
      }),
    readable: async (id, viewerId) => (await db.select().from(attachments).where(readableWhere(attachments, id, viewerId)))[0],
    avatar: async (id) => (id.includes("\u0000") ? undefined : (await db.select().from(attachments).where(and(eq(attachments.id, id), eq(attachments.state, "avatar"))))[0]),
    // SKIP LOCKED: two nodes sweeping at once take different rows instead of waiting on each other.
    takeUnheld: (cutoff, limit) =>
      db
        .delete(attachments)
        .where(
          inArray(
            attachments.id,
            db.select({ id: attachments.id }).from(attachments).where(and(isNotNull(attachments.unheldAt), lt(attachments.unheldAt, cutoff))).limit(limit).for("update", { skipLocked: true }),
          ),
        )
        .returning(),
    forgetBlob: (key, removeBlob) =>
      db.transaction(async (tx) => {
        await lockBlob(tx, key);
        if ((await tx.select({ id: attachments.id }).from(attachments).where(eq(attachments.storageKey, key)).limit(1)).length === 0) await removeBlob();
      }),
  };
}

/**
 * Takes the sender's new uploads for a message being sent (PostgreSQL twin of rows.ts
 * `attach`). FOR UPDATE: two sends naming the same upload (on any nodes) take turns,
 * and the second sees it attached, as SQLite's single writer would have it.
 */
export async function pgAttach(tx: PgTx, senderId: string, messageId: string, ids: string[]): Promise<AttachmentRow[]> {
  if (ids.length === 0) return [];
  checkAttachmentIds(ids);
  const rows = await tx.select().from(attachments).where(inArray(attachments.id, ids)).orderBy(asc(attachments.id)).for("update");
  const taken = attachedRows(rows, senderId, messageId, ids);
  for (const r of taken) await tx.update(attachments).set({ state: "attached", messageId, position: r.position, unheldAt: null }).where(eq(attachments.id, r.id));
  return taken;
}

/** A user's picture changes (PostgreSQL twin of rows.ts `changeAvatar`): the row update is the lock. */
export async function pgChangeAvatar(tx: PgTx, userId: string, takeId: string | null, now: number) {
  if (takeId !== null) {
    const where = avatarTakeWhere(attachments, takeId, userId);
    const taken = where ? await tx.update(attachments).set({ state: "avatar", unheldAt: null }).where(where).returning({ id: attachments.id }) : [];
    if (!taken.length) throw notAnAvatar(takeId);
  }
  await tx.update(attachments).set({ state: "released", unheldAt: now }).where(avatarsReplacedWhere(attachments, userId, takeId));
}

/** Lets go of a deleted message's files: the sweep removes them after UPLOAD_ORPHAN_TTL. */
export async function pgRelease(tx: PgTx, messageId: string, now: number) {
  await tx.update(attachments).set({ state: "released", messageId: null, unheldAt: now }).where(eq(attachments.messageId, messageId));
}

/** message id → its attachments in order, for the messages among `ids` that have any. */
export async function pgAttachmentsOf(r: PgRunner, ids: string[]): Promise<Map<string, Attachment[]>> {
  if (ids.length === 0) return new Map();
  return groupAttachments(await r.select().from(attachments).where(inArray(attachments.messageId, ids)).orderBy(asc(attachments.position)));
}
