/** Files for attachment tests, made on the spot: real images, hostile files, random bytes; and their upload. */
import type { TestServer } from "./helpers";

const PNG_1X1 = Uint8Array.from(atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="), (c) => c.charCodeAt(0));

export const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

export function randomBytes(n: number) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

export const png = (width: number, height: number) => new Bun.Image(PNG_1X1).resize(width, height, { fit: "fill" }).png().bytes();
export const jpeg = (width: number, height: number) => new Bun.Image(PNG_1X1).resize(width, height, { fit: "fill" }).jpeg().bytes();

const crc32 = (b: Uint8Array) => {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
};

/** A valid 1×1 PNG whose header claims 100,000 × 100,000 pixels: a decompression bomb. */
export function pngBomb(): Uint8Array {
  const b = PNG_1X1.slice();
  const v = new DataView(b.buffer);
  v.setUint32(16, 100_000);
  v.setUint32(20, 100_000);
  v.setUint32(29, crc32(b.subarray(12, 29)));
  return b;
}

/** The PNG signature followed by a ZIP archive. */
export function pngZip(): Uint8Array {
  const zip = new Uint8Array(200);
  zip.set(PNG_1X1.subarray(0, 8));
  zip.set([0x50, 0x4b, 0x03, 0x04], 8);
  return zip;
}

const enc = (s: string) => new TextEncoder().encode(s);
export const HTML = enc("<!doctype html><html><body><script>parent.pwned = 1</script></body></html>");
export const SVG = enc(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`);

/** A JPEG that decodes, with an HTML page after its end marker. */
export async function polyglotJpeg(): Promise<Uint8Array> {
  const j = await jpeg(32, 32);
  const out = new Uint8Array(j.length + HTML.length);
  out.set(j);
  out.set(HTML, j.length);
  return out;
}

export type Res = { status: number; body: any; headers: Headers };

/** POST /api/uploads: a raw body (`type` its Content-Type, `filename` the query's). */
export async function upload(s: TestServer, token: string, body: RequestInit["body"], opts: { filename?: string; type?: string } = {}): Promise<Res> {
  const q = opts.filename === undefined ? "" : `?filename=${encodeURIComponent(opts.filename)}`;
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (opts.type) headers["content-type"] = opts.type;
  const res = await fetch(`${s.base}/api/uploads${q}`, { method: "POST", headers, body });
  const text = await res.text();
  let json: any = text;
  try { json = JSON.parse(text); } catch {}
  return { status: res.status, body: json, headers: res.headers };
}

