/**
 * The `uploads` scenario: attachment upload throughput to local storage against a raw
 * Bun.write of the same bytes in the same run, the server's CPU per MB, the added cost of
 * an image (decode + thumbnail), and the server's memory while 10 large uploads stream in
 * at once.
 */
import { join } from "node:path";
import { rmSync } from "node:fs";
import { registerUsers } from "./lib/load";
import type { ServerUnderTest } from "./lib/server";
import { round } from "./lib/stats";

const MiB = 1024 * 1024;

function randomBytes(n: number) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

/** A body made chunk by chunk, so the client holds none of it (the parallel run). */
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

async function upload(sut: ServerUnderTest, token: string, body: Uint8Array | ReadableStream<Uint8Array>, name: string) {
  const res = await fetch(`${sut.base}/api/uploads?filename=${name}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" }, body });
  if (res.status !== 201) throw new Error(`upload ${name}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

export interface UploadScenario { sizes: { bytes: number; count: number }[]; images: number; parallel: { clients: number; bytes: number } }

export async function uploads(sut: ServerUnderTest, q: UploadScenario) {
  const [user] = await registerUsers(sut, 1, "up");
  const token = user!.token;
  const throughput: Record<string, unknown>[] = [];
  for (const { bytes, count } of q.sizes) {
    // Distinct contents (each upload is a new file), made before the clock starts.
    const bodies = Array.from({ length: count }, () => randomBytes(bytes));
    await upload(sut, token, randomBytes(bytes), "warm");
    const cpu0 = sut.stats().cpu_s;
    let t = performance.now();
    for (const [i, b] of bodies.entries()) await upload(sut, token, b, `f${i}`);
    const uploadS = (performance.now() - t) / 1000;
    const cpuS = sut.stats().cpu_s - cpu0;
    // The same bytes written raw by Bun.write into the same data directory, same run.
    const scratch = join(sut.dataDir, "bench-raw");
    t = performance.now();
    for (const [i, b] of bodies.entries()) await Bun.write(`${scratch}-${i}`, b);
    const rawS = (performance.now() - t) / 1000;
    for (let i = 0; i < count; i++) rmSync(`${scratch}-${i}`, { force: true });
    const mb = (bytes * count) / MiB;
    throughput.push({
      size_mib: round(bytes / MiB, 2), count,
      upload_mb_s: round(mb / uploadS, 1), raw_write_mb_s: round(mb / rawS, 1), ratio: round(rawS / uploadS, 2),
      server_cpu_ms_per_mb: round((cpuS * 1000) / mb, 2),
    });
  }

  // An image costs a decode and a thumbnail on top of the upload: the difference between a
  // JPEG and random bytes of the same size, per upload.
  const jpeg = await new Bun.Image(onePixelPng()).resize(3000, 2000, { fit: "fill" }).modulate({ saturation: 1.2 }).jpeg({ quality: 90 }).bytes();
  const images = Array.from({ length: q.images }, (_, i) => withComment(jpeg, i));
  const plain = Array.from({ length: q.images }, () => randomBytes(jpeg.length));
  let t = performance.now();
  for (const [i, b] of images.entries()) await upload(sut, token, b, `img${i}.jpg`);
  const imageMs = (performance.now() - t) / q.images;
  t = performance.now();
  for (const [i, b] of plain.entries()) await upload(sut, token, b, `plain${i}`);
  const plainMs = (performance.now() - t) / q.images;

  // Memory while `clients` users each stream a large upload at the same time.
  const uploaders = await registerUsers(sut, q.parallel.clients, "par");
  await Bun.sleep(300);
  const idle = sut.stats().rss_mb;
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, sut.stats().rss_mb)), 10);
  t = performance.now();
  await Promise.all(uploaders.map((u, i) => upload(sut, u.token, streamOf(q.parallel.bytes, i), `par${i}`)));
  const parallelS = (performance.now() - t) / 1000;
  clearInterval(sampler);

  return {
    scenario: "uploads",
    server: "parley",
    throughput,
    image: { width: 3000, height: 2000, jpeg_kb: Math.round(jpeg.length / 1024), upload_ms: round(imageMs, 1), same_size_file_ms: round(plainMs, 1), thumbnail_ms: round(imageMs - plainMs, 1) },
    parallel: {
      clients: q.parallel.clients, size_mib: q.parallel.bytes / MiB, seconds: round(parallelS, 2),
      mb_s: round((q.parallel.clients * q.parallel.bytes) / MiB / parallelS, 1), rss_idle_mb: idle, rss_peak_mb: peak, rss_growth_mb: round(peak - idle, 1),
    },
  };
}

function onePixelPng() {
  return Uint8Array.from(atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="), (c) => c.charCodeAt(0));
}

/** The JPEG with a distinct COM segment, so each upload is a new file (content-addressed storage). */
function withComment(jpeg: Uint8Array, i: number): Uint8Array {
  const text = new TextEncoder().encode(`bench ${i}`);
  const segment = new Uint8Array(4 + text.length);
  segment.set([0xff, 0xfe, (text.length + 2) >> 8, (text.length + 2) & 0xff]);
  segment.set(text, 4);
  const out = new Uint8Array(jpeg.length + segment.length);
  out.set(jpeg.subarray(0, 2));
  out.set(segment, 2);
  out.set(jpeg.subarray(2), 2 + segment.length);
  return out;
}
