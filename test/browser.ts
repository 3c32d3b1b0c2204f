/**
 * Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core
 * (Playwright's own browser download cannot work on these machines). Under CI=true a
 * browser that cannot start fails the tests; elsewhere they are skipped with a clear line.
 */
import { chromium, type Browser } from "playwright-core";
import { existsSync } from "node:fs";

export const CHROMIUM = Bun.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** One browser per test file; null (after saying so) when there is none outside CI. */
export async function launchBrowser(): Promise<Browser | null> {
  const ci = Bun.env.CI === "true" || Bun.env.CI === "1";
  try {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} does not exist (apt-get install -y chromium)`);
    return await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30_000 });
  } catch (e) {
    if (ci) throw new Error(`CI=true and no browser could be started: ${e instanceof Error ? e.message : e}`);
    console.warn(`\n*** SKIPPED the browser tests of the web client: no browser could be started (${e instanceof Error ? e.message.split("\n")[0] : e}). Install chromium to run them. ***\n`);
    return null;
  }
}
