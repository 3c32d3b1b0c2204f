/**
 * The browser suites' harness (test/web-browser*.test.ts): one Chromium and one server per
 * test file (`useBrowserSuite`), a fresh context (its own storage) per user, and the helpers
 * the suites share. Two files, so that `bun test --parallel` runs them side by side: one file
 * of ~130 browser tests was the longest path of CI.
 *
 * SCREENSHOTS=docs writes the screenshots for the README into docs/.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { Browser, BrowserContext, Page, Route } from "playwright-core";
import { join } from "node:path";
import { startServer, tempDir, TEST_BACKEND, uniqueName, type Account, type TestServer } from "./helpers";
import { launchBrowser } from "./browser";

// The functions given to page.evaluate run in the page; the test program has no DOM types.
declare const document: any;

export const shots = Bun.env.SCREENSHOTS === "docs" ? join(import.meta.dir, "..", "docs") : tempDir("parley-shots-");
export let browser: Browser | null = null;
export let s: TestServer;
export const contexts: BrowserContext[] = [];

/** Registers the suite's hooks in the calling test file: one browser and one server for the file, each test's pages closed after it. */
export function useBrowserSuite() {
  // Starting and closing Chromium (and a page per test) take seconds on a busy machine: more than bun's 5 s for a hook.
  beforeAll(async () => {
    browser = await launchBrowser();
    s = await startServer({ sendsPerMinute: 1_000_000, writesPerMinute: 1_000_000 });
  }, 60_000);
  // Each test's pages close after it: left open, the pages of stopped servers kept reconnecting
  // (a dozen by the end of the file), and every open page costs the one browser time.
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close().catch(() => {})));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(contexts.map((c) => c.close().catch(() => {})));
    await browser?.close();
    await s.stop();
  }, 60_000);
}

/** Uncaught errors of the pages of the test running (`pageFor`'s): each test fails on any. */
export const pageErrors: string[] = [];

/** A test that needs the browser: skipped (loudly, by launchBrowser) when there is none outside CI. */
export const btest = (name: string, fn: () => Promise<void>, timeout = 60_000) => test(name, async () => {
  if (!browser) return;
  pageErrors.length = 0;
  await fn();
  // An error in the page is a bug even when what the test looked at came out right (switching
  // conversations fast threw from a frame callback of the list that had gone).
  expect(pageErrors.splice(0)).toEqual([]);
}, timeout);

/**
 * A browser test whose subject is the client (its timers, its scrolling, its markup), not
 * what the server stores: run on SQLite only. The suite runs twice in CI (`test:pg` puts the
 * servers on PostgreSQL); that run keeps the flows that go through the server (`btest`: sign
 * in, chat live, restart, restore, friends, groups, files, search, token refresh), and the
 * server's side of the rest has tests of its own on both engines.
 */
export const clientTest = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
  TEST_BACKEND === "postgres" ? test.skip(`${name} (on SQLite only)`, () => {}) : btest(name, fn, timeout);

/**
 * Resolves once the page's first socket is live (its first `conversation.list`). The client
 * shows the sidebar and an open conversation from REST before that; a change made earlier
 * reaches the page through REST, not live (no notification, no typing), and on PostgreSQL
 * the socket's opening takes several round trips. Watch before the page loads.
 */
export const socketLive = (page: Page) =>
  page.waitForEvent("websocket").then((ws) => ws.waitForEvent("framereceived", { predicate: (f) => String(f.payload).includes('"type":"conversation.list"') }));

/** A page signed in as `a` (the session is put where the client keeps it), at `path`, its socket live. */
export async function pageFor(a: Account, path = "/", server = s, viewport = { width: 1100, height: 720 }, prepare?: (p: Page) => Promise<unknown>, hasTouch = false): Promise<Page> {
  // hasTouch: a touch screen, which has no hover (CSS `(hover: none)`).
  const context = await browser!.newContext({ viewport, hasTouch });
  contexts.push(context);
  const session = JSON.stringify({ token: a.token, expires_at: new Date(Date.now() + 86_400_000).toISOString(), user: a.user });
  await context.addInitScript((v) => localStorage.setItem("parley.session", v), session);
  const page = await context.newPage();
  await prepare?.(page);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => m.type() === "error" && /Content Security Policy/.test(m.text()) && console.error("CSP violation:", m.text()));
  const live = socketLive(page);
  await page.goto(server.base + path);
  await page.getByRole("navigation", { name: "Conversations" }).waitFor();
  await live;
  return page;
}

export async function friends(a: Account, b: Account, server = s) {
  const req = await server.api("POST", "/api/friendships", { token: a.token, body: { friend_id: b.user.id } });
  expect(req.status).toBe(201);
  expect((await server.api("PATCH", `/api/friendships/${req.body.id}/accept`, { token: b.token })).status).toBe(200);
}

export async function direct(a: Account, b: Account, server = s): Promise<string> {
  await friends(a, b, server);
  const res = await server.api("POST", "/api/conversations", { token: a.token, body: { type: "direct", user_id: b.user.id } });
  expect(res.status).toBeLessThan(300);
  return res.body.id;
}

/** Alice, friends with Bob and Carol, in a group with Bob (`group`: the API's answer), and her page open on it. */
export async function aliceWithFriendsInAGroup(title: string) {
  const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
  await friends(alice, bob);
  await friends(alice, carol);
  const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title, member_ids: [bob.user.id] } });
  expect(group.status).toBe(201);
  return { alice, bob, carol, group, a: await pageFor(alice, `/c/${group.body.id}`) };
}

/**
 * Alice and Bob with a direct conversation (`conv`, nothing unread in it) and a group
 * `title`; Alice's page loaded the direct one, then went to the group.
 */
export async function aliceAwayFromDirect(title: string) {
  const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
  const conv = await direct(alice, bob);
  const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title, member_ids: [bob.user.id] } });
  expect(group.status).toBe(201);
  await say(alice, conv, "mine, read");
  const a = await pageFor(alice, `/c/${conv}`);
  await log(a).getByText("mine, read").waitFor();
  await convLink(a, title).click();
  return { alice, bob, conv, a };
}

export const say = (a: Account, conversationId: string, content: string, server = s) =>
  server.api("POST", `/api/conversations/${conversationId}/messages`, { token: a.token, body: { content } }).then((r) => {
    expect(r.status).toBe(201);
    return r.body;
  });

export const log = (p: Page) => p.getByRole("log", { name: "Messages" });

/** A page open on a direct conversation of `count` messages ("message 0" …), its newest shown. */
export async function longHistory(count: number): Promise<Page> {
  const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
  const conv = await direct(alice, bob);
  for (let i = 0; i < count; i++) await say(i % 2 ? alice : bob, conv, `message ${i}`);
  const a = await pageFor(alice, `/c/${conv}`);
  await log(a).getByText(`message ${count - 1}`, { exact: true }).waitFor();
  return a;
}
/** Every optimistic message acknowledged by the server (shown text alone may still be pending). */
export const settled = (p: Page) => p.waitForFunction(() => !document.querySelector("[role=log] .msg.pending"));
/** Holds the page's uploads until the returned function is called; then each goes on (`then`: to the server). */
export async function holdUploads(p: Page, then = (route: Route) => route.continue()): Promise<() => void> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  await p.route("**/api/uploads*", async (route) => {
    await released;
    await then(route);
  });
  return release;
}

/** Signs in with the form (the page at sign-in), until the conversations show. */
export async function signInWithForm(p: Page, who: Account) {
  await p.getByRole("textbox", { name: "Username" }).fill(who.user.username);
  await p.getByRole("textbox", { name: "Password" }).fill(who.password);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByRole("navigation", { name: "Conversations" }).waitFor();
}

export const convLink = (p: Page, title: string) => p.getByRole("navigation", { name: "Conversations" }).getByRole("link", { name: new RegExp(`^${title}`) });

/**
 * A page for `a` whose tab can be hidden (`setHidden`) and whose Notification API is granted
 * and recorded in `__notes` (headless Chromium shows neither).
 */
export async function recordingNotifications(a: Account, path: string, server = s): Promise<Page> {
  const context = await browser!.newContext();
  contexts.push(context);
  const session = JSON.stringify({ token: a.token, expires_at: new Date(Date.now() + 86_400_000).toISOString(), user: a.user });
  await context.addInitScript((v) => localStorage.setItem("parley.session", v), session);
  await context.addInitScript(() => {
    const w = globalThis as any;
    w.__notes = [];
    w.__hidden = false;
    Object.defineProperty(document, "visibilityState", { get: () => (w.__hidden ? "hidden" : "visible") });
    w.Notification = class {
      static permission = "granted";
      onclick: (() => void) | null = null;
      constructor(title: string, options: { body: string }) {
        w.__notes.push({ title, body: options.body });
      }
    };
  });
  const page = await context.newPage();
  const live = socketLive(page);
  await page.goto(server.base + path);
  await log(page).waitFor();
  await live;
  return page;
}
export const setHidden = (p: Page, hidden: boolean) =>
  p.evaluate((hidden) => {
    (globalThis as any).__hidden = hidden;
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);

