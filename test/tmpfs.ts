/**
 * A small tmpfs for tests of a full disk: mounted once per test file (it needs root; where
 * it cannot be mounted, `mounted` says why and those tests are skipped), filled on demand.
 */
import { afterAll } from "bun:test";
import { closeSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./helpers";

export function smallTmpfs(label: string) {
  const mountPoint = tempDir("parley-tmpfs-");
  const mounted: true | string = (() => {
    if (process.platform !== "linux") return `not Linux (${process.platform})`;
    const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint], { stderr: "pipe" });
    return r.exitCode === 0 ? true : `cannot mount a tmpfs (${r.stderr.toString().trim() || `exit ${r.exitCode}`}; it needs root)`;
  })();
  if (mounted !== true) console.log(`${label}: skipping the tests on a real full disk: ${mounted}`);

  afterAll(() => {
    // Lazily: a closed bun:sqlite database keeps its files open until its statements are
    // garbage-collected, so a plain umount may find the tmpfs busy.
    if (mounted === true) Bun.spawnSync(["umount", "-l", mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  const filler = join(mountPoint, "filler");
  return {
    mountPoint,
    mounted,
    /** Fills the tmpfs, leaving about `leave` bytes free. */
    fill(leave = 0) {
      const fd = openSync(filler, "a");
      const chunk = Buffer.alloc(64 * 1024);
      try {
        for (;;) {
          const { bavail, bsize } = statfsSync(mountPoint);
          const room = bavail * bsize - leave;
          if (room <= 0) break;
          writeSync(fd, chunk, 0, Math.min(chunk.length, room));
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      } finally {
        closeSync(fd);
      }
    },
    unfill: () => rmSync(filler, { force: true }),
  };
}
