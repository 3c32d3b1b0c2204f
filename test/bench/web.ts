/**
 * The web client's budgets (issue #13), measured in headless Chromium against a real server:
 * - first screen: JS + CSS bytes, compressed (br and gzip);
 * - signed in with 200 conversations: ms from navigation until the sidebar lists them all;
 * - a conversation of 10,000 messages: open it and scroll back 1,000 messages; the most
 *   message nodes ever in the DOM, and how long it took.
 * Prints one JSON object. `bun test/bench/web.ts`
 */
import { startServer, uniqueName, type Account } from "../helpers";
import { launchBrowser } from "../browser";

// The functions given to page.evaluate run in the page; this program has no DOM types.
declare const document: any, MutationObserver: any;

const s = await startServer({ sendsPerMinute: 1e9, writesPerMinute: 1e9 });
const browser = await launchBrowser();
if (!browser) process.exit(1);
const result: Record<string, unknown> = {};
try {
  // First screen.
  const html = await (await fetch(s.base + "/")).text();
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  for (const enc of ["br", "gzip", "identity"]) {
    let total = 0;
    for (const a of assets) total += (await (await fetch(s.base + a, { headers: { "accept-encoding": enc }, decompress: false })).arrayBuffer()).byteLength;
    result[`first_screen_bytes_${enc}`] = total;
  }

  const me = await s.register(uniqueName("bench"));
  const pageFor = async (a: Account, path: string) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const session = JSON.stringify({ token: a.token, expires_at: new Date(Date.now() + 86_400_000).toISOString(), user: a.user });
    await context.addInitScript((v) => localStorage.setItem("parley.session", v), session);
    await context.addInitScript(() => {
      const g = globalThis as any;
      const watch = new MutationObserver(() => {
        const n = document.querySelectorAll("nav[aria-label=Conversations] a").length;
        if (n > 0) g.__firstLink ??= performance.now();
        if (n >= 200) g.__allLinks ??= performance.now();
      });
      document.addEventListener("DOMContentLoaded", () => watch.observe(document.body, { childList: true, subtree: true }));
    });
    const page = await context.newPage();
    await page.goto(s.base + path);
    return page;
  };

  // 200 conversations.
  let firstConv = "";
  let other: Account | null = null;
  for (let i = 0; i < 200; i++) {
    const u = await s.register(uniqueName("peer"));
    other ??= u;
    const f = await s.api("POST", "/api/friendships", { token: me.token, body: { friend_id: u.user.id } });
    await s.api("PATCH", `/api/friendships/${f.body.id}/accept`, { token: u.token });
    const c = await s.api("POST", "/api/conversations", { token: me.token, body: { type: "direct", user_id: u.user.id } });
    firstConv ||= c.body.id;
    await s.api("POST", `/api/conversations/${c.body.id}/messages`, { token: u.token, body: { content: `hello ${i}` } });
  }
  const page = await pageFor(me, "/");
  // The times are taken in the page by a MutationObserver, not by polling from here.
  const seen = (key: string) =>
    page.waitForFunction((k: string) => (globalThis as any)[k], key, { timeout: 30_000 }).then(async (h) => Math.round(Number(await h.jsonValue())));
  result.sidebar_first_page_ms = await seen("__firstLink");
  result.sidebar_all_200_ms = await seen("__allLinks");
  // Where the time went: the page, its assets, the list requests.
  result.sidebar_timeline = await page.evaluate(() =>
    performance.getEntries()
      .filter((e: any) => e.entryType === "navigation" || /assets|conversations\?/.test(e.name))
      .map((e: any) => `${new URL(e.name).pathname} ${Math.round(e.startTime)}→${Math.round(e.responseEnd)}`));
  await page.context().close();

  // 10,000 messages, scroll back 1,000.
  for (let i = 0; i < 10_000; i++) {
    await s.api("POST", `/api/conversations/${firstConv}/messages`, { token: i % 2 ? me.token : other!.token, body: { content: `message ${i}` } });
  }
  const chat = await pageFor(me, `/c/${firstConv}`);
  const t0 = Date.now();
  await chat.getByText("message 9999", { exact: true }).waitFor();
  result.open_10k_ms = Date.now() - t0;
  let maxNodes = 0;
  let reached = false;
  const t1 = Date.now();
  for (let i = 0; i < 400 && !reached; i++) {
    const state = await chat.evaluate(() => {
      const log = document.querySelector("[role=log]")!;
      log.scrollTop = 0;
      const texts = [...log.querySelectorAll("[data-id] .body")].map((e) => e.textContent ?? "");
      return { nodes: log.querySelectorAll("[data-id]").length, reached: texts.includes("message 8999") };
    });
    maxNodes = Math.max(maxNodes, state.nodes);
    reached = state.reached;
    await Bun.sleep(20);
  }
  result.scroll_back_1000_ms = Date.now() - t1;
  result.max_message_nodes = maxNodes;
  result.reached_1000_back = reached;
} finally {
  await browser.close();
  await s.stop();
}
console.log(JSON.stringify(result));
