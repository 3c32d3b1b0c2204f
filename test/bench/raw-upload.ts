/**
 * The uploads scenario's baselines: a raw Bun.serve that takes the same HTTP upload and
 * Bun.write-s its body to a new file in DATA_DIR. No auth, no database, no checks.
 *   POST /stream    Bun.write(path, request): Bun moves the body from the socket to the
 *                   file natively, in constant memory. The runtime's own limit.
 *   POST /buffered  Bun.write(path, await request.bytes()): the body whole in memory first.
 *   POST /hashed    /stream, then the SHA-256 of the file (read back in 1 MiB slices into
 *                   one buffer): the least any content-addressed store must do.
 *   DELETE /        removes the files written so far (between timed runs).
 */
import { closeSync, openSync, readdirSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.DATA_DIR ?? ".";
const scratch = new Uint8Array(1024 * 1024);

function sha256Of(path: string): string {
  const hasher = new Bun.CryptoHasher("sha256");
  const fd = openSync(path, "r");
  try {
    for (let n, at = 0; (n = readSync(fd, scratch, 0, scratch.length, at)) > 0; at += n) hasher.update(scratch.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hasher.digest("hex");
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 8091),
  hostname: process.env.HOST ?? "127.0.0.1",
  maxRequestBodySize: 1024 * 1024 * 1024,
  async fetch(req) {
    const { pathname } = new URL(req.url);
    if (pathname === "/health") return Response.json({ status: "ok" });
    if (req.method === "DELETE") {
      for (const name of readdirSync(dir)) rmSync(join(dir, name), { force: true });
      return new Response(null, { status: 204 });
    }
    const path = join(dir, Bun.randomUUIDv7());
    if (pathname === "/stream") await Bun.write(path, req);
    else if (pathname === "/buffered") await Bun.write(path, await req.bytes());
    else if (pathname === "/hashed") {
      await Bun.write(path, req);
      return Response.json({ sha256: sha256Of(path) }, { status: 201 });
    } else return new Response("not found", { status: 404 });
    return new Response(null, { status: 201 });
  },
});

process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
