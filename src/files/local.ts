/**
 * Blobs in `DATA_DIR/files`, content-addressed: a blob's key is its SHA-256, its file
 * `files/<first two hex digits>/<sha256>`. An upload is written to `files/.tmp/` (same
 * file system) and renamed into place, so a file under its final name is always complete;
 * two uploads of the same bytes end up as one file.
 */
import { closeSync, mkdirSync, openSync, readdirSync } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pump, type BlobStore, type StagedBlob } from "./storage";

const FLUSH_BYTES = 1024 * 1024;
const KEY = /^[0-9a-f]{64}(\.[a-z0-9.]+)?$/;

export class LocalStore implements BlobStore {
  readonly kind = "local" as const;
  private tmp: string;

  constructor(readonly root: string) {
    this.tmp = join(root, ".tmp");
    mkdirSync(this.tmp, { recursive: true });
    // Leftovers of a process that died mid-upload.
    for (const name of readdirSync(this.tmp)) void rm(join(this.tmp, name), { force: true });
  }

  /** The file of a key. Keys are checked: no path ever comes from outside. */
  pathOf(key: string): string {
    if (!KEY.test(key)) throw new Error(`not a local blob key: ${key}`);
    return join(this.root, key.slice(0, 2), key);
  }

  async stage(body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StagedBlob> {
    const tmp = join(this.tmp, Bun.randomUUIDv7());
    // Bun's FileSink, flushed every MiB: it keeps up with the socket, so request bodies do not
    // pile up in memory (awaiting an fs.promises write per chunk let them: 3× the memory),
    // without a flush per (64–128 KiB) chunk. Its high-water mark sits well above
    // FLUSH_BYTES: every flush is ours, awaited, its errors caught. The file is opened here,
    // not by the sink: it exists (0600) before any write, and removing it on failure cannot
    // race a write still in flight (that lands in the unlinked file).
    const fd = openSync(tmp, "wx", 0o600);
    const sink = Bun.file(fd).writer({ highWaterMark: 4 * FLUSH_BYTES });
    let pending = 0;
    let result;
    try {
      result = await pump(body, maxBytes, async (chunk) => {
        // write() may answer with a promise (it flushed, and may fail: a full disk).
        await sink.write(chunk);
        pending += chunk.byteLength;
        if (pending < FLUSH_BYTES) return;
        pending = 0;
        await sink.flush();
      });
      await sink.end();
    } catch (err) {
      // end() flushes what is buffered, and throws again on a full disk: the file goes anyway.
      try {
        await sink.end();
      } catch {}
      await rm(tmp, { force: true });
      throw err;
    } finally {
      closeSync(fd);
    }
    const key = result.sha256;
    const final = this.pathOf(key);
    return {
      ...result,
      key,
      path: tmp,
      commit: async () => {
        mkdirSync(join(this.root, key.slice(0, 2)), { recursive: true });
        await rename(tmp, final);
      },
      discard: () => rm(tmp, { force: true }),
    };
  }

  async putBytes(key: string, bytes: Uint8Array): Promise<void> {
    const final = this.pathOf(key);
    mkdirSync(join(this.root, key.slice(0, 2)), { recursive: true });
    const tmp = join(this.tmp, Bun.randomUUIDv7());
    await Bun.write(tmp, bytes);
    await rename(tmp, final);
  }

  file(key: string): Blob {
    return Bun.file(this.pathOf(key));
  }

  body(key: string, range?: { start: number; end: number }): Blob {
    // A BunFile body goes out with sendfile(2).
    const file = this.file(key);
    return range ? file.slice(range.start, range.end + 1) : file;
  }

  async size(key: string): Promise<number | null> {
    try {
      return (await stat(this.pathOf(key))).size;
    } catch {
      return null;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async *keys(): AsyncIterable<string> {
    for (const dir of readdirSync(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(dir)) continue;
      for (const name of readdirSync(join(this.root, dir))) if (KEY.test(name)) yield name;
    }
  }
}
