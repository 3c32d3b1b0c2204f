/**
 * Where attachment bytes live (PROTOCOL §9): a small interface with two drivers, the data
 * directory (local.ts) and any S3-compatible store (s3.ts). Uploads are streamed in,
 * hashed on the way; nothing is ever held whole in memory.
 */

/** A blob streamed into the store, not yet visible under its final key. */
export interface StagedBlob {
  /** The key it has once committed. */
  key: string;
  size: number;
  /** Lower-case hex SHA-256 of the content. */
  sha256: string;
  /** The first bytes (up to HEAD_BYTES), for content sniffing. */
  head: Uint8Array;
  /** A local file holding the content while staged, when the driver has one (images are decoded from it). */
  path: string | null;
  /** Makes the blob readable under `key`. */
  commit(): Promise<void>;
  /** Removes every trace of it. */
  discard(): Promise<void>;
}

export interface BlobStore {
  readonly kind: "local" | "s3";
  /**
   * Streams `body` in, hashing it as it goes. Throws BlobTooLarge as soon as more than
   * `maxBytes` arrive, rethrows a failing body (a client gone mid-upload) as it is, and
   * throws StorageError when the store fails; either way nothing is left behind.
   */
  stage(body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StagedBlob>;
  /**
   * Streams in a raw request body of `length` bytes, its Content-Length (already checked
   * against the limits): HTTP framing ends the body there, so no byte past it is read. The
   * same guarantees as `stage`; a body cut short is staged short (the caller compares).
   */
  stageRequest(request: Request, length: number): Promise<StagedBlob>;
  /** Writes a small blob (a thumbnail) whole. */
  putBytes(key: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /** The blob as a lazily read Blob (BunFile or S3File). */
  file(key: string): Blob;
  /** A Response body of the blob, or of bytes `start`…`end` (inclusive) of it. */
  body(key: string, range?: { start: number; end: number }): Blob | ReadableStream<Uint8Array>;
  /** The blob's size, or null when there is none (in a store that answers: else StorageError). */
  size(key: string): Promise<number | null>;
  /** Removes the blob; removing a missing one is no error. */
  delete(key: string): Promise<void>;
  /** Every committed key (for backups and consistency checks). */
  keys(): AsyncIterable<string>;
  /**
   * `err` as a StorageError when the driver threw it (an S3Error, a file-system error),
   * else as it is: for errors of the store met outside it (an S3File read by the image decoder).
   */
  failure(op: string, key: string | null, err: unknown): unknown;
}

/** How many leading bytes of a blob are kept for sniffing. */
export const HEAD_BYTES = 4096;

export class BlobTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
  }
}

/**
 * Feeds a body through a SHA-256 hasher, a byte counter (throwing BlobTooLarge past the
 * limit) and a head collector, handing each chunk to `write`.
 */
export async function pump(body: AsyncIterable<Uint8Array>, maxBytes: number, write: (chunk: Uint8Array) => unknown) {
  const hasher = new Bun.CryptoHasher("sha256");
  const head = new Uint8Array(HEAD_BYTES);
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.byteLength > maxBytes) throw new BlobTooLarge(maxBytes);
    if (size < HEAD_BYTES) head.set(chunk.subarray(0, HEAD_BYTES - size), size);
    size += chunk.byteLength;
    hasher.update(chunk);
    await write(chunk);
  }
  return { size, sha256: hasher.digest("hex"), head: head.slice(0, Math.min(size, HEAD_BYTES)) };
}

/**
 * The store itself failed (not the client, not the limits): the S3 endpoint refused or
 * dropped the connection, the bucket is missing or refuses the keys, DATA_DIR/files cannot
 * be written. Files turns it into the client's 503 `unavailable` (`unavailable`: the store
 * is unreachable or says to retry), 507 `storage_full` (a full disk) or 500 `internal`,
 * and logs it; `cause` is what the driver threw. Its message names the store, the
 * operation, the key and the driver's code (the log adds the cause's message), never credentials.
 */
export class StorageError extends Error {
  override readonly name = "StorageError";
  constructor(
    readonly store: BlobStore["kind"],
    readonly op: string,
    readonly key: string | null,
    readonly unavailable: boolean,
    cause: unknown,
  ) {
    // Loggers add the cause's message (pino's err serializer does): its code is named here.
    super(`${store} storage: ${op}${key ? ` ${key}` : ""} failed${codeOf(cause) ? ` (${codeOf(cause)})` : ""}`, { cause });
  }

  /** The driver's code (`ConnectionRefused`, `NoSuchBucket`, `ENOENT`…), when it has one. */
  get driverCode(): string | undefined {
    return codeOf(this.cause);
  }
}

function codeOf(cause: unknown): string | undefined {
  const code = (cause as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
