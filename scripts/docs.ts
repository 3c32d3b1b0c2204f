/**
 * Writes the served API documents to files, for linters and generators:
 * `bun scripts/docs.ts <dir>` → <dir>/openapi.json and <dir>/asyncapi.json, exactly as
 * `/docs/json` and `/docs/asyncapi.json` answer them (from an app on a throwaway data directory).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../src/app";
import { makeConfig } from "../src/config";
import { createLogger } from "../src/log";

const out = process.argv[2] ?? ".";
const dataDir = mkdtempSync(join(tmpdir(), "parley-docs-"));
const app = createApp(makeConfig({ dataDir, logLevel: "error" }), { log: createLogger("error") });
try {
  mkdirSync(out, { recursive: true });
  for (const [path, file] of [["/docs/json", "openapi.json"], ["/docs/asyncapi.json", "asyncapi.json"]] as const) {
    const res = await app.app.handle(new Request(`http://127.0.0.1${path}`));
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    writeFileSync(join(out, file), JSON.stringify(await res.json(), null, 2) + "\n");
  }
} finally {
  await app.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
