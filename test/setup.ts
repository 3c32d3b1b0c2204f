/** Preloaded by bunfig.toml for every test file. */
import { afterEach } from "bun:test";
import { frameViolations } from "./contract";
import { prepareTemplate } from "./services";

// PARLEY_TEST_DB=postgres: the migrated template every server's database is copied from.
if (process.env.PARLEY_TEST_DB === "postgres") await prepareTemplate();

// A frame that does not match its documented model fails the test that received it.
afterEach(() => {
  if (frameViolations.length === 0) return;
  const found = frameViolations.splice(0);
  throw new Error(`WebSocket frames that do not match the documents:\n${found.join("\n")}`);
});
