/** Preloaded by bunfig.toml for every test file. */
import { afterEach, setDefaultTimeout } from "bun:test";
import { frameViolations } from "./contract";
import { prepareTemplate } from "./services";
import { ALLOCATOR_ENV } from "../src/platform/allocator";

// Tests start real servers (and browsers, clusters): room for a slow or busy machine, for
// tests and their hooks alike. (bunfig.toml's [test] timeout is not applied by bun 1.4.4:
// everything timed out at 5 s.)
setDefaultTimeout(30_000);

// Servers these tests start from the source would otherwise start twice (~0.3 s each) to get
// the allocator setting (src/platform/allocator.ts); given here, they run with it at once.
// test/cli.test.ts and test/binary.test.ts check the re-execution with environments of their own.
for (const [name, value] of Object.entries(ALLOCATOR_ENV)) process.env[name] ??= value;

// PARLEY_TEST_DB=postgres: the migrated template every server's database is copied from.
if (process.env.PARLEY_TEST_DB === "postgres") await prepareTemplate();

// A frame that does not match its documented model fails the test that received it.
afterEach(() => {
  if (frameViolations.length === 0) return;
  const found = frameViolations.splice(0);
  throw new Error(`WebSocket frames that do not match the documents:\n${found.join("\n")}`);
});
