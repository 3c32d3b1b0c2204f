/**
 * Blobs in an S3-compatible bucket through Bun.S3Client. A key is chosen before the
 * bytes are seen (`blobs/<uuid>`), so an upload streams straight into a multipart upload,
 * hashed on the way; a failed one is deleted again. What the store itself throws leaves
 * as a StorageError (see s3Unavailable for which ones mean "try again later").
 */
import { pump, StorageError, type BlobStore, type StagedBlob } from "./storage";

export interface S3Settings { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string }

const PART_SIZE = 5 * 1024 * 1024; // S3's minimum part size: the least memory per upload

/**
 * How long a small request (a HEAD, a listing, a delete, a thumbnail's write) may take: an
 * endpoint that accepts connections and never answers would otherwise hold the request that
 * waits on it (a download, an upload's thumbnail) for as long as it hangs. The parts of an
 * upload have none: on a slow link a 5 MiB part may rightly take longer.
 */
const REQUEST_TIMEOUT_MS = 20_000;

export class S3Store implements BlobStore {
  readonly kind = "s3" as const;
  private client: Bun.S3Client;

  constructor(settings: S3Settings, private readonly timeoutMs = REQUEST_TIMEOUT_MS) {
    this.client = new Bun.S3Client({ ...settings });
  }

  /** `request`, or a StorageError meaning "unavailable" once it has taken timeoutMs. */
  private within<T>(op: string, key: string | null, request: Promise<T>): Promise<T> {
    let timer: Timer | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StorageError("s3", op, key, true, Object.assign(new Error(`no answer in ${this.timeoutMs} ms`), { code: "Timeout" }))), this.timeoutMs);
    });
    return Promise.race([request, late]).finally(() => clearTimeout(timer));
  }

  async stage(body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StagedBlob> {
    const key = `blobs/${Bun.randomUUIDv7()}`;
    const writer = this.client.file(key).writer({ partSize: PART_SIZE, queueSize: 2, retry: 2 });
    let result;
    try {
      // The body's own errors (a client gone) pass as they are; the writer's are the store's.
      result = await pump(body, maxBytes, async (chunk) => {
        try {
          await writer.write(chunk);
        } catch (err) {
          throw this.failure("upload", key, err);
        }
      });
      try {
        await writer.end();
      } catch (err) {
        throw this.failure("upload", key, err);
      }
    } catch (err) {
      // Bun's writer completes the upload even when ended with an error: remove what it made.
      try {
        await writer.end();
      } catch {}
      await this.client.delete(key).catch(() => {});
      throw err;
    }
    return { ...result, key, path: null, commit: async () => {}, discard: () => this.delete(key) };
  }

  stageRequest(request: Request, length: number): Promise<StagedBlob> {
    // Into a multipart upload as it arrives: the chunks go to S3 anyway.
    return this.stage(request.body ?? new Blob([]).stream(), length);
  }

  async putBytes(key: string, bytes: Uint8Array, contentType: string): Promise<void> {
    await this.within("write", key, this.client.write(key, bytes, { type: contentType })).catch((err) => this.fail("write", key, err));
  }

  file(key: string): Blob {
    return this.client.file(key);
  }

  body(key: string, range?: { start: number; end: number }): ReadableStream<Uint8Array> {
    // Response refuses an S3File together with status and headers; its stream it takes.
    const file = this.client.file(key);
    return (range ? file.slice(range.start, range.end + 1) : file).stream();
  }

  async size(key: string): Promise<number | null> {
    try {
      return (await this.within("stat", key, this.client.stat(key))).size;
    } catch (err) {
      if (!MISSING.has((err as { code?: unknown }).code as string)) this.fail("stat", key, err);
    }
    // A HEAD answers a missing bucket as it answers a missing key (404, no body to tell them
    // apart): a listing does tell. Only files missing from storage pay for it. Keys without
    // s3:ListBucket are refused the listing (AccessDenied): the HEAD's answer stands then.
    try {
      await this.within("stat", key, this.client.list({ prefix: key, maxKeys: 1 }));
    } catch (err) {
      const failure = this.failure("stat", key, err);
      if (failure instanceof StorageError && (failure.unavailable || failure.driverCode === "NoSuchBucket")) throw failure;
    }
    return null;
  }

  async delete(key: string): Promise<void> {
    await this.within("delete", key, this.client.delete(key)).catch((err) => this.fail("delete", key, err));
  }

  async *keys(): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const page = await this.within("list", null, this.client.list({ prefix: "blobs/", continuationToken: token })).catch((err) => this.fail("list", null, err));
      for (const o of page.contents ?? []) yield o.key;
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token);
  }

  failure(op: string, key: string | null, err: unknown): unknown {
    if (err instanceof StorageError || (err as { name?: unknown } | null)?.name !== "S3Error") return err;
    return new StorageError("s3", op, key, s3Unavailable(err), err);
  }

  private fail(op: string, key: string | null, err: unknown): never {
    throw this.failure(op, key, err);
  }
}

/** Bun.S3Client's codes for a key (or, on a HEAD, a bucket) that is not there. */
const MISSING = new Set(["NoSuchKey", "NotFound"]);
/**
 * Bun.S3Client's message for a request that got no S3 error document back: no connection
 * (`ConnectionRefused`, `ConnectionClosed`, `DNSResolveFailed`…) or a bare 5xx.
 */
const NO_ANSWER = "an unexpected error has occurred";
/** S3's own codes for "try again later". */
const RETRY_LATER = new Set(["SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"]);
const TRANSPORT = /^(Connection|DNS|Timeout|TimedOut|HostUnreachable|NetworkUnreachable|ECONN|ETIMEDOUT)/i;

/**
 * Whether an S3Error means the store is unreachable or busy (503, try again) rather than
 * refusing what it was asked (a missing bucket, keys it does not take: 500, an operator's
 * fix).
 */
export function s3Unavailable(err: unknown): boolean {
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (RETRY_LATER.has(code) || TRANSPORT.test(code))) return true;
  return message === NO_ANSWER;
}
