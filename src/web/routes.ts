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
 * avatars may be any https image; the socket is same-origin.
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

function respond(file: WebFile, request: Request, headers: Record<string, string>): Response {
  const { body, encoding } = encode(file, request.headers.get("accept-encoding"));
  const h: Record<string, string> = { ...headers, "content-type": file.type, vary: "Accept-Encoding" };
  if (encoding) h["content-encoding"] = encoding;
  return new Response(body as Uint8Array<ArrayBuffer>, { headers: h });
}

async function page({ request }: { request: Request }) {
  const { html } = await webAssets();
  return respond(html, request, { ...PAGE_HEADERS, "cache-control": "no-cache" });
}

export const webRoutes = () =>
  new Elysia({ name: "web" })
    .get("/", page, { detail: { hide: true } })
    .get("/c/:id", page, { detail: { hide: true } })
    .get(
      `${ASSET_PREFIX}:file`,
      async ({ request, params }) => {
        const file = (await webAssets()).byPath.get(ASSET_PREFIX + params.file);
        if (!file) throw new AppError("not_found", "no such route");
        return respond(file, request, { "cache-control": "public, max-age=31536000, immutable", "x-content-type-options": "nosniff" });
      },
      { detail: { hide: true } },
    );
