/**
 * Lints the served API documents with @redocly/cli (recommended rules), offline: the
 * OpenAPI and AsyncAPI documents are written by scripts/docs.ts to a temporary directory,
 * and Redocly's telemetry and update checks are off. Exits non-zero on any error
 * (warnings pass).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "parley-api-"));
const root = join(import.meta.dir, "..");
const run = (cmd: string[]) =>
  Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit", env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" } }).exitCode;
try {
  let code = run([process.execPath, "scripts/docs.ts", dir]);
  if (code === 0) code = run(["node", "node_modules/@redocly/cli/bin/cli.js", "lint", "--format=summary", join(dir, "openapi.json"), join(dir, "asyncapi.json")]);
  process.exitCode = code ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
