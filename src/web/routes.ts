/**
 * GET / and deep links (/c/<conversation_id>) serve the web client's page; its hashed
 * chunks under /assets/.
 * PROTOCOL §10: compressed assets cached `immutable`, the page `no-cache`, and a CSP without
 * inline scripts that forbids framing.
 */
import { Elysia } from "elysia";
import { AppError } from "../errors";
import { ASSET_PREFIX, webAssets, type WebFile } from "./assets";

/**
 * Scripts and styles only from this server (no inline script: message text can never run);
 * avatars may be any https image (not http: a profile could then make every viewer's browser
 * send requests to plain-http devices of their network; the Profile dialog says so, and an
 * avatar that does not load shows the initials); the socket is same-origin.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' https: data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/** br when the client takes it, else gzip, else the raw bytes. */
function encode(file: WebFile, acceptEncoding: string | null | undefined): { body: Uint8Array; encoding?: string } {
  const accepted = (acceptEncoding ?? "").toLowerCase().split(",").map((s) => s.trim().split(";")[0]);
  if (accepted.includes("br")) return { body: file.br, encoding: "br" };
  if (accepted.includes("gzip")) return { body: file.gzip, encoding: "gzip" };
  return { body: file.raw };
}

/** Elysia's `set`: what the response Elysia makes will carry. */
type Out = { headers: Record<string, string | number> };

/**
 * The file's bytes, its headers put on the response Elysia makes of them. (A Response
 * returned from a handler is made again by Elysia, its body read as a stream, whenever a
 * hook set a header, which the request id always does: 8.4 → 5–6 µs a request in one
 * process, issue #17.)
 */
function respond(file: WebFile, request: Request, set: Out, headers: Record<string, string>): Uint8Array {
  const { body, encoding } = encode(file, request.headers.get("accept-encoding"));
  Object.assign(set.headers, headers);
  set.headers["content-type"] = file.type;
  set.headers.vary = "Accept-Encoding";
  if (encoding) set.headers["content-encoding"] = encoding;
  return body;
}

async function page({ request, set }: { request: Request; set: Out }) {
  const { html } = await webAssets();
  return respond(html, request, set, { ...PAGE_HEADERS, "cache-control": "no-cache" });
}

/** First path segments that are the API's, whatever asks: an unknown path under them answers JSON. */
const NOT_PAGES = new Set(["api", "ws", "assets", "docs", "health", "metrics"]);

/**
 * A browser's navigation to a path that is no route (a mistyped or cut link: `/c/`, `/foo`)
 * gets the app, with 404, which says so and shows the list; not the API's JSON error. API
 * clients (no `text/html` in Accept) and paths under the API's segments still get the JSON.
 */
export function isPageNavigation(request: Request): boolean {
  if (request.method !== "GET" && request.method !== "HEAD") return false;
  if (!(request.headers.get("accept") ?? "").includes("text/html")) return false;
  const first = new URL(request.url).pathname.split("/")[1] ?? "";
  return !NOT_PAGES.has(first);
}

export async function notFoundPage({ request, set }: { request: Request; set: Out & { status?: number | string } }) {
  set.status = 404;
  const body = await page({ request, set });
  set.headers.vary = "Accept, Accept-Encoding"; // API clients get JSON at the same path
  return body;
}

export const webRoutes = () =>
  new Elysia({ name: "web" })
    .get("/", page, { detail: { hide: true } })
    .get("/c/:id", page, { detail: { hide: true } })
    .get(
      `${ASSET_PREFIX}:file`,
      async ({ request, params, set }) => {
        const file = (await webAssets()).byPath.get(ASSET_PREFIX + params.file);
        if (!file) throw new AppError("not_found", "no such route");
        return respond(file, request, set as Out, { "cache-control": "public, max-age=31536000, immutable", "x-content-type-options": "nosniff" });
      },
      { detail: { hide: true } },
    );
