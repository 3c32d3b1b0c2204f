/**
 * Attachments against a server in its own process: memory while many large uploads
 * stream at once, and backup + restore bringing the files back.
 */
import { afterAll, expect, test } from "bun:test";
import { cpSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./helpers";
import { spawnServer, registerAndLogin, type Running } from "./process";
import { jpeg, sha256 } from "./files-fixtures";

const root = join(import.meta.dir, "..");
const dirs: string[] = [];
const servers: Running[] = [];
afterAll(async () => {
  for (const s of servers) if (s.proc.exitCode === null) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);

/** A body of `size` bytes made chunk by chunk, so the client holds none of it. */
function streamOf(size: number, seed: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(256 * 1024).fill(seed);
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent >= size) return c.close();
      const n = Math.min(chunk.length, size - sent);
      sent += n;
      c.enqueue(chunk.slice(0, n));
    },
  });
}

// Streamed without a length (chunked: through JS, counted as it comes) and with one (what
// browsers send: socket → file inside Bun).
for (const chunked of [true, false])
test(`server memory stays flat while 10 clients upload 25 MiB each at once (${chunked ? "chunked" : "Content-Length"})`, async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const server = await spawnServer([process.execPath, "src/index.ts", "serve"], { DATA_DIR: dataDir, ARGON2_MEMORY_KIB: "1024" }, root);
  servers.push(server);
  const users = await Promise.all(Array.from({ length: 10 }, (_, i) => registerAndLogin(server.base, `mem${i}${Date.now().toString(36)}`)));
  const size = 25 * 1024 * 1024;
  const sized = chunked ? null : new Uint8Array(size).fill(9);
  // Warm up (the upload path's code, one small file), then let memory settle.
  await fetch(`${server.base}/api/uploads?filename=w`, { method: "POST", headers: { authorization: `Bearer ${users[0]!.token}` }, body: "warm" });
  await Bun.sleep(300);
  const idle = rssKb(server.proc.pid);
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, rssKb(server.proc.pid))), 10);
  const results = await Promise.all(
    users.map((u, i) =>
      fetch(`${server.base}/api/uploads?filename=big${i}.bin`, { method: "POST", headers: { authorization: `Bearer ${u.token}`, "content-type": "application/octet-stream" }, body: sized ?? streamOf(size, i) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as { size: number } }),
      ),
    ),
  );
  clearInterval(sampler);
  expect(results.map((r) => [r.status, r.body.size])).toEqual(users.map(() => [201, size]));
  const growthMb = (peak - idle) / 1024;
  console.error(`server RSS: idle ${Math.round(idle / 1024)} MB, peak ${Math.round(peak / 1024)} MB (+${growthMb.toFixed(1)} MB) for 10 × 25 MiB in parallel, ${chunked ? "chunked" : "with Content-Length"}`);
  expect(growthMb).toBeLessThanOrEqual(64);
}, 60_000);

test("backup writes the database and the files it names; a restore brings the files back", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const server = await spawnServer([process.execPath, "src/index.ts", "serve"], { DATA_DIR: dataDir, ARGON2_MEMORY_KIB: "1024" }, root);
  servers.push(server);
  const a = await registerAndLogin(server.base, `bk${Date.now().toString(36)}`);
  const image = await jpeg(640, 480);
  const up = (await (await fetch(`${server.base}/api/uploads?filename=holiday.jpg`, { method: "POST", headers: { authorization: `Bearer ${a.token}` }, body: image })).json()) as { id: string };

  // An upload the server is receiving (its staged file): the backup leaves it alone. (It
  // opened the live files folder as a store, whose start clears files/.tmp of a dead
  // process's leftovers: the running server's uploads went. Found in review, 2026-12-02.)
  const inFlight = join(dataDir, "files", ".tmp", "an-upload-in-progress");
  writeFileSync(inFlight, "half a file");
  const backupDir = tempDir();
  dirs.push(backupDir);
  const file = join(backupDir, "parley-backup.db");
  const run = Bun.spawnSync([process.execPath, "src/index.ts", "backup", file, "--data-dir", dataDir], { cwd: root });
  expect(run.exitCode).toBe(0);
  expect(readFileSync(inFlight, "utf8")).toBe("half a file");
  expect(run.stdout.toString()).toContain("attachments: 2 files");
  // For the server's user alone, as DATA_DIR: messages and password hashes (it was 0644 and 0755).
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(statSync(`${file}.files`).mode & 0o777).toBe(0o700);
  await server.stop();

  // Restore: the database file and the files folder into a new data directory.
  const restored = tempDir();
  dirs.push(restored);
  cpSync(file, join(restored, "parley.db"));
  cpSync(`${file}.files`, join(restored, "files"), { recursive: true });
  cpSync(join(dataDir, "jwt-secret"), join(restored, "jwt-secret"));
  const again = await spawnServer([process.execPath, "src/index.ts", "serve"], { DATA_DIR: restored }, root);
  servers.push(again);
  const auth = { authorization: `Bearer ${a.token}` };
  const dl = await fetch(`${again.base}/api/attachments/${up.id}`, { headers: auth });
  expect(dl.status).toBe(200);
  expect(sha256(new Uint8Array(await dl.arrayBuffer()))).toBe(sha256(image));
  expect((await fetch(`${again.base}/api/attachments/${up.id}/thumbnail`, { headers: auth })).status).toBe(200);
  // Without the files, the same database answers 404 for them, never 500.
  rmSync(join(restored, "files"), { recursive: true, force: true });
  expect((await fetch(`${again.base}/api/attachments/${up.id}`, { headers: auth })).status).toBe(404);
  expect(existsSync(`${file}.files`)).toBe(true);
}, 60_000);
