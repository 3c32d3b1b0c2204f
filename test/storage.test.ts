/** One suite, both blob store drivers: the data directory and S3 (a real s3rver). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalStore } from "../src/files/local";
import { CLUSTER_LEFTOVER_MS } from "../src/files/open-store";
import { S3Store } from "../src/files/s3";
import { BlobTooLarge, HEAD_BYTES, type BlobStore } from "../src/files/storage";
import { tempDir } from "./helpers";
import { startS3 } from "./s3";

const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

async function* chunks(bytes: Uint8Array, size = 64 * 1024, failAfter = Infinity) {
  for (let i = 0; i < bytes.length; i += size) {
    if (i >= failAfter) throw new Error("client went away");
    yield bytes.subarray(i, i + size);
  }
}

function randomBytes(n: number) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

async function keysOf(store: BlobStore) {
  const out: string[] = [];
  for await (const k of store.keys()) out.push(k);
  return out.sort();
}

interface Driver { name: string; open: () => Promise<{ store: BlobStore; leftovers: () => string[]; close: () => Promise<void> }> }

const drivers: Driver[] = [
  {
    name: "local",
    async open() {
      const dir = tempDir("parley-files-");
      const store = new LocalStore(join(dir, "files"));
      return { store, leftovers: () => readdirSync(join(dir, "files", ".tmp")), close: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: "s3",
    async open() {
      const s3 = await startS3();
      return { store: new S3Store(s3.settings), leftovers: () => [], close: s3.stop };
    },
  },
];

for (const driver of drivers) {
  describe(`blob store: ${driver.name}`, () => {
    let store: BlobStore;
    let env: Awaited<ReturnType<Driver["open"]>>;
    beforeAll(async () => {
      env = await driver.open();
      store = env.store;
    });
    afterAll(() => env.close());

    test("streams in, hashes, commits; reads back whole and by range; deletes", async () => {
      const bytes = randomBytes(6 * 1024 * 1024 + 123); // more than one S3 part
      const staged = await store.stage(chunks(bytes), 10 * 1024 * 1024);
      expect(staged.size).toBe(bytes.length);
      expect(staged.sha256).toBe(sha256(bytes));
      expect(staged.head).toEqual(bytes.subarray(0, HEAD_BYTES));
      await staged.commit();
      expect(await store.size(staged.key)).toBe(bytes.length);
      expect(sha256(new Uint8Array(await store.file(staged.key).arrayBuffer()))).toBe(staged.sha256);
      expect(new Uint8Array(await store.file(staged.key).slice(1000, 1010).arrayBuffer())).toEqual(bytes.subarray(1000, 1010));
      expect(await keysOf(store)).toContain(staged.key);
      await store.delete(staged.key);
      expect(await store.size(staged.key)).toBeNull();
      await store.delete(staged.key); // twice: no error
      expect(await keysOf(store)).not.toContain(staged.key);
    });

    test("a small blob written whole (a thumbnail)", async () => {
      const staged = await store.stage(chunks(new TextEncoder().encode("hello")), 100);
      await staged.commit();
      const key = `${staged.key}.thumb.webp`;
      await store.putBytes(key, new Uint8Array([1, 2, 3]), "image/webp");
      expect(new Uint8Array(await store.file(key).arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
      await store.delete(key);
      await store.delete(staged.key);
      expect(await store.size(key)).toBeNull();
    });

    test("over the limit: BlobTooLarge, nothing left behind", async () => {
      const before = await keysOf(store);
      const err = await store.stage(chunks(randomBytes(300_000)), 200_000).catch((e) => e);
      expect(err).toBeInstanceOf(BlobTooLarge);
      expect(await keysOf(store)).toEqual(before);
      expect(env.leftovers()).toEqual([]);
    });

    test("a body that fails midway (client gone): rethrown, nothing left behind", async () => {
      const before = await keysOf(store);
      const err = await store.stage(chunks(randomBytes(6 * 1024 * 1024), 64 * 1024, 5.5 * 1024 * 1024), 1e9).catch((e) => e);
      expect(String(err)).toContain("client went away");
      expect(await keysOf(store)).toEqual(before);
      expect(env.leftovers()).toEqual([]);
    });

    test("a staged blob discarded leaves nothing", async () => {
      const before = await keysOf(store);
      const staged = await store.stage(chunks(randomBytes(1000)), 1e6);
      await staged.discard();
      expect(await keysOf(store)).toEqual(before);
      expect(env.leftovers()).toEqual([]);
    });

    // stageRequest: a raw request body of a known length (the upload route's usual path).
    const requestOf = (body: RequestInit["body"]) => new Request("http://parley.test/api/uploads", { method: "POST", body });
    /** A body that arrives in pieces with pauses, the first one shorter than the head. */
    function slowBody(bytes: Uint8Array, failAfter = Infinity): ReadableStream<Uint8Array> {
      const cuts = [0, 100, 3000, 5000, 1024 * 1024 + 7, 2 * 1024 * 1024, bytes.length];
      let i = 0;
      return new ReadableStream({
        async pull(c) {
          if (i + 1 >= cuts.length) return c.close();
          if (cuts[i]! >= failAfter) return c.error(new Error("client went away"));
          await Bun.sleep(15);
          c.enqueue(bytes.slice(cuts[i], cuts[i + 1]));
          i++;
        },
      });
    }

    test("a request body: streamed in whole, hashed, its head kept; commits", async () => {
      const bytes = randomBytes(6 * 1024 * 1024 + 5);
      const staged = await store.stageRequest(requestOf(bytes), bytes.length);
      expect(staged.size).toBe(bytes.length);
      expect(staged.sha256).toBe(sha256(bytes));
      expect(staged.head).toEqual(bytes.subarray(0, HEAD_BYTES));
      await staged.commit();
      expect(sha256(new Uint8Array(await store.file(staged.key).arrayBuffer()))).toBe(staged.sha256);
      await store.delete(staged.key);
    });

    test("a request body arriving slowly in pieces: the hash and head of the whole", async () => {
      const bytes = randomBytes(3 * 1024 * 1024 + 11);
      const staged = await store.stageRequest(requestOf(slowBody(bytes)), bytes.length);
      expect(staged.size).toBe(bytes.length);
      expect(staged.sha256).toBe(sha256(bytes));
      expect(staged.head).toEqual(bytes.subarray(0, HEAD_BYTES));
      await staged.discard();
      expect(env.leftovers()).toEqual([]);
    });

    test("a request body shorter than the head, and an empty one", async () => {
      const small = await store.stageRequest(requestOf(new Uint8Array([1, 2, 3])), 3);
      expect([small.size, small.sha256, [...small.head]]).toEqual([3, sha256(new Uint8Array([1, 2, 3])), [1, 2, 3]]);
      await small.discard();
      const empty = await store.stageRequest(requestOf(new Uint8Array(0)), 0);
      expect([empty.size, empty.sha256, empty.head.length]).toEqual([0, sha256(new Uint8Array(0)), 0]);
      await empty.discard();
    });

    test("a request body that fails midway (client gone): rethrown, nothing left behind", async () => {
      const before = await keysOf(store);
      const bytes = randomBytes(3 * 1024 * 1024);
      const err = await store.stageRequest(requestOf(slowBody(bytes, 2 * 1024 * 1024)), bytes.length).catch((e) => e);
      expect(String(err)).toContain("client went away");
      expect(await keysOf(store)).toEqual(before);
      expect(env.leftovers()).toEqual([]);
    });

    test("an empty blob", async () => {
      const staged = await store.stage(chunks(new Uint8Array(0)), 10);
      expect(staged.size).toBe(0);
      expect(staged.sha256).toBe(sha256(new Uint8Array(0)));
      await staged.commit();
      expect(await store.size(staged.key)).toBe(0);
      await store.delete(staged.key);
    });
  });
}

// Found in review (2026-12-02): a store opened on a files folder cleared every staged file,
// which in cluster mode (a shared volume) were the other nodes' uploads in progress.
describe("staged files left at start", () => {
  const staged = (root: string) => readdirSync(join(root, ".tmp")).sort();
  async function folderWithTwo() {
    const root = tempDir();
    mkdirSync(join(root, ".tmp"), { recursive: true });
    writeFileSync(join(root, ".tmp", "idle"), "a dead process's");
    writeFileSync(join(root, ".tmp", "receiving"), "another node's, being written");
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(join(root, ".tmp", "idle"), twoHoursAgo, twoHoursAgo);
    return root;
  }
  const settle = () => Bun.sleep(100);

  test("one server (it holds DATA_DIR's lock): every one goes", async () => {
    const root = await folderWithTwo();
    new LocalStore(root);
    await settle();
    expect(staged(root)).toEqual([]);
  });

  test("cluster mode: only those idle longer than the bound go", async () => {
    const root = await folderWithTwo();
    new LocalStore(root, CLUSTER_LEFTOVER_MS);
    await settle();
    expect(staged(root)).toEqual(["receiving"]);
  });
});
