/**
 * What a file is, from its first bytes; the client's Content-Type is a hint at most.
 * Anything a browser would run (HTML, SVG, XML, JavaScript) is only ever served as
 * `application/octet-stream`, to be saved, never displayed.
 */

export type Sniffed =
  /** Decodable by Bun.Image: dimensions and a thumbnail. */
  | { kind: "image"; type: "image/jpeg" | "image/png" | "image/webp" | "image/gif" }
  /** A picture format Bun.Image cannot decode here: kept as a file. */
  | { kind: "file"; type: string };

const ascii = (head: Uint8Array, at: number, s: string) => s.split("").every((c, i) => head[at + i] === c.charCodeAt(0));

/** Types that are safe to label as what they are (with nosniff): none of them runs in a browser. */
const SAFE_DECLARED = /^(text\/plain|text\/csv|application\/(pdf|zip|gzip|x-tar|x-7z-compressed|json|msword|vnd\.[a-z0-9.+-]+)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+)$/;
/**
 * What a browser opens as a document or runs, whatever the family: any `+xml` type is an
 * XML document to a browser (XHTML inside runs), and HTML, SVG, XSL or script by name.
 */
const DOCUMENT = /\+xml$|html|svg|xsl|script/;

export function sniff(head: Uint8Array, declared: string | null): Sniffed {
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return { kind: "image", type: "image/jpeg" };
  if (ascii(head, 0, "\x89PNG\r\n\x1a\n")) return { kind: "image", type: "image/png" };
  if (ascii(head, 0, "RIFF") && ascii(head, 8, "WEBP")) return { kind: "image", type: "image/webp" };
  if (ascii(head, 0, "GIF87a") || ascii(head, 0, "GIF89a")) return { kind: "image", type: "image/gif" };
  if (ascii(head, 4, "ftyp")) {
    const brand = String.fromCharCode(...head.subarray(8, 12));
    if (/^(heic|heix|heim|heis|hevc|hevx|mif1|msf1)$/.test(brand)) return { kind: "file", type: "image/heic" };
    if (/^(avif|avis)$/.test(brand)) return { kind: "file", type: "image/avif" };
    if (/^(isom|iso2|mp41|mp42|avc1|M4V |dash)$/.test(brand)) return { kind: "file", type: "video/mp4" };
  }
  if (ascii(head, 0, "%PDF-")) return { kind: "file", type: "application/pdf" };
  if (looksLikeMarkup(head)) return { kind: "file", type: "application/octet-stream" };
  const type = (declared ?? "").split(";")[0]!.trim().toLowerCase();
  return { kind: "file", type: SAFE_DECLARED.test(type) && !DOCUMENT.test(type) ? type : "application/octet-stream" };
}

/** Text that opens with `<` (after a BOM and white space): HTML, SVG, XML. */
function looksLikeMarkup(head: Uint8Array): boolean {
  let i = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  return head[i] === 0x3c;
}
