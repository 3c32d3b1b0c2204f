/**
 * Blobs in `DATA_DIR/files`, content-addressed: a blob's key is its SHA-256, its file
 * `files/<first two hex digits>/<sha256>`. An upload is written to `files/.tmp/` (same
 * file system) and renamed into place, so a file under its final name is always complete;
 * two uploads of the same bytes end up as one file. What the file system throws (a full
 * disk, a folder that cannot be written) leaves as a StorageError.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readSync, renameSync } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { HEAD_BYTES, pump, StorageError, type BlobStore, type StagedBlob } from "./storage";

const FLUSH_BYTES = 1024 * 1024;
/**
 * Staged files are read back through this one buffer to be hashed: allocating a buffer (or
 * receiving a chunk) per MiB cost more than the hash itself. Used only within synchronous
 * stretches, so concurrent uploads never see each other's bytes in it.
 */
const SCRATCH = new Uint8Array(1024 * 1024);
/** Hashing yields to the event loop after this many bytes (~3 ms), so that sends interleave. */
const HASH_SLICE = 4 * 1024 * 1024;
const KEY = /^[0-9a-f]{64}(\.[a-z0-9.]+)?$/;

/** The file of a key under a files directory. Keys are checked: no path ever comes from outside. */
export function blobPath(root: string, key: string): string {
  if (!KEY.test(key)) throw new Error(`not a local blob key: ${key}`);
  return join(root, key.slice(0, 2), key);
}

export class LocalStore implements BlobStore {
  readonly kind = "local" as const;
  private tmp: string;

  /**
   * `leftoversOlderThanMs`: which staged files at start are a dead process's leftovers, to
   * remove. 0 (one server, which holds DATA_DIR's lock): all of them. In cluster mode on a
   * shared volume, the other nodes' uploads in progress are staged there too: only files
   * untouched for that long (an upload being received is written to all the time).
   */
  constructor(readonly root: string, leftoversOlderThanMs = 0) {
    this.tmp = join(root, ".tmp");
    mkdirSync(this.tmp, { recursive: true, mode: 0o700 }); // attachments are for the server's user alone, as DATA_DIR
    const before = Date.now() - leftoversOlderThanMs;
    for (const name of readdirSync(this.tmp)) {
      const path = join(this.tmp, name);
      void (leftoversOlderThanMs === 0 ? rm(path, { force: true }).catch(() => {}) : stat(path).then((s) => (s.mtimeMs < before ? rm(path, { force: true }) : undefined)).catch(() => {}));
    }
  }

  /** The file of a key (blobPath). */
  pathOf(key: string): string {
    return blobPath(this.root, key);
  }

  async stage(body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StagedBlob> {
    const tmp = join(this.tmp, Bun.randomUUIDv7());
    // Bun's FileSink, flushed every MiB: it keeps up with the socket, so request bodies do not
    // pile up in memory (awaiting an fs.promises write per chunk let them: 3× the memory),
    // without a flush per (64–128 KiB) chunk. Its high-water mark sits well above
    // FLUSH_BYTES: every flush is ours, awaited, its errors caught. The file is opened here,
    // not by the sink: it exists (0600) before any write, and removing it on failure cannot
    // race a write still in flight (that lands in the unlinked file).
    const fd = this.open(tmp, "wx");
    const sink = Bun.file(fd).writer({ highWaterMark: 4 * FLUSH_BYTES });
    let pending = 0;
    let result;
    try {
      // The body's own errors (a client gone) pass as they are; the sink's are the store's.
      result = await pump(body, maxBytes, async (chunk) => {
        try {
          // write() may answer with a promise (it flushed, and may fail: a full disk).
          await sink.write(chunk);
          pending += chunk.byteLength;
          if (pending < FLUSH_BYTES) return;
          pending = 0;
          await sink.flush();
        } catch (err) {
          this.fail("upload", null, err, true);
        }
      });
      try {
        await sink.end();
      } catch (err) {
        this.fail("upload", null, err, true);
      }
    } catch (err) {
      // end() flushes what is buffered, and throws again on a full disk: the file goes anyway.
      try {
        await sink.end();
      } catch {}
      await this.removeTemp(tmp);
      throw err;
    } finally {
      closeSync(fd);
    }
    return this.staged(tmp, result);
  }

  async stageRequest(request: Request): Promise<StagedBlob> {
    const tmp = join(this.tmp, Bun.randomUUIDv7());
    // Opened here, 0600, for the same reasons as in stage().
    const fd = this.open(tmp, "wx+");
    let result;
    try {
      // Bun moves the body from the socket into the file natively, in constant memory: no
      // chunk becomes a JS object (making one per 64–512 KiB cost 1.5–4 ms of CPU per MB, far
      // more than the write). A client gone midway rejects it (an AbortError); the file
      // system's errors (ENOSPC, EIO) carry their syscall: those are the store's. Then the file is hashed.
      const written = await Bun.write(Bun.file(fd), request).catch((err) => this.fail("upload", null, err));
      try {
        result = await digest(fd);
      } catch (err) {
        this.fail("upload", null, err, true);
      }
      if (result.size !== written) throw new StorageError("local", "upload", null, false, new Error(`staged ${result.size} bytes, ${written} written`));
    } catch (err) {
      await this.removeTemp(tmp);
      throw err;
    } finally {
      closeSync(fd);
    }
    return this.staged(tmp, result);
  }

  private staged(tmp: string, result: Pick<StagedBlob, "size" | "sha256" | "head">): StagedBlob {
    const key = result.sha256;
    const final = this.pathOf(key);
    return {
      ...result,
      key,
      path: tmp,
      commit: () => this.moveInto(tmp, final),
      discard: () => rm(tmp, { force: true }),
    };
  }

  /** Opens a new temporary file, 0600. */
  private open(tmp: string, flags: string): number {
    try {
      return openSync(tmp, flags, 0o600);
    } catch (err) {
      this.fail("upload", null, err, true);
    }
  }

  /** Removes a temporary file after a failure (what cannot be removed goes at the next start). */
  private removeTemp(tmp: string) {
    return rm(tmp, { force: true }).catch(() => {});
  }

  async putBytes(key: string, bytes: Uint8Array): Promise<void> {
    const tmp = join(this.tmp, Bun.randomUUIDv7());
    try {
      await Bun.write(tmp, bytes);
    } catch (err) {
      await this.removeTemp(tmp);
      this.fail("write", key, err);
    }
    await this.moveInto(tmp, this.pathOf(key));
  }

  /**
   * Renames a complete file to its final name, making its directory the first time (not on
   * every upload). Synchronous, like the open in stageRequest: one quick syscall, where
   * fs.promises' hop through the thread pool and back cost twice its CPU (~55 µs vs ~30).
   */
  private async moveInto(tmp: string, final: string) {
    try {
      renameSync(tmp, final);
    } catch (err) {
      try {
        if ((err as { code?: string }).code !== "ENOENT") throw err;
        mkdirSync(dirname(final), { recursive: true });
        renameSync(tmp, final);
      } catch (err) {
        await this.removeTemp(tmp);
        this.fail("commit", basename(final), err);
      }
    }
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
    const path = this.pathOf(key);
    try {
      return (await stat(path)).size;
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return null;
      this.fail("stat", key, err);
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await rm(path, { force: true }).catch((err) => this.fail("delete", key, err));
  }

  async *keys(): AsyncIterable<string> {
    for (const dir of readdirSync(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(dir)) continue;
      for (const name of readdirSync(join(this.root, dir))) if (KEY.test(name)) yield name;
    }
  }

  failure(op: string, key: string | null, err: unknown): unknown {
    // Node's and Bun's file-system errors name the system call that failed.
    if (err instanceof StorageError || typeof (err as { syscall?: unknown } | null)?.syscall !== "string") return err;
    return new StorageError("local", op, key, false, err);
  }

  /** Throws `err` as a StorageError: when it is the file system's, or (`ours`) whatever it is. */
  private fail(op: string, key: string | null, err: unknown, ours = false): never {
    throw ours && !(err instanceof StorageError) ? new StorageError("local", op, key, false, err) : this.failure(op, key, err);
  }
}

/**
 * Size, SHA-256 and head of a complete staged file, read through SCRATCH (each read and
 * hash synchronous), yielding to the event loop between slices. Only once the write is
 * done: Bun.write may preallocate the file (fallocate), so a file still being written can
 * read as zeros past what has landed.
 */
async function digest(fd: number): Promise<Pick<StagedBlob, "size" | "sha256" | "head">> {
  const hasher = new Bun.CryptoHasher("sha256");
  let head = new Uint8Array(0);
  let size = 0;
  for (let n, since = 0; (n = readSync(fd, SCRATCH, 0, SCRATCH.length, size)) > 0; ) {
    // A complete regular file reads whole up to its end: the first read holds the head.
    if (size === 0) head = SCRATCH.slice(0, Math.min(n, HEAD_BYTES));
    hasher.update(SCRATCH.subarray(0, n));
    size += n;
    if ((since += n) < HASH_SLICE) continue;
    since = 0;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { size, sha256: hasher.digest("hex"), head };
}
