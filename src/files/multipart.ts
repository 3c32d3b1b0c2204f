/**
 * A streaming reader for `multipart/form-data` bodies with one `file` part: the part's
 * content is handed on chunk by chunk as it arrives (Request.formData() would hold the
 * whole file). Other fields are skipped, whatever their size (within the body's limit); a
 * body that ends before the closing boundary, or has a second `file` part, throws (the
 * upload is then discarded).
 */
import { AppError } from "../errors";

const MAX_HEADER_BYTES = 16 * 1024;
const CRLFCRLF = Buffer.from("\r\n\r\n");

export class TruncatedBody extends Error {
  constructor() {
    super("the body ended early");
  }
}

export interface FilePart { filename: string | null; contentType: string | null; content: AsyncIterable<Uint8Array> }

/** The boundary of a multipart/form-data Content-Type, or null for any other type. */
export function multipartBoundary(contentType: string | null): string | null {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (!m) throw new AppError("bad_request", "multipart/form-data without a boundary");
  return m[1] ?? m[2]!;
}

/**
 * Buffers a byte stream just enough to find delimiters in it. Past `max` bytes in all
 * (fields, headers and file together) it throws `tooLarge()`: without a Content-Length,
 * fields before the file part would otherwise be read for as long as they keep coming.
 */
class Reader {
  buf: Buffer = Buffer.alloc(0);
  private done = false;
  private total = 0;
  constructor(private it: AsyncIterator<Uint8Array>, private max: number, private tooLarge: () => Error) {}
  /** Reads one more chunk into the buffer; false at the end of the body. */
  async more(): Promise<boolean> {
    if (this.done) return false;
    const { value, done } = await this.it.next();
    if (done) {
      this.done = true;
      return false;
    }
    this.total += value.byteLength;
    if (this.total > this.max) throw this.tooLarge();
    this.buf = this.buf.length ? Buffer.concat([this.buf, value]) : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return true;
  }
  /**
   * Skips past `needle`, discarding what comes before it as it arrives: a field of any size
   * is skipped in constant memory, bounded only by the body's `max` (a field over a fixed
   * 1 MiB was refused as "malformed", and a chunked body past the limit got that, not 413).
   */
  async skipPast(needle: Buffer): Promise<void> {
    for (;;) {
      const at = this.buf.indexOf(needle);
      if (at >= 0) {
        this.buf = this.buf.subarray(at + needle.length);
        return;
      }
      // Keep what could be the start of the needle split across chunks.
      if (this.buf.length >= needle.length) this.buf = this.buf.subarray(this.buf.length - (needle.length - 1));
      if (!(await this.more())) throw new TruncatedBody();
    }
  }
}

/** The `file` part of a body of at most `max` bytes (`tooLarge()` is thrown past that). */
export async function filePart(body: ReadableStream<Uint8Array>, boundary: string, max: number, tooLarge: () => Error): Promise<FilePart> {
  const reader = new Reader(body[Symbol.asyncIterator](), max, tooLarge);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // The first delimiter has no CRLF before it.
  await reader.skipPast(Buffer.from(`--${boundary}`));
  for (;;) {
    const headers = await nextPartHeaders(reader);
    if (headers === null) throw new AppError("validation_failed", "file: missing", [{ field: "file", message: "a multipart part named file is required" }]);
    const disposition = dispositionOf(headers);
    if (param(disposition, "name") !== "file") {
      await reader.skipPast(delimiter);
      continue;
    }
    return {
      filename: param(disposition, "filename*") ?? param(disposition, "filename"),
      contentType: /^content-type:\s*(.*?)\s*$/im.exec(headers)?.[1] ?? null,
      content: partContent(reader, delimiter),
    };
  }
}

/** After a delimiter: the next part's headers (the buffer is left at its content), or null at the closing "--". */
async function nextPartHeaders(reader: Reader): Promise<string | null> {
  while (reader.buf.length < 2) if (!(await reader.more())) throw new TruncatedBody();
  if (reader.buf[0] === 0x2d && reader.buf[1] === 0x2d) return null;
  const headerEnd = await indexOfOrMore(reader, CRLFCRLF, MAX_HEADER_BYTES);
  const headers = reader.buf.subarray(0, headerEnd).toString("utf8");
  reader.buf = reader.buf.subarray(headerEnd + 4);
  return headers;
}

const dispositionOf = (headers: string) => /^content-disposition:(.*)$/im.exec(headers)?.[1] ?? "";

async function indexOfOrMore(reader: Reader, needle: Buffer, max: number): Promise<number> {
  for (;;) {
    const at = reader.buf.indexOf(needle);
    if (at >= 0) return at;
    if (reader.buf.length > max) throw new AppError("bad_request", "multipart part headers are too long");
    if (!(await reader.more())) throw new TruncatedBody();
  }
}

/** The bytes up to the next delimiter; then checks that the body is complete. */
async function* partContent(reader: Reader, delimiter: Buffer): AsyncIterable<Uint8Array> {
  for (;;) {
    const at = reader.buf.indexOf(delimiter);
    if (at >= 0) {
      if (at > 0) yield reader.buf.subarray(0, at);
      reader.buf = reader.buf.subarray(at + delimiter.length);
      break;
    }
    // Keep what could be the start of a delimiter split across chunks.
    const safe = reader.buf.length - (delimiter.length - 1);
    if (safe > 0) {
      yield reader.buf.subarray(0, safe);
      reader.buf = reader.buf.subarray(safe);
    }
    if (!(await reader.more())) throw new TruncatedBody();
  }
  // The parts after it are read as they come, each by its headers: another `file` part is
  // refused before its content (PROTOCOL §9: one; which one was meant is not ours to guess),
  // others are skipped. The closing "--" must arrive, or the client was cut off.
  for (let headers; (headers = await nextPartHeaders(reader)) !== null; ) {
    if (param(dispositionOf(headers), "name") === "file") throw new AppError("validation_failed", "file: one part only", [{ field: "file", message: "exactly one multipart part named file" }]);
    await reader.skipPast(delimiter);
  }
  // After the closing delimiter, what a client may add (an epilogue) is read to the end.
  let rest = reader.buf.length;
  while (await reader.more()) {
    rest += reader.buf.length;
    reader.buf = Buffer.alloc(0);
    if (rest > 1024 * 1024) throw new AppError("bad_request", "multipart body goes on after the file");
  }
}

/** A parameter of a Content-Disposition header (`filename*=UTF-8''…` decoded). */
function param(header: string, key: string): string | null {
  const re = new RegExp(`;\\s*${key.replace("*", "\\*")}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;]*))`, "i");
  const m = re.exec(header);
  if (!m) return null;
  const value = m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!.trim();
  if (!key.endsWith("*")) return value;
  const ext = /^([\w-]+)'[^']*'(.*)$/.exec(value);
  try {
    return ext ? decodeURIComponent(ext[2]!) : null;
  } catch {
    return null;
  }
}
