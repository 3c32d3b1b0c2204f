/**
 * Uploads on a full disk (PROTOCOL §7.4): 507 storage_full, nothing left behind, and
 * uploads work again once space returns. Needs the right to mount a tmpfs (root).
 */
import { expect, test } from "bun:test";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "./helpers";
import { smallTmpfs } from "./tmpfs";
import { randomBytes } from "./files-fixtures";

const { mountPoint, mounted, fill, unfill } = smallTmpfs("files-full.test.ts");

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
    expect((await s.rows<{ n: number }>("SELECT count(*) AS n FROM attachments"))[0]!.n).toBe(0);
    unfill();
    const again = await fetch(`${s.base}/api/uploads?filename=big.bin`, { method: "POST", headers: { authorization: `Bearer ${a.token}` }, body: randomBytes(2 * 1024 * 1024) });
    expect(again.status).toBe(201);
    expect(s.logs.filter((l) => l.msg === "unhandled error")).toEqual([]);
  } finally {
    unfill();
    await s.stop(false);
  }
});
