/**
 * File names as clients send them (`?filename=`, a multipart part's filename) become a
 * name that is safe to show and to offer for saving: only the last path segment, no
 * control characters, no characters Windows refuses, no reserved device names, at most
 * MAX_FILENAME characters with the extension kept. Bidirectional controls and other
 * invisible format characters are refused (PROTOCOL §7.3): a name cannot be made to read
 * as another. The name is never used as a path on the server (blobs are keyed by hash).
 */
import { invalid } from "../errors";
import { hasFormatCharacters } from "../lib/text";

export const MAX_FILENAME = 200;

const UNSAFE = /[\u0000-\u001f\u007f-\u009f<>:"/\\|?*]/g;
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;

export function cleanFilename(raw: string | null | undefined): string {
  const given = (raw ?? "").toWellFormed();
  // The same set as display names and titles (lib/text), soft hyphen and word joiner included.
  if (hasFormatCharacters(given)) throw invalid("filename", "must not contain bidirectional controls or invisible format characters");
  // Both separators: a name from Windows arrives as C:\Users\x\a.png.
  // Composed (NFC), as names are (lib/text cleanName): macOS writes file names decomposed.
  let name = given.split(/[/\\]/).pop()!.replace(UNSAFE, "_").trim().normalize("NFC");
  // No hidden files, no "." or ".."; Windows drops trailing dots and spaces.
  name = name.replace(/^[.\s]+/, "").replace(/[.\s]+$/, "");
  if (RESERVED.test(name)) name = `_${name}`;
  const chars = [...name];
  if (chars.length > MAX_FILENAME) {
    const dot = name.lastIndexOf(".");
    const ext = dot > 0 && name.length - dot <= 16 ? [...name.slice(dot)] : [];
    name = chars.slice(0, MAX_FILENAME - ext.length).join("") + ext.join("");
  }
  return name || "file";
}

/**
 * `Content-Disposition` for a download: an ASCII fallback and the exact name in RFC 5987
 * form, so no header ever carries raw non-ASCII or quote characters.
 */
export function contentDisposition(kind: "inline" | "attachment", filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}
