/**
 * `bun run test:pg` runs the suite's files on PostgreSQL (PARLEY_TEST_DB=postgres): every
 * file whose tests start servers through startServer (test/helpers.ts), so a new one is not
 * left out. Tests of SQLite internals inside them say so with sqliteOnly(why).
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Files left out of test:pg, with why (none now: the browser tests run there too). */
const NOT_ON_POSTGRES: string[] = [];

test("test:pg lists every test file that starts a TestServer, and only those (but the ones named here)", () => {
  const root = join(import.meta.dir, "..");
  const script: string = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts["test:pg"];
  const listed = script.split(/\s+/).filter((w) => w.endsWith(".test.ts")).sort();
  const parametrised = readdirSync(join(root, "test"))
    .filter((f) => f.endsWith(".test.ts") && /\bstartServer\(/.test(readFileSync(join(root, "test", f), "utf8")))
    .map((f) => `test/${f}`)
    .filter((f) => !NOT_ON_POSTGRES.includes(f))
    .sort();
  expect(listed).toEqual(parametrised);
});
