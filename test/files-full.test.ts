/**
 * Uploads on a full disk (PROTOCOL §7.4): 507 storage_full, nothing left behind, and
 * uploads work again once space returns. Needs the right to mount a tmpfs (root); skipped
 * with the reason printed elsewhere.
 */
import { afterAll, expect, test } from "bun:test";
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { startServer, tempDir } from "./helpers";
import { randomBytes } from "./files-fixtures";

const mountPoint = tempDir("parley-tmpfs-files-");
const mounted = (() => {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint], { stderr: "pipe" });
  return r.exitCode === 0 ? true : `cannot mount a tmpfs (${r.stderr.toString().trim() || `exit ${r.exitCode}`})`;
})();
if (mounted !== true) console.log(`files-full.test.ts: skipping uploads on a full disk: ${mounted}`);
afterAll(() => {
  if (mounted === true) Bun.spawnSync(["umount", "-l", mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

const filler = join(mountPoint, "filler");
function fill(leave: number) {
  const fd = openSync(filler, "a");
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) {
      const { bavail, bsize } = statfsSync(mountPoint);
      const room = bavail * bsize - leave;
      if (room <= 0) break;
      writeSync(fd, chunk, 0, Math.min(chunk.length, room));
    }
  } finally {
    closeSync(fd);
  }
}

test.skipIf(mounted !== true)("an upload that meets a full disk is 507 storage_full and leaves nothing; with room again it works", async () => {
  const dataDir = join(mountPoint, "data");
  mkdirSync(dataDir);
  const s = await startServer({}, dataDir);
  try {
    const a = await s.register();
    fill(256 * 1024);
    const up = await fetch(`${s.base}/api/uploads?filename=big.bin`, { method: "POST", headers: { authorization: `Bearer ${a.token}` }, body: randomBytes(2 * 1024 * 1024) });
    expect(up.status).toBe(507);
    expect(((await up.json()) as any).error.code).toBe("storage_full");
    expect(readdirSync(join(dataDir, "files", ".tmp"))).toEqual([]);
    expect((s.app.ctx.db.$client.query("SELECT count(*) AS n FROM attachments").get() as { n: number }).n).toBe(0);
    rmSync(filler, { force: true });
    const again = await fetch(`${s.base}/api/uploads?filename=big.bin`, { method: "POST", headers: { authorization: `Bearer ${a.token}` }, body: randomBytes(2 * 1024 * 1024) });
    expect(again.status).toBe(201);
    expect(s.logs.filter((l) => l.msg === "unhandled error")).toEqual([]);
  } finally {
    rmSync(filler, { force: true });
    await s.stop(false);
  }
});
