/**
 * `POST /api/uploads`, `GET|HEAD /api/attachments/:id` and `…/:id/thumbnail`
 * (PROTOCOL §9). Downloads take a signed link (`?v&e&s`, for `<img>`) or the bearer
 * header; either way the viewer must be the uploader or a member of a conversation
 * holding a message with the file. Every download is sandboxed: nosniff, a CSP that runs
 * nothing, and anything but a decoded image is served to be saved, not displayed.
 */
import { Elysia, t } from "elysia";
import type { AppContext } from "../context";
import { authenticate, bearerToken } from "../auth/plugin";
import { AppError } from "../errors";
import { contentDisposition } from "./names";
import { ATTACHMENT_PATH_PREFIX, attachmentPath, AVATAR_PATH_PREFIX, UPLOAD_PATH } from "./paths";
import { UNSIGNED_LINK } from "./links";
import { op } from "../http/docs";
import { Attachment } from "./model";

/** A download's body: the file, in its own content type. */
const FILE = t.String({ format: "binary" });

const SANDBOX = "sandbox; default-src 'none'";

/**
 * A single `bytes=` range within `size`, or "bad" (416) for a malformed or unsatisfiable
 * one. Null — the whole file — without a Range header, and where RFC 9110 §14.2 says to
 * ignore it: another unit, or an `If-Range` that is not this file's ETag. Several ranges
 * are answered with the whole file too (which the RFC allows) rather than multipart.
 */
function parseRange(header: string | null, ifRange: string | null, etag: string, size: number): { start: number; end: number } | null | "bad" {
  if (header === null || (ifRange !== null && ifRange.trim() !== etag)) return null;
  const spec = header.trim();
  if (!/^bytes=/i.test(spec) || spec.includes(",")) return null;
  // Any number of digits: an end past the file means "to its end" (RFC 9110 §14.1.2), however long.
  const m = /^bytes=(\d*)-(\d*)$/i.exec(spec);
  if (!m || (m[1] === "" && (m[2] === "" || Number(m[2]) === 0))) return "bad";
  const [start, end] = m[1] === "" ? [Math.max(0, size - Number(m[2])), size - 1] : [Number(m[1]), m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1)];
  return start <= end && start < size ? { start, end } : "bad";
}

/** The request id (http/request-log.ts sets it on every response), for log lines. */
const requestIdOf = (set: { headers: Record<string, unknown> }) => {
  const id = set.headers["x-request-id"];
  return typeof id === "string" ? id : undefined;
};

/** `photo.jpg` → `photo.webp`: a thumbnail saved from the browser is named for what it is. */
const thumbnailName = (filename: string) => `${filename.replace(/\.[^.]{1,16}$/, "")}.webp`;

const IMAGE_EXTENSIONS: Record<string, readonly string[]> = {
  "image/jpeg": [".jpg", ".jpeg", ".jfif"],
  "image/png": [".png"],
  "image/webp": [".webp"],
  "image/gif": [".gif"],
};
/** Types a browser shows without running anything (with nosniff): decoded images only, each with its extensions. */
const INLINE = new Set(Object.keys(IMAGE_EXTENSIONS));
/**
 * An image shown inline is saved from the browser under this name: its own, with the
 * extension of what it was decoded as added when the name says otherwise, so a JPEG
 * uploaded as `page.html` (a polyglot) is not saved as a page that would run from disk.
 */
function inlineName(filename: string, type: string): string {
  const extensions = IMAGE_EXTENSIONS[type]!;
  return extensions.some((e) => filename.toLowerCase().endsWith(e)) ? filename : `${filename}${extensions[0]}`;
}

/**
 * Signs the attachment links of every JSON response for the authenticated caller
 * (`me`, set by the auth plugin): histories, sends, conversation lists, event pages.
 * Only responses that hold a link are touched; the rest go out as Elysia renders them.
 */
/** Whether a response value holds an attachment with an unsigned link, at any depth. */
function holdsUnsignedLink(value: unknown, depth = 0): boolean {
  if (typeof value !== "object" || value === null || depth > 8) return false;
  if (Array.isArray(value)) return value.some((v) => holdsUnsignedLink(v, depth + 1));
  const url = (value as { url?: unknown }).url;
  if (typeof url === "string" && url.startsWith(ATTACHMENT_PATH_PREFIX)) return true;
  for (const v of Object.values(value)) if (typeof v === "object" && v !== null && holdsUnsignedLink(v, depth + 1)) return true;
  return false;
}

export const signedLinks = (ctx: AppContext) =>
  new Elysia({ name: "parley.signed-links", seed: ctx.instance }).onAfterHandle({ as: "global" }, (c) => {
    const me = (c as unknown as { me?: { id: string } }).me;
    const value = (c as unknown as { responseValue?: unknown }).responseValue;
    if (!me || value === null || value instanceof Response || value instanceof Blob) return;
    // Some routes hand over JSON they built as text (conversation lists); objects are only
    // serialised here when they hold a link (most responses hold none).
    if (typeof value === "string" ? !value.includes(UNSIGNED_LINK) : !holdsUnsignedLink(value)) return;
    const json = typeof value === "string" ? value : JSON.stringify(value);
    // Text, not a Response: Elysia would make a returned Response again (see web/routes.ts).
    c.set.headers["content-type"] = "application/json;charset=utf-8"; // as every other JSON response
    return ctx.files.links.personalize(json, me.id);
  });

export const fileRoutes = (ctx: AppContext) => {
  const { files } = ctx;

  /** Who is asking: a valid signed link for exactly this path, else the bearer header. */
  async function viewer(request: Request, path: string, query: Record<string, string | undefined>): Promise<string> {
    if (query.s !== undefined || query.v !== undefined || query.e !== undefined) {
      const check = files.links.verify(path, query.v ?? "", query.e ?? "", query.s ?? "");
      if (!check.ok) throw new AppError("forbidden", check.reason === "expired" ? "this link has expired; reload to get a fresh one" : "not a valid link");
      return check.viewerId;
    }
    return (await authenticate(ctx, bearerToken(request.headers.get("authorization") ?? undefined))).me.id;
  }

  async function download(request: Request, id: string, thumbnail: boolean, query: Record<string, string | undefined>, requestId?: string): Promise<Response> {
    const path = `${attachmentPath(id)}${thumbnail ? "/thumbnail" : ""}`;
    const row = await files.readable(id, await viewer(request, path, query));
    const type = thumbnail ? "image/webp" : row.contentType;
    return serve(request, thumbnail ? row.thumbnailKey : row.storageKey, `"${row.sha256}${thumbnail ? "-t" : ""}"`, {
      "cache-control": "private, max-age=31536000, immutable",
      "cross-origin-resource-policy": "same-origin",
      "content-type": type,
      "content-disposition": thumbnail ? contentDisposition("inline", thumbnailName(row.filename)) : INLINE.has(type) ? contentDisposition("inline", inlineName(row.filename, type)) : contentDisposition("attachment", row.filename),
    }, requestId);
  }

  /**
   * A profile picture: its thumbnail, to anyone. Nothing of the private original shows (its
   * name, its hash: the ETag is the id's, which names this picture for good); shown by other
   * origins' pages too (a client served elsewhere).
   */
  async function avatar(request: Request, id: string, requestId?: string): Promise<Response> {
    const row = await files.avatar(id);
    return serve(request, row.thumbnailKey, `"${row.id}"`, {
      "cache-control": "public, max-age=31536000, immutable",
      "cross-origin-resource-policy": "cross-origin",
      "content-type": "image/webp",
      "content-disposition": contentDisposition("inline", "avatar.webp"),
    }, requestId);
  }

  /** A stored file (`key`), whole or a range, with the headers every download has. */
  async function serve(request: Request, key: string | null, etag: string, own: Record<string, string>, requestId?: string): Promise<Response> {
    if (!key) throw new AppError("not_found", "this attachment has no thumbnail");
    const headers: Record<string, string> = {
      ...own,
      etag,
      "x-content-type-options": "nosniff",
      "content-security-policy": SANDBOX,
      "accept-ranges": "bytes",
    };
    const inm = request.headers.get("if-none-match");
    if (inm && inm.split(",").some((t) => t.trim() === etag || t.trim() === `W/${etag}` || t.trim() === "*")) return new Response(null, { status: 304, headers });
    // A blob lost outside Parley's hands (a partial restore): not found, not a 500. A store
    // that does not answer (S3 down) is not "missing": 503/500, logged (Files.failed).
    const size = await files.blobSize(key, requestId);
    if (size === null) throw new AppError("not_found", "the file of this attachment is missing from storage");
    const range = parseRange(request.headers.get("range"), request.headers.get("if-range"), etag, size);
    if (range === "bad") return new Response(null, { status: 416, headers: { ...headers, "content-range": `bytes */${size}` } });
    const head = request.method === "HEAD";
    if (!range) return new Response(head ? null : ctx.files.store.body(key), { status: 200, headers: { ...headers, "content-length": String(size) } });
    const length = range.end - range.start + 1;
    return new Response(head ? null : ctx.files.store.body(key, range), {
      status: 206,
      headers: { ...headers, "content-length": String(length), "content-range": `bytes ${range.start}-${range.end}/${size}` },
    });
  }

  // A signed link's parts (the URLs in Attachment carry them): for an <img>, which sends no header.
  const Query = t.Object({
    v: t.Optional(t.String({ description: "signed link: its version (from an Attachment's url)" })),
    e: t.Optional(t.String({ description: "signed link: when it expires (from an Attachment's url)", documented: { type: "integer" } })),
    s: t.Optional(t.String({ description: "signed link: its signature (from an Attachment's url)" })),
    filename: t.Optional(t.String({ description: "ignored on a download (the Content-Disposition names the file)" })),
  });
  const UploadQuery = t.Object({ filename: t.Optional(t.String({ description: "the file's name, for a raw body (a multipart part names its own)" })) });
  /** What a download (GET) or its headers (HEAD) answer. */
  const served = (head: boolean) => (head ? { 200: null, 206: null, 304: null, 416: null } : { 200: FILE, 206: FILE, 304: null, 416: null });
  /** A download (GET) or its headers (HEAD): by signed link or bearer token. */
  const detail = (summary: string, head = false) => ({
    detail: op(summary, served(head), {
      binary: true,
      errors: [403, 404, 503],
      security: [{ bearer: [] }, { signedLink: [] }],
      description:
        "403 for a link that is not valid (or expired); 404 for an attachment the caller may not see, or whose file is missing from a store that answers; 503 unavailable (Retry-After) when the file storage is unreachable, 500 when it fails otherwise.",
    }),
    query: Query,
  });

  /** A profile picture (GET) or its headers (HEAD): no credentials. */
  const avatarDetail = (summary: string, head = false) => ({
    detail: op(summary, served(head), {
      binary: true,
      errors: [404, 503],
      public: true,
      description: "404 for an id that is nobody's picture (never, or not any more); 503 unavailable (Retry-After) when the file storage is unreachable, 500 when it fails otherwise.",
    }),
  });

  return new Elysia({ tags: ["attachments"] })
    .post(
      UPLOAD_PATH,
      async (c) => {
        const { request, query, set } = c;
        // Authenticated here, not by the plugin, so that a refused upload is refused before its
        // body is read; `me` then goes where the plugin leaves it: the request line names the
        // user, and signedLinks signs the attachment's links for them.
        const { me } = await authenticate(ctx, bearerToken(request.headers.get("authorization") ?? undefined));
        (c as unknown as { me: typeof me }).me = me;
        // A coded body would be stored as its coded bytes: a file that is not the one sent.
        const coding = request.headers.get("content-encoding")?.trim();
        if (coding && coding.toLowerCase() !== "identity") throw new AppError("bad_request", `Content-Encoding ${coding} is not accepted: upload the file itself`);
        await ctx.budgets.uploads.spend(me.id, "too many uploads, slow down");
        const attachment = await files.upload(me.id, { request, filename: query.filename, requestId: requestIdOf(set) });
        set.status = 201;
        return attachment;
      },
      {
        detail: op("Upload a file: the raw body (Content-Type, ?filename=) or multipart/form-data with a `file` part", { 201: Attachment }, {
          write: true,
          errors: [403, 503],
          description:
            "413 past MAX_UPLOAD_BYTES; 403 quota_exceeded past UPLOAD_QUOTA_BYTES; 429 past UPLOADS_PER_MINUTE; 400 for a body that ended early (the client went away) or a coded one (Content-Encoding other than identity); 503 unavailable (Retry-After) when the file storage is unreachable, 507 when its disk is full, 500 when it fails otherwise: nothing is stored.",
          requestBody: {
            required: true,
            content: {
              "application/octet-stream": { schema: { type: "string", format: "binary", description: "the file itself, with its Content-Type (any)" } },
              "multipart/form-data": { schema: { type: "object", required: ["file"], properties: { file: { type: "string", format: "binary" } } } },
            },
          },
        }),
        query: UploadQuery,
      },
    )
    .get("/api/attachments/:id", ({ request, params, query, set }) => download(request, params.id, false, query, requestIdOf(set)), detail("Download (signed link or bearer); Range, ETag"))
    // A profile picture: its thumbnail (WebP, fits 400×400), public while it is someone's picture.
    .get(`${AVATAR_PATH_PREFIX}:id`, ({ request, params, set }) => avatar(request, params.id, requestIdOf(set)), avatarDetail("A profile picture (the profile_image_url an uploaded picture sets): WebP, public, cached for good"))
    .head(`${AVATAR_PATH_PREFIX}:id`, ({ request, params, set }) => avatar(request, params.id, requestIdOf(set)), avatarDetail("A profile picture's headers", true))
    .head("/api/attachments/:id", ({ request, params, query, set }) => download(request, params.id, false, query, requestIdOf(set)), detail("Download headers", true))
    .get("/api/attachments/:id/thumbnail", ({ request, params, query, set }) => download(request, params.id, true, query, requestIdOf(set)), detail("WebP thumbnail fitting 400×400 (images only)"))
    .head("/api/attachments/:id/thumbnail", ({ request, params, query, set }) => download(request, params.id, true, query, requestIdOf(set)), detail("Thumbnail headers", true));
};
