/**
 * Attachments (PROTOCOL §9): uploads streamed into the blob store, who may download, and
 * the orphan sweep. Their rows are behind AttachmentRows (rows.ts: SQLite, or PostgreSQL
 * in cluster mode), which also attaches them to messages and releases them.
 */
import type { Config } from "../config";
import type { AttachmentRow } from "../db/schema";
import { AppError, invalid, notFound } from "../errors";
import type { Logger } from "../log";
import { isStorageFull, storageFull } from "../db/storage";
import { describeImage } from "./images";
import { AttachmentLinks } from "./links";
import { cleanFilename } from "./names";
import { filePart, multipartBoundary, TruncatedBody } from "./multipart";
import { sniff } from "./sniff";
import { BlobTooLarge, StorageError, type BlobStore, type StagedBlob } from "./storage";
import { toAttachment, type Attachment } from "./view";
import type { AttachmentRows } from "./rows";
/** Room for a multipart body's boundaries and part headers around the file itself. */
const MULTIPART_OVERHEAD = 64 * 1024;
/** Retry-After of a 503 when the file storage is unreachable (an S3 endpoint down): a few seconds, not a hammering. */
const STORAGE_RETRY_AFTER_MS = 5000;

/** Runs async work one at a time per key (a blob's commit vs. its removal by the sweep). */
class KeyedLock {
  private tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = next.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => this.tails.get(key) === tail && this.tails.delete(key));
    return next;
  }
}

/** Every upload inserts a row: prepared once per database (building it anew cost ~0.3 ms an upload). */
export interface UploadSource {
  request: Request;
  filename: string | undefined;
  /** For the log line of a storage failure. */
  requestId?: string;
}

export class Files {
  readonly links: AttachmentLinks;
  private locks = new KeyedLock();
  private sweeper: Timer;
  private sweeping: Promise<number> | null = null;

  constructor(private rows: AttachmentRows, readonly store: BlobStore, private config: Config, private log: Logger, secret: string) {
    this.links = new AttachmentLinks(secret, config.attachmentUrlTtlSeconds);
    const ttlMs = config.uploadOrphanTtlSeconds * 1000;
    this.sweeper = setInterval(() => void this.sweep().catch((err) => log.error({ err }, "orphan sweep failed")), Math.min(Math.max(ttlMs / 4, 1000), 600_000));
    this.sweeper.unref();
  }

  async stop() {
    clearInterval(this.sweeper);
    await this.sweeping;
  }

  /** Bytes the user's attachments take (attached, new, or released and not yet swept). */
  async usedBytes(userId: string): Promise<number> {
    return await this.rows.usedBytes(userId);
  }

  /**
   * Streams one upload into the store: the raw body (`?filename=`, its Content-Type) or a
   * multipart/form-data body's `file` part. 413 past MAX_UPLOAD_BYTES and 403
   * `quota_exceeded` past the user's quota, from Content-Length before reading when it
   * is given, else as soon as the bytes pass the limit; a body cut short leaves nothing
   * (400). A failing store leaves nothing either: 503, 507 or 500, logged (see `failed`).
   */
  async upload(uploaderId: string, source: UploadSource): Promise<Attachment> {
    try {
      return await this.uploadOnce(uploaderId, source);
    } catch (err) {
      throw this.failed(err, { op: "upload", user_id: uploaderId, request_id: source.requestId });
    }
  }

  private async uploadOnce(uploaderId: string, { request, filename }: UploadSource): Promise<Attachment> {
    const max = this.config.maxUploadBytes;
    const room = Math.max(0, this.config.uploadQuotaBytes - (await this.usedBytes(uploaderId)));
    const lengthHeader = request.headers.get("content-length");
    const length = lengthHeader === null ? null : Number(lengthHeader);
    const boundary = multipartBoundary(request.headers.get("content-type"));
    const overhead = boundary ? MULTIPART_OVERHEAD : 0;
    if (length !== null && length > max + overhead) throw tooLarge(max);
    if (length !== null && length - overhead > room) throw quotaExceeded(this.config.uploadQuotaBytes, this.config.uploadOrphanTtlSeconds);
    if (!request.body) throw emptyFile();

    let name = filename;
    let declared = request.headers.get("content-type");
    let content: AsyncIterable<Uint8Array> = request.body;
    if (boundary) {
      const part = await filePart(request.body, boundary, max + overhead, () => tooLarge(max)).catch((err) => {
        // The whole body came, but not the parts its boundary promised: malformed (LF line ends, a boundary over 70 characters…).
        if (err instanceof TruncatedBody && !request.signal.aborted) throw new AppError("bad_request", "malformed multipart body: it ended before its boundary said the file part did (malformed, or cut off)");
        return clientGone(err);
      });
      name = part.filename ?? name;
      declared = part.contentType;
      content = part.content;
    }
    const cleanName = cleanFilename(name);
    const limit = Math.min(max, room);
    // A raw body with a Content-Length (what browsers send) goes to storage without passing
    // through JS; the length was checked against the limits above, and HTTP framing ends the
    // body there (Bun refuses a Content-Length beside Transfer-Encoding).
    const staging = !boundary && Number.isSafeInteger(length) ? this.store.stageRequest(request, length!) : this.store.stage(content, limit);
    const staged = await staging.catch((err) => {
      if (err instanceof BlobTooLarge) throw limit < max ? quotaExceeded(this.config.uploadQuotaBytes, this.config.uploadOrphanTtlSeconds) : tooLarge(max);
      if (err instanceof StorageError) throw err;
      return clientGone(err);
    });
    try {
      // A raw body shorter than its Content-Length: the client went away mid-upload.
      if (request.signal.aborted || (!boundary && length !== null && staged.size !== length)) clientGone(new TruncatedBody());
      // Raw or as a part alike: an attachment has something in it.
      if (staged.size === 0) throw emptyFile();
      return await this.keep(uploaderId, staged, cleanName, declared);
    } catch (err) {
      await staged.discard().catch(() => {});
      throw err;
    }
  }

  private async keep(uploaderId: string, staged: StagedBlob, filename: string, declared: string | null): Promise<Attachment> {
    const sniffed = sniff(staged.head, declared);
    // With S3 the decoder reads the blob back from the bucket: its failures are the store's.
    const image = sniffed.kind === "image" ? await describeImage(staged.path ?? this.store.file(staged.key)).catch((err) => Promise.reject(this.store.failure("read", staged.key, err))) : null;
    // A file that starts like a picture but does not decode (a ZIP behind a PNG header) is only a file.
    const contentType = image ? sniffed.type : sniffed.kind === "image" ? "application/octet-stream" : sniffed.type;
    const thumbnailKey = image ? `${staged.key}.thumb.webp` : null;
    const row: AttachmentRow = {
      id: Bun.randomUUIDv7(),
      uploaderId,
      state: "new",
      messageId: null,
      position: 0,
      filename,
      contentType,
      size: staged.size,
      sha256: staged.sha256,
      storageKey: staged.key,
      thumbnailKey,
      width: image?.width ?? null,
      height: image?.height ?? null,
      createdAt: Date.now(),
      unheldAt: Date.now(),
    };
    const commit = async () => {
      await staged.commit();
      if (image) await this.store.putBytes(thumbnailKey!, image.thumbnail, "image/webp");
    };
    await this.locks.run(staged.key, async () => {
      // Concurrent uploads of one user may each have fit; together they must too.
      if (!(await this.rows.insertWithinQuota(row, this.config.uploadQuotaBytes, commit))) throw quotaExceeded(this.config.uploadQuotaBytes, this.config.uploadOrphanTtlSeconds);
    }).catch(async (err) => {
      // What could not be removed (the store is down) is logged; the client hears the first failure.
      await this.forgetIfUnused([row]).catch((cleanup) => this.log.warn({ err: cleanup, storage: this.store.kind, key: row.storageKey }, "attachment storage: a failed upload's file could not be removed"));
      throw err;
    });
    return toAttachment(row);
  }

  /** The blob's size, or null when the store answers that it has none (PROTOCOL §9's 404). */
  async blobSize(key: string, requestId?: string): Promise<number | null> {
    return await this.store.size(key).catch((err) => Promise.reject(this.failed(err, { op: "download", request_id: requestId })));
  }

  /**
   * `err` as the client's error: a StorageError (the store failed: the server's problem) as
   * 507 `storage_full` (a full disk, a warning), 503 `unavailable` with Retry-After (the store
   * unreachable or asking to retry later) or 500 `internal`, each logged with what failed;
   * anything else as it is.
   */
  failed(err: unknown, fields: { op: string; request_id?: string; user_id?: string }): unknown {
    if (!(err instanceof StorageError)) return err;
    const line = { err, ...fields, storage: err.store, code: err.driverCode };
    if (isStorageFull(err)) {
      this.log.warn(line, "attachment storage is full");
      return storageFull();
    }
    this.log.error(line, err.unavailable ? "attachment storage unreachable" : "attachment storage failed");
    return err.unavailable
      ? new AppError("unavailable", "the file storage is unreachable; try again shortly", undefined, STORAGE_RETRY_AFTER_MS)
      : new AppError("internal", "the file storage failed (the server's log says why)");
  }

  /** An attachment row the viewer may download (uploader, or member of a conversation holding a live message with it); else 404. */
  async readable(id: string, viewerId: string): Promise<AttachmentRow> {
    const row = await this.rows.readable(id, viewerId);
    if (!row) throw notFound("attachment");
    return row;
  }

  /** Someone's profile picture now (public); else 404 (never one, or replaced since). */
  async avatar(id: string): Promise<AttachmentRow> {
    const row = await this.rows.avatar(id);
    if (!row) throw notFound("avatar");
    return row;
  }

  /**
   * Removes attachments unheld (never attached, or released) for longer than
   * UPLOAD_ORPHAN_TTL, then their blobs once no other attachment names them.
   */
  sweep(now = Date.now()): Promise<number> {
    this.sweeping ??= this.sweepOnce(now).finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async sweepOnce(now: number): Promise<number> {
    const cutoff = now - this.config.uploadOrphanTtlSeconds * 1000;
    let removed = 0;
    for (;;) {
      const gone = await this.rows.takeUnheld(cutoff, 500);
      if (gone.length === 0) break;
      removed += gone.length;
      await this.forgetIfUnused(gone);
    }
    if (removed) this.log.info({ removed }, "orphaned attachments removed");
    return removed;
  }

  /** Deletes the blobs (and thumbnails) of these rows that no remaining attachment names. */
  private async forgetIfUnused(rows: Pick<AttachmentRow, "storageKey" | "thumbnailKey">[]) {
    const byKey = new Map(rows.map((r) => [r.storageKey, r.thumbnailKey ?? `${r.storageKey}.thumb.webp`]));
    for (const [key, thumb] of byKey)
      await this.locks.run(key, () =>
        this.rows.forgetBlob(key, async () => {
          await this.store.delete(thumb);
          await this.store.delete(key);
        }),
      );
  }
}

const emptyFile = () => invalid("file", "the file is empty: send its bytes as the body, or as a multipart part named file");
const tooLarge = (max: number) => new AppError("payload_too_large", `a file may have at most ${max} bytes (MAX_UPLOAD_BYTES)`);
/** How long an unheld file stays, in words ("24 h", "90 s"). */
const after = (seconds: number) => (seconds % 3600 === 0 ? `${seconds / 3600} h` : seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`);
// Deleting frees the room only once the sweep takes the file (it said "delete … to free space", as if at once).
const quotaExceeded = (quota: number, orphanTtlSeconds: number) =>
  new AppError("quota_exceeded", `your files would take more than your quota of ${quota} bytes; the files of messages you delete, and uploads never sent, free their room ${after(orphanTtlSeconds)} later`);

/**
 * A body that failed or ended early: the client is gone (or sent a broken body). A full disk
 * is the server's (the store's other failures come as StorageError and never reach here).
 */
function clientGone(err: unknown): never {
  if (err instanceof AppError) throw err;
  if (isStorageFull(err)) throw storageFull();
  throw new AppError("bad_request", "the upload ended before the whole body arrived");
}

/** Only an image or file message can hold attachments: the server sets the type when it does. */
export const mayHoldFiles = (messageType: string) => messageType === "image" || messageType === "file";

/** `image` when every file is a decoded image, else `file`. */
export const messageTypeOf = (rows: AttachmentRow[]) => (rows.every((r) => r.width !== null) ? "image" : "file");
