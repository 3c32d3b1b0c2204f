/**
 * Blobs in an S3-compatible bucket through Bun.S3Client. A key is chosen before the
 * bytes are seen (`blobs/<uuid>`), so an upload streams straight into a multipart upload,
 * hashed on the way; a failed one is deleted again.
 */
import { pump, type BlobStore, type StagedBlob } from "./storage";

export interface S3Settings { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string }

const PART_SIZE = 5 * 1024 * 1024; // S3's minimum part size: the least memory per upload

export class S3Store implements BlobStore {
  readonly kind = "s3" as const;
  private client: Bun.S3Client;

  constructor(settings: S3Settings) {
    this.client = new Bun.S3Client({ ...settings });
  }

  async stage(body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StagedBlob> {
    const key = `blobs/${Bun.randomUUIDv7()}`;
    const writer = this.client.file(key).writer({ partSize: PART_SIZE, queueSize: 2, retry: 2 });
    let result;
    try {
      result = await pump(body, maxBytes, (chunk) => writer.write(chunk));
      await writer.end();
    } catch (err) {
      // Bun's writer completes the upload even when ended with an error: remove what it made.
      await Promise.resolve(writer.end()).catch(() => {});
      await this.delete(key).catch(() => {});
      throw err;
    }
    return { ...result, key, path: null, commit: async () => {}, discard: () => this.delete(key) };
  }

  stageRequest(request: Request, length: number): Promise<StagedBlob> {
    // Into a multipart upload as it arrives: the chunks go to S3 anyway.
    return this.stage(request.body ?? new Blob([]).stream(), length);
  }

  async putBytes(key: string, bytes: Uint8Array, contentType: string): Promise<void> {
    await this.client.write(key, bytes, { type: contentType });
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
      return (await this.client.stat(key)).size;
    } catch {
      return null;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.delete(key);
  }

  async *keys(): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const page = await this.client.list({ prefix: "blobs/", continuationToken: token });
      for (const o of page.contents ?? []) yield o.key;
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token);
  }
}
