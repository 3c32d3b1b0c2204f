/**
 * Image dimensions and thumbnails with Bun's built-in Bun.Image (JPEG, PNG, WebP, GIF).
 * A header claiming more than MAX_PIXELS is refused before any pixel is allocated (a
 * decompression bomb costs nothing); decodes run one at a time, so at most one full-size
 * bitmap is in memory whatever the number of uploads in flight.
 */
export const MAX_PIXELS = 50_000_000;
export const THUMBNAIL_BOX = 400;

export interface ImageInfo { width: number; height: number; thumbnail: Uint8Array }

let queue: Promise<unknown> = Promise.resolve();

/** Width, height and a WebP thumbnail fitting 400×400; null when it is not a decodable image. */
export function describeImage(source: string | Blob): Promise<ImageInfo | null> {
  const run = queue.then(() => decode(source));
  queue = run.catch(() => {});
  return run;
}

async function decode(source: string | Blob): Promise<ImageInfo | null> {
  try {
    const input = typeof source === "string" ? source : await source.arrayBuffer();
    const { width, height } = await new Bun.Image(input, { maxPixels: MAX_PIXELS }).metadata();
    const thumbnail = await new Bun.Image(input, { maxPixels: MAX_PIXELS })
      .resize(THUMBNAIL_BOX, THUMBNAIL_BOX, { fit: "inside", withoutEnlargement: true })
      .webp({ quality: 80 })
      .bytes();
    return { width, height, thumbnail };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code?.startsWith("ERR_IMAGE_")) return null;
    throw err;
  }
}
