/**
 * The web client's files (PROTOCOL §10), each compressed once, with the headers it is
 * served with.
 *
 * Where they come from:
 * - inside the compiled executable, `bun build --compile` bundles `web/index.html` (because
 *   of the static import below) and embeds the HTML and its hashed chunks; the import then
 *   lists them in `files` and we read them from the binary;
 * - when running from source (development, `bun test`), the import is an unbundled handle, so
 *   we bundle `web/` once per process with `Bun.build`, in memory, minified, no dev server.
 *
 * Why not hand the bundle to Bun's router (`.get("/", index)`): Bun then serves it with an
 * ETag only — no compression, no Cache-Control, no CSP — and from source in development mode
 * with an inline HMR script that a strict CSP refuses.
 */
import index from "../../web/index.html";
import { brotliCompressSync, constants as zlib } from "node:zlib";
import { basename, join } from "node:path";

export interface WebFile {
  /** URL path, e.g. `/assets/chunk-6m5ol.js`; `/index.html` for the page. */
  path: string;
  type: string;
  raw: Uint8Array;
  gzip: Uint8Array;
  br: Uint8Array;
}

export interface WebAssets {
  html: WebFile;
  byPath: Map<string, WebFile>;
}

interface Source { path: string; type: string; raw: Uint8Array }

type CompiledBundle = { index: string; files?: { path: string; loader: string; headers: Record<string, string> }[] };

/** Assets live under /assets/ so that no root path (/docs, /health, …) can be shadowed. */
export const ASSET_PREFIX = "/assets/";

async function compiledFiles(bundle: CompiledBundle): Promise<Source[]> {
  const names = bundle.files!.filter((f) => f.path !== bundle.index).map((f) => basename(f.path));
  return Promise.all(
    bundle.files!.map(async (f) => {
      const raw = new Uint8Array(await Bun.file(f.path).arrayBuffer());
      if (f.path !== bundle.index) return { path: ASSET_PREFIX + basename(f.path), type: f.headers["content-type"] ?? "application/octet-stream", raw };
      // The compiler writes root-relative links (`/chunk-….js`) and has no public-path option.
      let html = new TextDecoder().decode(raw);
      for (const name of names) html = html.replaceAll(`"/${name}"`, `"${ASSET_PREFIX}${name}"`);
      return { path: "/index.html", type: "text/html;charset=utf-8", raw: new TextEncoder().encode(html) };
    }),
  );
}

async function builtFiles(): Promise<Source[]> {
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, "../../web/index.html")],
    minify: true,
    publicPath: ASSET_PREFIX,
    naming: { entry: "[name].[ext]", chunk: "chunk-[hash].[ext]", asset: "chunk-[hash].[ext]" },
    define: { "process.env.NODE_ENV": '"production"' },
  });
  if (!result.success) throw new AggregateError(result.logs, "the web client does not build");
  return Promise.all(
    result.outputs.map(async (o) => ({
      path: o.kind === "entry-point" && o.path.endsWith(".html") ? "/index.html" : ASSET_PREFIX + basename(o.path),
      type: o.type,
      raw: new Uint8Array(await o.arrayBuffer()),
    })),
  );
}

function compress(s: Source): WebFile {
  return {
    ...s,
    gzip: Bun.gzipSync(s.raw as Uint8Array<ArrayBuffer>, { level: 9 }),
    br: brotliCompressSync(s.raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: s.raw.length } }),
  };
}

let loading: Promise<WebAssets> | null = null;

/** The client's files, bundled (from source) and compressed once per process, on first use. */
export function webAssets(): Promise<WebAssets> {
  loading ??= (async () => {
    const bundle = index as unknown as CompiledBundle;
    const sources = bundle.files?.length ? await compiledFiles(bundle) : await builtFiles();
    const byPath = new Map(sources.map((s) => [s.path, compress(s)]));
    const html = byPath.get("/index.html");
    if (!html) throw new Error("the web client bundle has no index.html");
    byPath.delete("/index.html");
    return { html, byPath };
  })();
  // A failed build is retried on the next request rather than cached for good.
  loading.catch(() => (loading = null));
  return loading;
}
