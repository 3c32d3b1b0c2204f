/**
 * Imported as a Bun macro (`with { type: "macro" }`): runs at build time and inlines the
 * text of fold.js, which the indexer worker (started from a Blob, unable to import) gets
 * appended. A plain text import of fold.js would clash with its import as a module.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export function foldSource(): string {
  return readFileSync(join(import.meta.dir, "fold.js"), "utf8");
}
