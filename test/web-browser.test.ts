/**
 * The web client in a real Chromium against the real server (PROTOCOL §10): two people
 * chatting live, history scroll-back, reconnect after a restart, a phone screen, keyboard
 * only, and message text that never runs as HTML. One browser for the file, a fresh
 * context (its own storage) per user.
 *
 * SCREENSHOTS=docs writes the screenshots for the README into docs/.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, BrowserContext, Locator, Page, Route } from "playwright-core";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { startServer, tempDir, TEST_BACKEND, uniqueName, waitFor, type Account, type TestServer } from "./helpers";
import { backup } from "./backups";
import { launchBrowser } from "./browser";
import { png } from "./files-fixtures";
import { TestSocket } from "./ws-client";

// The functions given to page.evaluate run in the page; the test program has no DOM types.
declare const document: any, window: any, getComputedStyle: any, MutationObserver: any, history: any, location: any;
type HTMLElement = any;

const shots = Bun.env.SCREENSHOTS === "docs" ? join(import.meta.dir, "..", "docs") : tempDir("parley-shots-");
let browser: Browser | null = null;
let s: TestServer;
const contexts: BrowserContext[] = [];

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

/** Uncaught errors of the pages of the test running (`pageFor`'s): each test fails on any. */
const pageErrors: string[] = [];

/** A test that needs the browser: skipped (loudly, by launchBrowser) when there is none outside CI. */
const btest = (name: string, fn: () => Promise<void>, timeout = 60_000) => test(name, async () => {
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
const clientTest = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
  TEST_BACKEND === "postgres" ? test.skip(`${name} (on SQLite only)`, () => {}) : btest(name, fn, timeout);

/**
 * Resolves once the page's first socket is live (its first `conversation.list`). The client
 * shows the sidebar and an open conversation from REST before that; a change made earlier
 * reaches the page through REST, not live (no notification, no typing), and on PostgreSQL
 * the socket's opening takes several round trips. Watch before the page loads.
 */
const socketLive = (page: Page) =>
  page.waitForEvent("websocket").then((ws) => ws.waitForEvent("framereceived", { predicate: (f) => String(f.payload).includes('"type":"conversation.list"') }));

/** A page signed in as `a` (the session is put where the client keeps it), at `path`, its socket live. */
async function pageFor(a: Account, path = "/", server = s, viewport = { width: 1100, height: 720 }, prepare?: (p: Page) => Promise<unknown>): Promise<Page> {
  const context = await browser!.newContext({ viewport });
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

async function friends(a: Account, b: Account, server = s) {
  const req = await server.api("POST", "/api/friendships", { token: a.token, body: { friend_id: b.user.id } });
  expect(req.status).toBe(201);
  expect((await server.api("PATCH", `/api/friendships/${req.body.id}/accept`, { token: b.token })).status).toBe(200);
}

async function direct(a: Account, b: Account, server = s): Promise<string> {
  await friends(a, b, server);
  const res = await server.api("POST", "/api/conversations", { token: a.token, body: { type: "direct", user_id: b.user.id } });
  expect(res.status).toBeLessThan(300);
  return res.body.id;
}

/** Alice, friends with Bob and Carol, in a group with Bob (`group`: the API's answer), and her page open on it. */
async function aliceWithFriendsInAGroup(title: string) {
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
async function aliceAwayFromDirect(title: string) {
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

const say = (a: Account, conversationId: string, content: string, server = s) =>
  server.api("POST", `/api/conversations/${conversationId}/messages`, { token: a.token, body: { content } }).then((r) => {
    expect(r.status).toBe(201);
    return r.body;
  });

const log = (p: Page) => p.getByRole("log", { name: "Messages" });

/** A page open on a direct conversation of `count` messages ("message 0" …), its newest shown. */
async function longHistory(count: number): Promise<Page> {
  const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
  const conv = await direct(alice, bob);
  for (let i = 0; i < count; i++) await say(i % 2 ? alice : bob, conv, `message ${i}`);
  const a = await pageFor(alice, `/c/${conv}`);
  await log(a).getByText(`message ${count - 1}`, { exact: true }).waitFor();
  return a;
}
/** Every optimistic message acknowledged by the server (shown text alone may still be pending). */
const settled = (p: Page) => p.waitForFunction(() => !document.querySelector("[role=log] .msg.pending"));
/** Holds the page's uploads until the returned function is called; then each goes on (`then`: to the server). */
async function holdUploads(p: Page, then = (route: Route) => route.continue()): Promise<() => void> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  await p.route("**/api/uploads*", async (route) => {
    await released;
    await then(route);
  });
  return release;
}

/** Signs in with the form (the page at sign-in), until the conversations show. */
async function signInWithForm(p: Page, who: Account) {
  await p.getByRole("textbox", { name: "Username" }).fill(who.user.username);
  await p.getByRole("textbox", { name: "Password" }).fill(who.password);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByRole("navigation", { name: "Conversations" }).waitFor();
}

const convLink = (p: Page, title: string) => p.getByRole("navigation", { name: "Conversations" }).getByRole("link", { name: new RegExp(`^${title}`) });

/**
 * A page for `a` whose tab can be hidden (`setHidden`) and whose Notification API is granted
 * and recorded in `__notes` (headless Chromium shows neither).
 */
async function recordingNotifications(a: Account, path: string, server = s): Promise<Page> {
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
const setHidden = (p: Page, hidden: boolean) =>
  p.evaluate((hidden) => {
    (globalThis as any).__hidden = hidden;
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);

describe("the web client in Chromium", () => {
  btest("sign-in form: create an account, sign out, sign in again; a wrong password says so", async () => {
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(s.base + "/");
    const name = uniqueName("ui");
    await page.getByRole("textbox", { name: "Username" }).fill(name);
    await page.getByRole("textbox", { name: "Password" }).fill("password123");
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByRole("navigation", { name: "Conversations" }).waitFor();
    // The keyboard starts at "New conversation" (it was on <body>: a usability pass).
    await page.waitForFunction(() => document.activeElement?.textContent?.trim() === "New conversation", undefined, { timeout: 3000 });
    // Stays signed in across a reload.
    await page.reload();
    await page.getByRole("navigation", { name: "Conversations" }).waitFor();
    await page.getByRole("button", { name: "Profile" }).click();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("textbox", { name: "Username" }).fill(name);
    await page.getByRole("textbox", { name: "Password" }).fill("wrong-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: /invalid|wrong|incorrect/i }).waitFor();
    // Refused, the button keeps the keyboard (disabled while it ran, it lost it to <body>).
    await page.waitForFunction(() => document.activeElement?.textContent?.trim() === "Sign in", undefined, { timeout: 3000 });
    await page.getByRole("textbox", { name: "Password" }).fill("password123");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Conversations" }).waitFor();
  });

  btest("two people chat both ways live: typing, unread badge, read receipt", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice);
    const b = await pageFor(bob);

    await convLink(a, bob.user.display_name).click();
    // Presence: Bob's page is open, so Alice sees him online.
    await a.locator(".conversation .sub").filter({ hasText: "Online" }).waitFor();
    await a.getByRole("textbox", { name: "Message" }).fill("Hello Bob");
    // Bob's sidebar shows Alice typing, live.
    await convLink(b, alice.user.display_name).filter({ hasText: "typing…" }).waitFor();
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await expect(a.getByRole("textbox", { name: "Message" })).toBeDefined();
    await log(a).getByText("Hello Bob").waitFor();

    // Bob: an unread badge, in the link's accessible name.
    await b.getByRole("link", { name: new RegExp(`^${alice.user.display_name}.*, 1 unread$`) }).waitFor();
    expect(await b.title()).toBe("(1) Parley");
    await convLink(b, alice.user.display_name).click();
    await log(b).getByText("Hello Bob").waitFor();
    // The "New messages" divider stands right before the first unread message.
    await log(b).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    expect(await b.evaluate(() => document.querySelector("[role=log] .divider")?.nextElementSibling?.textContent ?? "")).toContain("Hello Bob");
    // The badge gone: the name is the title alone, and the preview its description.
    await b.getByRole("link", { name: alice.user.display_name, exact: true }).waitFor();
    await expect(convLink(b, alice.user.display_name).getAttribute("aria-describedby").then((id) => b.locator(`#${id}`).textContent())).resolves.toBe("Hello Bob");
    // Alice sees that Bob read it.
    await log(a).getByText(`Seen by ${bob.user.display_name}`).waitFor();

    // And back: Bob types (Alice sees the typing line), then sends with the button.
    await b.getByRole("textbox", { name: "Message" }).fill("Hi Alice 👋 สวัสดี 你好");
    await a.getByText(`${bob.user.display_name} is typing…`).waitFor();
    await b.getByRole("button", { name: "Send" }).click();
    await log(a).getByText("Hi Alice 👋 สวัสดี 你好").waitFor();
    await a.getByText(`${bob.user.display_name} is typing…`).waitFor({ state: "hidden" });
    await log(b).getByText(`Seen by ${alice.user.display_name}`).waitFor();
    // Sent once each, whatever the optimistic copy and the socket echo did.
    expect(await log(a).getByText("Hello Bob").count()).toBe(1);
    expect(await log(b).getByText("Hi Alice 👋 สวัสดี 你好").count()).toBe(1);
    const stored = await s.api("GET", `/api/conversations/${conv}/messages`, { token: alice.token });
    expect(stored.body.items.map((m: { content: string }) => m.content)).toEqual(["Hi Alice 👋 สวัสดี 你好", "Hello Bob"]);

    // Reply, react, edit with Up, delete: seen live on the other side.
    await log(a).getByText("Hi Alice 👋 สวัสดี 你好").hover();
    await log(a).getByRole("button", { name: "React" }).last().click();
    await a.getByRole("button", { name: "React 🎉" }).click();
    await log(b).getByRole("button", { name: "🎉 1" }).waitFor();
    // Named by who reacted (a screen reader heard "🎉 1" alone), for both sides.
    await log(b).getByRole("button", { name: `🎉 1, ${alice.user.display_name}`, exact: true }).waitFor();
    await log(a).getByRole("button", { name: "🎉 1, you", exact: true }).waitFor();
    expect(await log(b).getByRole("button", { name: /^🎉 1/ }).getAttribute("title")).toBe(alice.user.display_name);
    await a.getByRole("textbox", { name: "Message" }).press("ArrowUp");
    await a.getByText("Editing your message").waitFor();
    await a.waitForFunction(() => document.querySelector("textarea[aria-label=Message]").value === "Hello Bob");
    await a.getByRole("textbox", { name: "Message" }).fill("Hello Bob, edited");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await log(b).getByText("Hello Bob, edited").waitFor();
    await log(b).getByText("(edited)").waitFor();
    await a.screenshot({ path: join(shots, "chat.png") });
    await a.emulateMedia({ colorScheme: "dark" });
    await a.screenshot({ path: join(shots, "chat-dark.png") });
  });

  clientTest("days: a separator names each day's first message (Today, Yesterday, the weekday, the year when not this one); a time's tooltip has the date; the sidebar shows a last message's time, weekday or date", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    // Local noon n days ago (the browser runs in this process's time zone).
    const noon = (daysAgo: number) => {
      const d = new Date();
      d.setDate(d.getDate() - daysAgo);
      d.setHours(12, 0, 0, 0);
      return d;
    };
    const when: [string, Date | null][] = [["last year's", noon(400)], ["three days ago", noon(3)], ["yesterday's first", noon(1)], ["yesterday's second", noon(1)], ["today's", null]];
    for (const [text, at] of when) {
      await say(bob, conv, text);
      if (at) await s.rows("UPDATE messages SET created_at = ? WHERE conversation_id = ? AND content = ?", at.getTime(), conv, text);
    }
    // Conversations whose last message is older: the sidebar shows its weekday, or its date.
    const lastAt = async (name: string, at: Date) => {
      const peer = await s.register(uniqueName(name));
      const c = await direct(alice, peer);
      await say(peer, c, `${name}'s last`);
      await s.rows("UPDATE conversations SET last_message_at = ? WHERE id = ?", at.getTime(), c);
      return peer.user.display_name;
    };
    const [carol, dave] = [await lastAt("carol", noon(3)), await lastAt("dave", noon(400))];
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("today's").waitFor();
    const listed = async (name: string) => (await convLink(a, name).locator("time").textContent())!;
    expect(await listed(bob.user.display_name)).toBe((await log(a).locator(".msg time").last().textContent())!);
    expect(await listed(carol)).toBe(new Intl.DateTimeFormat([], { weekday: "short" }).format(noon(3)));
    expect(await listed(dave)).toBe(new Intl.DateTimeFormat([], { dateStyle: "short" }).format(noon(400)));
    const days = await log(a).locator(".day[role=separator]").evaluateAll((els) => els.map((e) => e.getAttribute("aria-label")));
    const [old, three] = [noon(400), noon(3)];
    expect(days).toEqual([
      new Intl.DateTimeFormat([], { weekday: "long", month: "long", day: "numeric", year: "numeric" }).format(old),
      // With the year when three days ago was last year (January 1–3).
      new Intl.DateTimeFormat([], { weekday: "long", month: "long", day: "numeric", ...(three.getFullYear() === new Date().getFullYear() ? {} : { year: "numeric" }) }).format(three),
      "Yesterday",
      "Today",
    ]);
    expect(days[0]).toContain(String(old.getFullYear()));
    // The day's second message from the same sender is compact under the first; a new day starts a new group.
    expect(await log(a).locator(".msg").evaluateAll((els) => els.map((e) => e.classList.contains("compact")))).toEqual([false, false, false, true, false]);
    // The compact one has its time too, shown while hovered, the date in its tooltip (it had none).
    const follow = log(a).locator(".msg.compact time");
    const opacity = () => follow.evaluate((el: HTMLElement) => getComputedStyle(el).opacity);
    expect(await opacity()).toBe("0");
    await log(a).locator(".msg.compact").hover();
    await a.waitForFunction(() => getComputedStyle(document.querySelector(".msg.compact time")).opacity === "1");
    expect(await follow.getAttribute("title")).toBe(new Intl.DateTimeFormat([], { dateStyle: "full", timeStyle: "short" }).format(noon(1)));
    expect(await follow.textContent()).toMatch(/^\d{1,2}:00$/);
    expect(await log(a).locator(".msg").first().locator("time").getAttribute("title")).toContain(String(old.getFullYear()));
    await a.screenshot({ path: join(shots, "days.png") });
  });

  clientTest("a tab left open past midnight: what said Today says Yesterday (it stayed Today until something else redrew it)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "said today");
    // The page's clock at 23:59:50 of the message's day; ten seconds on, nothing else is due to redraw it.
    const late = new Date();
    late.setHours(23, 59, 50, 0);
    const a = await pageFor(alice, `/c/${conv}`, s, undefined, (p) => p.clock.install({ time: late }));
    await log(a).getByRole("separator", { name: "Today" }).waitFor();
    expect(await convLink(a, bob.user.display_name).locator("time").textContent()).toMatch(/\d/);
    await a.clock.fastForward(15_000);
    await log(a).getByRole("separator", { name: "Yesterday" }).waitFor();
    expect(await log(a).getByRole("separator", { name: "Today" }).count()).toBe(0);
    await convLink(a, bob.user.display_name).locator("time").filter({ hasText: "Yesterday" }).waitFor();
  });

  clientTest("history: scrolling back through 600 messages keeps at most 200 message nodes (the README's window) and the reading position", async () => {
    const a = await longHistory(600);
    // web/conversation.tsx WINDOW.
    const MAX_NODES = 200;
    const nodes = () => log(a).locator("[data-id]").count();
    let guard = 0;
    while (!(await log(a).getByText("This is the start of the conversation.").isVisible())) {
      if (++guard > 80) throw new Error("never reached the start of the history");
      // Scroll to the top; the first message then shown must stay where it was once more is loaded above it.
      const before = await log(a).evaluate((el) => {
        el.scrollTop = 0;
        const first = el.querySelector<HTMLElement>("[data-id]")!;
        return { id: first.dataset.id!, top: first.getBoundingClientRect().top };
      });
      await a.waitForFunction((id) => {
        const el = document.querySelector("[role=log] [data-id]") as HTMLElement | null;
        return (el && el.dataset.id !== id) || document.querySelector("[role=log] .start");
      }, before.id);
      const kept = await log(a).evaluate((el, id) => el.querySelector<HTMLElement>(`[data-id="${id}"]`)?.getBoundingClientRect().top ?? null, before.id);
      if (kept !== null && !(await log(a).getByText("This is the start of the conversation.").isVisible())) expect(Math.abs(kept - before.top)).toBeLessThan(5);
      expect(await nodes()).toBeLessThanOrEqual(MAX_NODES);
    }
    await log(a).getByText("message 0", { exact: true }).waitFor();
    expect(await nodes()).toBeLessThanOrEqual(MAX_NODES);
    // Jump to latest brings the newest back.
    await a.getByRole("button", { name: "Jump to latest" }).click();
    await log(a).getByText("message 599", { exact: true }).waitFor();
    expect(await nodes()).toBeLessThanOrEqual(MAX_NODES);
  }, 120_000);

  clientTest("scrolled while an older page loads: the page lands where the reader has scrolled to, not back where the load began", async () => {
    const a = await longHistory(400);
    // Older pages answer slowly, so that the reader scrolls while one is on its way.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await a.route(/\/api\/conversations\/[^/]+\/messages\?limit=100&cursor=/, async (route) => (await held, route.continue()));
    // Up until an older page is asked for (the window first moves through what is loaded).
    for (let i = 0; !(await log(a).locator(".loading").isVisible()); i++) {
      if (i > 40) throw new Error("no older page was asked for");
      await log(a).evaluate((el) => (el.scrollTop = 0));
      await Bun.sleep(100);
    }
    // The reader scrolls on by 60 px meanwhile; the message then at the top is what they read.
    const reading = await log(a).evaluate((el) => {
      el.scrollTop += 60;
      const top = el.getBoundingClientRect().top;
      const first = [...el.querySelectorAll<HTMLElement>("[data-id]")].find((n) => n.getBoundingClientRect().bottom > top)!;
      return { id: first.dataset.id!, top: first.getBoundingClientRect().top };
    });
    await Bun.sleep(100); // the scroll event is handled
    release();
    await log(a).locator(".loading").waitFor({ state: "detached" });
    await a.waitForFunction(() => new Promise((r) => (globalThis as any).requestAnimationFrame(() => (globalThis as any).requestAnimationFrame(() => r(true)))));
    const now = await log(a).evaluate((el, id) => el.querySelector<HTMLElement>(`[data-id="${id}"]`)!.getBoundingClientRect().top, reading.id);
    expect(Math.abs(now - reading.top)).toBeLessThan(5);
  });

  clientTest("message text is never HTML; links are safe; the CSP refuses an inline script", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "<img src=x onerror=alert(1)>");
    await say(bob, conv, "see https://example.com/a?b=1 now");
    const a = await pageFor(alice, `/c/${conv}`);
    let dialogs = 0;
    a.on("dialog", (d) => {
      dialogs++;
      void d.dismiss();
    });
    await log(a).getByText("<img src=x onerror=alert(1)>").waitFor();
    expect(await log(a).locator("img[src=x]").count()).toBe(0);
    const link = log(a).getByRole("link", { name: "https://example.com/a?b=1" });
    expect(await link.getAttribute("rel")).toBe("noopener noreferrer");
    expect(await link.getAttribute("target")).toBe("_blank");
    const ran = await a.evaluate(async () => {
      let violated = false;
      document.addEventListener("securitypolicyviolation", () => (violated = true));
      const script = document.createElement("script");
      script.textContent = "window.__inline = 1";
      document.body.append(script);
      await new Promise((r) => setTimeout(r, 100));
      return { ran: (window as unknown as { __inline?: number }).__inline === 1, violated };
    });
    expect(ran).toEqual({ ran: false, violated: true });
    expect(dialogs).toBe(0);
  });

  clientTest("keyboard only: reach a conversation, send with Enter, Shift+Enter makes a new line", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice);
    const target = convLink(a, bob.user.display_name);
    for (let i = 0; i < 20 && !(await target.evaluate((el) => el === document.activeElement)); i++) await a.keyboard.press("Tab");
    expect(await target.evaluate((el) => el === document.activeElement)).toBe(true);
    // Focus is visible.
    expect(await target.evaluate((el) => getComputedStyle(el).outlineStyle)).not.toBe("none");
    await a.keyboard.press("Enter");
    await log(a).waitFor();
    // The composer has the focus once a conversation opens.
    await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Message");
    await a.keyboard.type("first line");
    await a.keyboard.press("Shift+Enter");
    await a.keyboard.type("second line");
    await a.keyboard.press("Enter");
    await log(a).getByText("second line").waitFor();
    await settled(a);
    const stored = await s.api("GET", `/api/conversations/${conv}/messages`, { token: bob.token });
    expect(stored.body.items[0].content).toBe("first line\nsecond line");
    // Ctrl+K: the quick switcher.
    await a.keyboard.press("Control+k");
    await a.getByRole("combobox", { name: "Conversation name" }).waitFor();
    await a.keyboard.press("Escape");
  });

  clientTest("a phone screen shows one pane at a time", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "on the phone");
    const a = await pageFor(alice, "/", s, { width: 390, height: 780 });
    const nav = a.getByRole("navigation", { name: "Conversations" });
    expect(await nav.isVisible()).toBe(true);
    await a.screenshot({ path: join(shots, "mobile-list.png") });
    await convLink(a, bob.user.display_name).click();
    await log(a).getByText("on the phone").waitFor();
    expect(await nav.isVisible()).toBe(false);
    expect(await a.getByRole("textbox", { name: "Message" }).isVisible()).toBe(true);
    await a.screenshot({ path: join(shots, "mobile-chat.png") });
    await a.getByRole("button", { name: "Back" }).click();
    await nav.waitFor();
    expect(await log(a).count()).toBe(0);
  });

  btest("a server restart: Reconnecting…, then everything sent meanwhile shows once; a send made while away goes when back", async () => {
    const dir = tempDir();
    const overrides = { sendsPerMinute: 1_000_000, writesPerMinute: 1_000_000 };
    let server = await startServer(overrides, dir);
    const port = Number(new URL(server.base).port);
    const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
    const conv = await direct(alice, bob, server);
    await say(bob, conv, "before the restart", server);
    const a = await pageFor(alice, `/c/${conv}`, server);
    await log(a).getByText("before the restart").waitFor();

    await server.stop(false);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor();
    expect(await a.getByRole("status").textContent()).toBe("Reconnecting…"); // strict: the only status region shown
    await a.getByRole("textbox", { name: "Message" }).fill("sent while away");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    // The browser is online: it is the server that is away (it said "offline" too).
    await log(a).getByText("Not sent: the server cannot be reached. It goes when it answers again.").waitFor();
    await a.screenshot({ path: join(shots, "reconnecting.png") });

    server = await startServer(overrides, dir, port);
    await say(bob, conv, "while you were away 1", server);
    await say(bob, conv, "while you were away 2", server);
    await log(a).getByText("while you were away 2").waitFor({ timeout: 20_000 });
    await log(a).getByText("Not sent: the server cannot be reached.").waitFor({ state: "hidden", timeout: 20_000 });
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ state: "hidden" });
    await settled(a);
    for (const text of ["before the restart", "while you were away 1", "while you were away 2", "sent while away"]) {
      expect(await log(a).getByText(text, { exact: true }).count()).toBe(1);
    }
    const stored = await server.api("GET", `/api/conversations/${conv}/messages`, { token: bob.token });
    expect(stored.body.items.filter((m: { content: string }) => m.content === "sent while away")).toHaveLength(1);

    // A token the server no longer accepts (its secret changed): back to sign-in, the draft kept.
    await a.getByRole("textbox", { name: "Message" }).fill("a draft worth keeping");
    await server.stop(false);
    server = await startServer({ ...overrides, jwtSecret: "a-different-secret-so-old-tokens-fail-0123456789" }, dir, port);
    try {
      await a.getByRole("textbox", { name: "Username" }).waitFor({ timeout: 20_000 });
      await a.getByText("Your session has ended").waitFor();
      await a.getByRole("textbox", { name: "Username" }).fill(alice.user.username);
      await a.getByRole("textbox", { name: "Password" }).fill(alice.password);
      await a.getByRole("button", { name: "Sign in" }).click();
      await log(a).getByText("sent while away").waitFor();
      expect(await a.getByRole("textbox", { name: "Message" }).inputValue()).toBe("a draft worth keeping");
    } finally {
      await server.stop();
    }
  }, 90_000);

  clientTest("Reconnect now: the strip offers it while the server is away; pressed, the client tries at once instead of after its backoff, and the keyboard goes on to the message box", async () => {
    const dir = tempDir();
    let server = await startServer({}, dir);
    const port = Number(new URL(server.base).port);
    const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
    const conv = await direct(alice, bob, server);
    const a = await pageFor(alice, `/c/${conv}`, server);
    // Every attempt fails at its ticket, the server down or up, until the route goes: the backoff grows.
    const refuse = (route: Route) => route.abort("connectionrefused");
    await a.route(/\/api\/ws\/ticket/, refuse);
    await server.stop(false);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor();
    expect(await a.getByRole("status").textContent()).toBe("Reconnecting…"); // the button is beside the region, not in it
    server = await startServer({}, dir, port);
    try {
      await Bun.sleep(4000);
      await a.screenshot({ path: join(shots, "reconnect-now.png") });
      const button = a.getByRole("button", { name: "Reconnect now" });
      await button.focus();
      await a.unroute(/\/api\/ws\/ticket/, refuse);
      const asked = a.waitForRequest(/\/api\/ws\/ticket/, { timeout: 1000 });
      await a.keyboard.press("Enter");
      await asked;
      await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ state: "hidden", timeout: 5000 });
      await button.waitFor({ state: "detached" });
      await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Message");
    } finally {
      await server.stop();
    }
  });

  clientTest("the message log reads out what is added, not text changing in place (Seen by, renames, edits)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const sent = await say(alice, conv, "read me");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("read me").waitFor();
    expect(await log(a).getAttribute("aria-relevant")).toBe("additions");
    // What it keeps quiet about is inside it: the receipt under one's last message.
    await s.api("POST", `/api/conversations/${conv}/read`, { token: bob.token, body: { message_id: sent.id } });
    await log(a).getByText(`Seen by ${bob.user.display_name}`).waitFor();
  });

  btest("a server restored from a backup: sync.reset, and the client shows the server's state from REST", async () => {
    const overrides = { sendsPerMinute: 1_000_000, writesPerMinute: 1_000_000 };
    let server = await startServer(overrides, tempDir());
    const port = Number(new URL(server.base).port);
    try {
      const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, server);
      await say(bob, conv, "kept by the backup", server);
      const copy = await backup(server);
      const a = await pageFor(alice, `/c/${conv}`, server);
      await say(bob, conv, "lost with the old server", server);
      await log(a).getByText("lost with the old server").waitFor();

      // Restore on the same port: the client reconnects with the old epoch and a position
      // the restored log has passed by then.
      await server.stop(false);
      await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor();
      server = await startServer(overrides, copy.restore(), port);
      for (let i = 1; i <= 6; i++) await say(bob, conv, `after the restore ${i}`, server);
      await log(a).getByText("after the restore 6").waitFor({ timeout: 20_000 });
      await log(a).getByText("lost with the old server").waitFor({ state: "detached" });
      await log(a).getByText("kept by the backup").waitFor();
      expect(await log(a).getByText(/^after the restore \d$/).count()).toBe(6);
    } finally {
      await server.stop();
    }
  });

  btest("a message that comes live while the conversation's page is on its way stays, though the page was read before it", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "read with the page");
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    contexts.push(context);
    // The page of messages is read by the server at once, and answered only when let go.
    let letGo!: () => void;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    let read = false;
    await context.route(new RegExp(`/api/conversations/${conv}/messages\\?limit=`), async (route) => {
      const page = await route.fetch();
      read = true;
      await held;
      await route.fulfill({ response: page });
    });
    const session = JSON.stringify({ token: alice.token, expires_at: new Date(Date.now() + 86_400_000).toISOString(), user: alice.user });
    await context.addInitScript((v) => localStorage.setItem("parley.session", v), session);
    const a = await context.newPage();
    const frames: string[] = [];
    a.on("websocket", (ws) => ws.on("framereceived", (f) => void frames.push(String(f.payload))));
    await a.goto(s.base + "/");
    // The socket is live before the conversation opens (so no read of its start is involved).
    await waitFor(() => frames.some((f) => f.includes('"type":"conversation.list"')), 10_000);
    await convLink(a, bob.user.display_name).click();
    await waitFor(() => read, 10_000);
    await say(bob, conv, "sent while the page was on its way");
    await waitFor(() => frames.some((f) => f.includes("sent while the page was on its way")), 10_000);
    letGo();
    await log(a).getByText("read with the page").waitFor();
    await settled(a);
    expect(await log(a).getByText("sent while the page was on its way").count()).toBe(1);
  });

  btest("a message sent between the page's first read and its socket's start shows (read again once the socket is live)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "before the page");
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    contexts.push(context);
    // The socket's ticket waits until the deep link's conversation has been read over REST.
    let letGo!: () => void;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    await context.route("**/api/ws/ticket", async (route) => {
      await held;
      await route.continue();
    });
    const session = JSON.stringify({ token: alice.token, expires_at: new Date(Date.now() + 86_400_000).toISOString(), user: alice.user });
    await context.addInitScript((v) => localStorage.setItem("parley.session", v), session);
    const a = await context.newPage();
    const pageRead = a.waitForResponse((r) => r.url().includes(`/api/conversations/${conv}/messages?limit=`));
    await a.goto(`${s.base}/c/${conv}`);
    await pageRead;
    await log(a).getByText("before the page").waitFor();
    // Committed after that read and before the socket's live delivery starts: in neither.
    await say(bob, conv, "between the page and the socket");
    letGo();
    await log(a).getByText("between the page and the socket").waitFor({ timeout: 10_000 });
    await settled(a);
    expect(await log(a).getByText("between the page and the socket").count()).toBe(1);
    expect(await log(a).getByText("before the page").count()).toBe(1);
  });

  btest("friends and groups: find, request, accept live; a group created, renamed, a member removed", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const a = await pageFor(alice);
    const b = await pageFor(bob);
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    await a.getByRole("textbox", { name: "Find people" }).fill(bob.user.username);
    await a.getByRole("button", { name: "Find" }).click();
    await a.getByRole("button", { name: "Add friend" }).click();
    await a.getByRole("list", { name: "Sent requests" }).getByText(bob.user.display_name, { exact: true }).waitFor();
    // Bob sees the request arrive (a badge on Friends) and accepts it.
    await b.locator(".actions .badge").filter({ hasText: "1" }).waitFor();
    await b.getByRole("button", { name: "Friends", exact: true }).click();
    // Each request's buttons name its person (a screen reader heard a list of "Accept").
    await b.getByRole("button", { name: `Accept ${alice.user.display_name}`, exact: true }).click();
    await b.getByRole("list", { name: "Friends list" }).getByText(alice.user.display_name, { exact: true }).waitFor();
    await a.getByRole("list", { name: "Friends list" }).getByText(bob.user.display_name, { exact: true }).waitFor();
    await a.screenshot({ path: join(shots, "friends.png") });
    await a.getByRole("button", { name: "Close" }).click();
    await b.getByRole("button", { name: "Close" }).click();

    await a.getByRole("button", { name: "New conversation" }).click();
    await a.getByRole("textbox", { name: "Group name" }).fill("Planning");
    await a.getByRole("checkbox", { name: bob.user.display_name }).check();
    await a.getByRole("button", { name: "Create group" }).click();
    await a.getByRole("heading", { name: "Planning" }).waitFor();
    await convLink(b, "Planning").waitFor();

    await a.getByRole("button", { name: "Conversation settings" }).click();
    // Refused names are said as the form names them (it said "invalid body: title" or "title: must not be blank").
    await a.getByRole("textbox", { name: "Group name" }).fill("   ");
    await a.getByRole("button", { name: "Rename" }).click();
    await a.getByRole("alert").filter({ hasText: "The group name must not be blank." }).waitFor();
    await a.getByRole("textbox", { name: "Group name" }).fill("Plan\u202Egninn");
    await a.getByRole("button", { name: "Rename" }).click();
    // In words, not code points (the server's message names U+200B…: a usability pass).
    await a.getByRole("alert").filter({ hasText: /^The group name must not contain invisible characters \(such as zero-width spaces or direction marks\): type it again without them\.$/ }).waitFor();
    await a.getByRole("textbox", { name: "Group name" }).fill("Planning Q1");
    await a.getByRole("button", { name: "Rename" }).click();
    await convLink(b, "Planning Q1").waitFor();
    await a.getByRole("alert").waitFor({ state: "detached" });
    await a.getByRole("combobox", { name: `Role of ${bob.user.display_name}` }).selectOption("admin");
    await a.getByRole("list", { name: "Members" }).getByRole("combobox").filter({ hasText: "admin" }).waitFor();
    await a.getByRole("button", { name: `Remove ${bob.user.display_name}` }).click();
    await convLink(b, "Planning Q1").waitFor({ state: "detached" });
  });

  clientTest("many friends, a big group: a box narrows whom to message, to put in a group (the picked stay picked), to add and to find among the members; Add friends is above the members", async () => {
    // Under CONTACT_POLICY=friends (this suite's server is open: there the box finds anyone, tested below).
    const s = await startServer({ contactPolicy: "friends" });
    try {
    const alice = await s.register(uniqueName("alice"));
    const animals = ["otter", "heron", "badger", "lynx", "marten", "stoat", "vole", "wren", "finch", "newt", "ibis", "kudu", "tapir", "okapi", "dingo", "quoll", "civet", "genet", "serval", "zorilla"];
    const pals = await Promise.all(animals.map((a) => s.register(uniqueName(a))));
    for (const pal of pals) await friends(alice, pal, s);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Big group", member_ids: pals.slice(0, 10).map((p) => p.user.id) } });
    expect(group.status).toBe(201);
    const a = await pageFor(alice, `/c/${group.body.id}`, s);

    // New conversation: one box for both lists.
    await a.getByRole("button", { name: "New conversation" }).click();
    const dialog = a.getByRole("dialog", { name: "New conversation" });
    const find = dialog.getByRole("searchbox", { name: "Find a friend" });
    await find.fill("heron");
    expect(await dialog.getByRole("button", { name: /^Message / }).count()).toBe(1);
    await dialog.getByRole("checkbox", { name: pals[1]!.user.display_name }).check();
    await find.fill("@" + pals[2]!.user.username.toUpperCase());
    await dialog.getByRole("checkbox", { name: pals[2]!.user.display_name }).check();
    expect(await dialog.getByRole("checkbox").count()).toBe(1);
    await dialog.getByRole("group", { name: "Members (2 picked)" }).waitFor();
    await find.fill("no such animal");
    await dialog.getByRole("status").filter({ hasText: "No friend matches “no such animal”." }).waitFor();
    await find.fill("");
    expect(await dialog.getByRole("checkbox", { checked: true }).count()).toBe(2);
    await dialog.getByRole("button", { name: "Close" }).click();

    // Settings of a group of 11 with 10 friends outside it.
    await a.getByRole("button", { name: "Conversation settings" }).click();
    const settings = a.getByRole("dialog", { name: "Conversation settings" });
    const headings = await settings.getByRole("heading", { level: 3 }).allTextContents();
    expect(headings).toEqual(["Add friends", "Members (11)"]);
    await settings.getByRole("searchbox", { name: "Find a friend to add" }).fill("zori");
    expect(await settings.getByRole("button", { name: /^Add / }).count()).toBe(1);
    await settings.getByRole("button", { name: `Add ${pals[19]!.user.display_name}` }).click();
    await settings.getByRole("heading", { name: "Members (12)" }).waitFor();
    // The one match is a member now: said as such (the box keeps what was typed, for the next).
    await settings.getByRole("status").filter({ hasText: "No friend outside the group matches “zori”." }).waitFor();
    const findMember = settings.getByRole("searchbox", { name: "Find a member" });
    await findMember.fill("zori");
    await settings.getByRole("list", { name: "Members" }).getByText(pals[19]!.user.display_name, { exact: true }).waitFor();
    expect(await settings.getByRole("list", { name: "Members" }).getByRole("listitem").count()).toBe(1);
    await findMember.fill(alice.user.display_name);
    expect(await settings.getByRole("list", { name: "Members" }).getByRole("listitem").count()).toBe(1);
    await a.screenshot({ path: join(shots, "big-group-settings.png") });
    } finally {
      await s.stop();
    }
  });

  clientTest("handing a group over (a role select on owner) is asked first: dismissed, nothing changes", async () => {
    const { alice, bob, group, a } = await aliceWithFriendsInAGroup("Handover");
    await a.getByRole("button", { name: "Conversation settings" }).click();
    const role = a.getByRole("combobox", { name: `Role of ${bob.user.display_name}` });
    const asked: string[] = [];
    let accept = false;
    a.on("dialog", (d) => void (asked.push(d.message()), accept ? d.accept() : d.dismiss()));
    await role.selectOption("owner");
    expect(asked).toEqual([`Make ${bob.user.display_name} the owner? You become an admin.`]);
    expect(await role.inputValue()).toBe("member");
    await Bun.sleep(300);
    const roles = async () => (await s.api("GET", `/api/conversations/${group.body.id}/members`, { token: alice.token })).body.items.map((m: any) => [m.user.id, m.role]);
    expect(await roles()).toContainEqual([alice.user.id, "owner"]);
    accept = true;
    await role.selectOption("owner");
    await waitFor(async () => (await roles()).some(([id, r]: [string, string]) => id === bob.user.id && r === "owner"), 5000);
  });

  clientTest("right-to-left text: message bodies, the composer, titles and previews take their direction from their text (dir=auto)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "هل أنت بخير؟");
    const a = await pageFor(alice, `/c/${conv}`);
    const body = log(a).locator(".body").filter({ hasText: "هل أنت بخير؟" });
    await body.waitFor();
    expect(await body.getAttribute("dir")).toBe("auto");
    expect(await body.evaluate((el) => getComputedStyle(el).direction)).toBe("rtl");
    expect(await a.getByRole("textbox", { name: "Message" }).getAttribute("dir")).toBe("auto");
    expect(await convLink(a, bob.user.display_name).locator(".preview").getAttribute("dir")).toBe("auto");
    // A right-to-left title runs right to left, beside its avatar (a usability pass: it stood at the far side).
    expect((await s.api("PATCH", "/api/users/me", { token: bob.token, body: { display_name: "مجموعة عربية" } })).status).toBe(200);
    const heading = a.getByRole("heading", { name: "مجموعة عربية" });
    await heading.waitFor();
    expect(await heading.evaluate((el) => [getComputedStyle(el).direction, getComputedStyle(el).textAlign])).toEqual(["rtl", "left"]);
  });

  clientTest("a long file name stays inside its chip: a phone's page does not scroll sideways", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    await direct(alice, bob);
    const a = await pageFor(alice, "/", s, { width: 375, height: 700 }); // a phone shows the list first
    await convLink(a, bob.user.display_name).click();
    await a.locator("input[type=file]").setInputFiles({ name: `${"a-very-long-file-name-".repeat(8)}.txt`, mimeType: "text/plain", buffer: Buffer.from("hello") });
    await a.getByRole("list", { name: "Files to send" }).getByRole("listitem").waitFor();
    expect(await a.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    // An empty file is said in words, not uploaded (the server's answer explained its API: found by an acceptance pass).
    let uploads = 0;
    a.on("request", (r) => void (r.url().includes("/api/uploads") && uploads++));
    await a.locator("input[type=file]").setInputFiles({ name: "nothing.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) });
    await a.getByRole("list", { name: "Files to send" }).getByText("The file is empty.").waitFor();
    expect(uploads).toBe(0);
  });

  // Found by an acceptance pass (2026-12-03): on a phone the page grew to fit one's own long
  // name (443–708 px wide): the theme button, times and badges off-screen, dialogs cut.
  clientTest("a long display name of one's own does not widen a phone's page (nor a desktop's)", async () => {
    const alice = await s.register(uniqueName("alice"));
    const long = "Maximilian Alexander Featherstonehaugh-Cholmondeley";
    expect((await s.api("PATCH", "/api/users/me", { token: alice.token, body: { display_name: long } })).status).toBe(200);
    for (const viewport of [{ width: 390, height: 760 }, { width: 1100, height: 720 }]) {
      const a = await pageFor({ ...alice, user: { ...alice.user, display_name: long } }, "/", s, viewport);
      await a.getByRole("button", { name: `${long} (profile)` }).waitFor();
      expect(await a.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(viewport.width);
      await a.getByRole("button", { name: "New conversation" }).click();
      const box = await a.getByRole("dialog").boundingBox();
      expect(box!.x).toBeGreaterThanOrEqual(0);
      expect(box!.x + box!.width).toBeLessThanOrEqual(viewport.width);
    }
  });

  // Found by an acceptance pass (2026-12-03): with 11 files the send was refused whole ("Not
  // sent: At most 10."), Retry refused again, and the text went with it.
  clientTest("files past the 10 a message carries are not uploaded, said so on their chips; the message goes with the 10", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    let uploads = 0;
    a.on("request", (r) => void (r.url().includes("/api/uploads") && uploads++));
    await a.locator("input[type=file]").setInputFiles(Array.from({ length: 12 }, (_, i) => ({ name: `f${i + 1}.txt`, mimeType: "text/plain", buffer: Buffer.from(`file ${i + 1}`) })));
    const picks = a.getByRole("list", { name: "Files to send" });
    await picks.getByRole("listitem").nth(11).waitFor();
    expect(await picks.getByText("A message carries at most 10 files: send this one in the next.").count()).toBe(2);
    await a.waitForFunction(() => !document.querySelector(".picks progress"));
    expect(uploads).toBe(10);
    await a.getByRole("textbox", { name: "Message" }).fill("ten files");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await waitFor(async () => (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items.length === 1, 5000);
    const sent = (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items[0];
    expect([sent.content, sent.attachments.length]).toEqual(["ten files", 10]);
  });

  // From an acceptance pass (2026-12-03): "bob, Carol are typing…", and "03:55 PM".
  clientTest("two typing read as a sentence (“A and B are typing…”); a time has no leading zero", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Two typing", member_ids: [bob.user.id, carol.user.id] } });
    expect(group.status).toBe(201);
    await say(bob, group.body.id, "hello");
    const a = await pageFor(alice, `/c/${group.body.id}`);
    await log(a).getByText("hello").waitFor();
    const sockets = [await TestSocket.connect(`${s.wsBase}/ws/user?token=${bob.token}`), await TestSocket.connect(`${s.wsBase}/ws/user?token=${carol.token}`)];
    for (const ws of sockets) ws.send("message.typing", { conversation_id: group.body.id, is_typing: true });
    const line = a.locator("div.typing");
    await line.filter({ hasText: / and .* are typing…$/ }).waitFor({ timeout: 5000 });
    expect([`${bob.user.display_name} and ${carol.user.display_name} are typing…`, `${carol.user.display_name} and ${bob.user.display_name} are typing…`]).toContain((await line.textContent())!);
    for (const ws of sockets) ws.close();
    const shown = (await log(a).locator(".msg time").first().textContent())!;
    expect(shown).toMatch(/^\d{1,2}:\d{2}/);
    expect(shown).not.toMatch(/^0\d:/);
  });

  btest("stays signed in past the first token's expiry: the token is refreshed before it, the socket goes on with the new one; one on its way at a sign-out does not sign in again", async () => {
    // The server's heartbeat finds the socket's first token expired within 0.2 s: the tab
    // was signed out then, although it held a refreshed token (4001 ended the session).
    // 8 s: a refresh comes at half the token's life, 4 s before its expiry. With 4 s the tab was
    // once found signed out after the reload in a loaded CI run: a refresh delayed 2 s meets an
    // expired token (401), the likeliest cause; not reproduced under a busy CPU here.
    const server = await startServer({ jwtTtlSeconds: 8, heartbeatIntervalMs: 200 });
    try {
      const context = await browser!.newContext();
      contexts.push(context);
      const page = await context.newPage();
      await page.goto(server.base + "/");
      await page.getByRole("textbox", { name: "Username" }).fill(uniqueName("ttl"));
      await page.getByRole("textbox", { name: "Password" }).fill("password123");
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByRole("navigation", { name: "Conversations" }).waitFor();
      const first = await page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")!).token);
      await Bun.sleep(9000);
      const now = await page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")!).token);
      expect(now).not.toBe(first);
      expect((await server.api("GET", "/api/users/me", { token: now })).status).toBe(200);
      expect((await server.api("GET", "/api/users/me", { token: first })).status).toBe(401);
      // Still in, and live: a conversation made elsewhere shows up without a reload.
      await page.getByRole("navigation", { name: "Conversations" }).waitFor();
      const group = await server.api("POST", "/api/conversations", { token: now, body: { type: "group", title: "Made elsewhere" } });
      expect(group.status).toBe(201);
      await convLink(page, "Made elsewhere").waitFor({ timeout: 5000 });
      // A reload keeps the session.
      await page.reload();
      await page.getByRole("navigation", { name: "Conversations" }).waitFor();
      // A refresh on its way when the user signs out does not sign them in again when it lands (it did).
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let asked!: () => void;
      const refreshing = new Promise<void>((r) => (asked = r));
      await page.route("**/api/auth/refresh", async (route) => {
        asked();
        await held;
        await route.continue();
      });
      await refreshing;
      await page.getByRole("button", { name: "Profile" }).click();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("textbox", { name: "Username" }).waitFor();
      release();
      await Bun.sleep(1000);
      expect(await page.evaluate(() => localStorage.getItem("parley.session"))).toBeNull();
      expect(await page.getByRole("navigation", { name: "Conversations" }).count()).toBe(0);
    } finally {
      await server.stop();
    }
  });

  clientTest("composer extras: @mention autocomplete, reply, delete; Ctrl+K switches; the theme toggle", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    await friends(alice, bob);
    await friends(alice, carol);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Crew", member_ids: [bob.user.id, carol.user.id] } });
    expect(group.status).toBe(201);
    const dm = (await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "direct", user_id: carol.user.id } })).body.id;
    const a = await pageFor(alice, `/c/${group.body.id}`);
    const box = a.getByRole("textbox", { name: "Message" });

    // @mention: the members' list filters as you type; Enter picks.
    await box.click();
    await a.keyboard.type(`hi @${bob.user.username.slice(0, 4)}`);
    const options = a.getByRole("listbox", { name: "Mention someone" }).getByRole("option");
    await options.first().waitFor();
    expect(await options.count()).toBe(1);
    await a.keyboard.press("Enter");
    expect(await box.inputValue()).toBe(`hi @${bob.user.username} `);
    await a.keyboard.type("look");
    await a.keyboard.press("Enter");
    await log(a).getByText(`@${bob.user.username}`).waitFor();
    await settled(a);
    const sent = await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=1`, { token: bob.token });
    expect(sent.body.items[0].content).toBe(`hi @${bob.user.username} look`);

    // Reply to it, then delete the reply.
    await log(a).getByText("look").hover();
    await log(a).getByRole("button", { name: "Reply" }).last().click();
    await a.getByText(/^Replying to /).waitFor();
    await box.fill("a reply");
    await box.press("Enter");
    await log(a).locator(".quote").filter({ hasText: "look" }).waitFor();
    await settled(a);
    const stored = await s.api("GET", `/api/conversations/${group.body.id}/messages`, { token: bob.token });
    expect(stored.body.items[0].reply_to_id).toBe(stored.body.items[1].id);
    a.once("dialog", (d) => void d.accept());
    await log(a).getByText("a reply").hover();
    await log(a).getByRole("button", { name: "Delete" }).last().click();
    await log(a).getByText("Message deleted").waitFor();

    // Ctrl+K: type a name, Enter opens it.
    await a.keyboard.press("Control+k");
    await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Conversation name");
    await a.keyboard.type(carol.user.display_name.slice(0, 6));
    await a.keyboard.press("Enter");
    await a.waitForURL(`**/c/${dm}`);
    await a.getByRole("heading", { name: carol.user.display_name }).waitFor();

    // The theme toggle: system → dark → light → system.
    const theme = () => a.evaluate(() => document.documentElement.dataset.theme ?? "system");
    await a.getByRole("button", { name: /^Theme:/ }).click();
    expect(await theme()).toBe("dark");
    expect(await a.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe("rgb(23, 25, 29)");
    await a.getByRole("button", { name: /^Theme:/ }).click();
    expect(await theme()).toBe("light");
    await a.getByRole("button", { name: /^Theme:/ }).click();
    expect(await theme()).toBe("system");
  });

  btest("attachments: an image and a file picked, uploaded and sent; the other side sees the thumbnail and the link", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    const b = await pageFor(bob, `/c/${conv}`);
    await a.locator("input[type=file]").setInputFiles([
      { name: "red.png", mimeType: "image/png", buffer: Buffer.from(await png(64, 48)) },
      { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("plain notes") },
    ]);
    await a.getByRole("list", { name: "Files to send" }).getByText("red.png").waitFor();
    await a.waitForFunction(() => !document.querySelector(".picks progress"));
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    const img = log(b).getByRole("img", { name: "red.png" });
    await img.waitFor();
    await b.waitForFunction(() => (document.querySelector("[role=log] img[alt='red.png']") as any)?.naturalWidth > 0);
    const file = log(b).getByRole("link", { name: /notes\.txt/ });
    // The file's mark and the tools are drawn (SVG), not emoji: without an emoji font they were empty boxes.
    expect((await file.textContent())!.trim()).toMatch(/^notes\.txt/);
    expect(await file.locator("svg").count()).toBe(1);
    const tools = await log(a).locator(".tools button").evaluateAll((els) => els.map((e) => [e.getAttribute("aria-label"), e.textContent]));
    expect(tools.map(([label]) => label)).toContain("Delete");
    expect(tools.filter(([, text]) => /\p{Extended_Pictographic}/u.test(text!) && !/^[☺✎↩]$/u.test(text!))).toEqual([]);
    const res = await fetch(new URL((await file.getAttribute("href"))!, s.base));
    expect(await res.text()).toBe("plain notes");
    await convLink(b, alice.user.display_name).filter({ hasText: "Files: red.png, notes.txt" }).waitFor();
    await b.screenshot({ path: join(shots, "attachments.png") });
  });

  // Checked 2026-12-02 (the client does not know MAX_UPLOAD_BYTES): the server's 413 comes
  // from Content-Length before the body is read, and Chromium reports it (not a reset).
  clientTest("a file far over MAX_UPLOAD_BYTES is said too large at once, from the server's answer", async () => {
    const t = await startServer({ maxUploadBytes: 1024 * 1024 });
    try {
      const [alice, bob] = [await t.register(uniqueName("alice")), await t.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, t);
      const a = await pageFor(alice, `/c/${conv}`, t);
      const chips = a.getByRole("list", { name: "Files to send" });
      await a.evaluate(() => {
        const dt = new (window as any).DataTransfer();
        dt.items.add(new (window as any).File([new Uint8Array(64 * 1024 * 1024)], "huge.bin", { type: "application/octet-stream" }));
        const target = document.querySelector("[role=log]")!;
        for (const type of ["dragenter", "dragover", "drop"]) target.dispatchEvent(new (window as any).DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
      });
      await chips.getByRole("alert").filter({ hasText: /^Too large: a file may have at most 1 MB$/ }).waitFor({ timeout: 10_000 });
      expect(await t.rows("SELECT id FROM attachments")).toEqual([]);
    } finally {
      await t.stop();
    }
  });

  clientTest("attachments: drop, paste, progress and Cancel (nothing kept); a too-large file says so and the rest still sends", async () => {
    const t = await startServer({ sendsPerMinute: 1_000_000, writesPerMinute: 1_000_000, maxUploadBytes: 1024 * 1024 });
    try {
      const [alice, bob] = [await t.register(uniqueName("alice")), await t.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, t);
      const a = await pageFor(alice, `/c/${conv}`, t);
      const b = await pageFor(bob, `/c/${conv}`, t);
      const stored = async () => (await t.rows<{ n: number }>("SELECT count(*) AS n FROM attachments WHERE uploader_id = ?", alice.user.id))[0]!.n;
      const chips = a.getByRole("list", { name: "Files to send" });
      const idle = () => a.waitForFunction(() => !document.querySelector(".picks progress"));
      /**
       * Files dropped on the message list, as a drag from the desktop would: `bytes`, or `size`
       * bytes of `fill` made in the page (a megabyte as an array of numbers took seconds to pass in).
       */
      const dropFiles = (files: { name: string; type: string; bytes?: number[]; size?: number; fill?: number }[]) =>
        a.evaluate((files) => {
          const dt = new (window as any).DataTransfer();
          for (const f of files) dt.items.add(new (window as any).File([f.bytes ? new Uint8Array(f.bytes) : new Uint8Array(f.size!).fill(f.fill ?? 0)], f.name, { type: f.type }));
          const target = document.querySelector("[role=log]");
          for (const type of ["dragenter", "dragover", "drop"]) target.dispatchEvent(new (window as any).DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
        }, files);

      await dropFiles([{ name: "drop.txt", type: "text/plain", bytes: [...Buffer.from("dropped in")] }]);
      await chips.getByText("drop.txt").waitFor();
      await chips.getByText("10 B").waitFor();
      // An image pasted into the message box: a chip with its thumbnail, which opens the full file.
      const image = [...(await png(64, 48))];
      await a.getByRole("textbox", { name: "Message" }).evaluate((box, bytes) => {
        const dt = new (window as any).DataTransfer();
        dt.items.add(new (window as any).File([new Uint8Array(bytes)], "pasted.png", { type: "image/png" }));
        box.dispatchEvent(new (window as any).ClipboardEvent("paste", { bubbles: true, cancelable: true, clipboardData: dt }));
      }, image);
      const thumb = chips.getByRole("link").filter({ has: a.getByRole("img", { name: "pasted.png" }) });
      await thumb.waitFor();
      expect(await thumb.getAttribute("href")).toContain("/api/");
      await idle();
      expect(await stored()).toBe(2);

      // A slow link: the progress bar moves; Cancel aborts and the server keeps nothing.
      const cdp = await a.context().newCDPSession(a);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 16 * 1024 });
      // Larger than the socket buffers take at once, or the body is all sent before Cancel.
      await dropFiles([{ name: "slow.bin", type: "application/octet-stream", size: 900 * 1024, fill: 7 }]);
      const bar = chips.getByRole("progressbar", { name: "Uploading slow.bin" });
      await bar.waitFor();
      await a.waitForFunction(() => {
        const v = (document.querySelector(".picks progress") as any)?.value;
        return v > 0 && v < 1;
      });
      await a.locator("form.composer").screenshot({ path: join(shots, "upload-progress.png") });
      const uploads = () => t.logs.filter((l) => l.route === "/api/uploads");
      const before = uploads().length;
      await chips.getByRole("button", { name: "Cancel upload of slow.bin" }).click();
      await chips.getByText("slow.bin").waitFor({ state: "detached" });
      // The emulation holds the body back (the server has its first 16 KB), and the aborted
      // connection closes a moment after the click: lifted before that, Chromium sent the
      // rest of the aborted body at full speed, and the server kept the whole file (201).
      // So it stays until the server has seen the upload end short.
      const ended = await waitFor(() => uploads()[before], 10_000);
      expect(ended.status).toBe(400);
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      // Long enough for the rest of the body to arrive at full speed, had it not been aborted.
      await Bun.sleep(4000);
      expect(await stored()).toBe(2);

      // Over MAX_UPLOAD_BYTES: the server's 413 message on that chip, the rest still sendable.
      await dropFiles([{ name: "huge.bin", type: "application/octet-stream", size: 1200 * 1024 }]);
      // In the chip's units ("1.2 MB" beside it), not the server's "1048576 bytes".
      await chips.getByRole("alert").filter({ hasText: /^Too large: a file may have at most 1 MB$/ }).waitFor();
      await a.locator("form.composer").screenshot({ path: join(shots, "upload-error.png") });
      expect(await stored()).toBe(2);
      await a.getByRole("textbox", { name: "Message" }).fill("two files");
      await a.getByRole("textbox", { name: "Message" }).press("Enter");
      await log(b).getByRole("link", { name: /drop\.txt/ }).waitFor();
      // The thumbnail opens the full file: the link is to the very bytes pasted.
      const full = log(b).getByRole("link").filter({ has: b.getByRole("img", { name: "pasted.png" }) });
      await full.waitFor();
      const original = await fetch(new URL((await full.getAttribute("href"))!, t.base));
      expect([...new Uint8Array(await original.arrayBuffer())]).toEqual(image);
      await log(b).getByText("two files").waitFor();
      expect(await log(b).getByText("huge.bin").count()).toBe(0);
      await chips.waitFor({ state: "detached" });
    } finally {
      await t.stop();
    }
  });

  clientTest("a direct message while the tab is hidden: a desktop notification, and the count in the title", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await recordingNotifications(alice, `/c/${conv}`);
    await setHidden(a, true);
    await say(bob, conv, "are you there?");
    await a.waitForFunction(() => (globalThis as any).__notes.length > 0);
    expect(await a.evaluate(() => (globalThis as any).__notes)).toEqual([{ title: bob.user.display_name, body: "are you there?" }]);
    // Not read while hidden: the title counts it; back in view, it is read.
    await a.waitForFunction(() => document.title === "(1) Parley");
    await setHidden(a, false);
    await a.waitForFunction(() => document.title === "Parley");
  });

  clientTest("back to a tab left open on a conversation: the divider stands over what came while it was hidden", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(alice, conv, "nothing unread");
    const a = await recordingNotifications(alice, `/c/${conv}`);
    await log(a).getByText("nothing unread").waitFor();
    const dividerBefore = () => a.evaluate(() => document.querySelector("[role=log] .divider")?.nextElementSibling?.textContent ?? null);
    expect(await dividerBefore()).toBeNull();
    await setHidden(a, true);
    await say(bob, conv, "while away 1");
    await say(bob, conv, "while away 2");
    await log(a).getByText("while away 2").waitFor();
    await setHidden(a, false);
    await a.waitForFunction(() => document.title === "Parley"); // read now
    expect(await dividerBefore()).toContain("while away 1");
    await a.screenshot({ path: join(shots, "divider-after-away.png") });
    // Back again with nothing new: it stays there.
    await setHidden(a, true);
    await setHidden(a, false);
    expect(await dividerBefore()).toContain("while away 1");
  });

  clientTest("a mention in a group while the tab is hidden: a desktop notification", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    await friends(alice, bob);
    const group = await s.api("POST", "/api/conversations", { token: bob.token, body: { type: "group", title: "Mentions", member_ids: [alice.user.id] } });
    expect(group.status).toBe(201);
    const a = await recordingNotifications(alice, `/c/${group.body.id}`);
    await setHidden(a, true);
    await say(bob, group.body.id, `look @${alice.user.username}`);
    // Who, where and what (it said "You were mentioned" and the group's name alone: an acceptance pass).
    const title = `${bob.user.display_name} mentioned you in Mentions`;
    await a.waitForFunction((title) => (globalThis as any).__notes.some((n: any) => n.title === title), title);
    expect(await a.evaluate((title) => (globalThis as any).__notes.find((n: any) => n.title === title), title)).toEqual({ title, body: `look @${alice.user.username}` });
  });

  btest("group settings: the owner adds a friend, who sees the group live", async () => {
    const { alice, bob, carol, group, a } = await aliceWithFriendsInAGroup("Crew");
    const c = await pageFor(carol);
    await a.getByRole("button", { name: "Conversation settings" }).click();
    await a.getByRole("button", { name: `Add ${carol.user.display_name}` }).click();
    await a.getByRole("list", { name: "Members" }).getByText(carol.user.display_name, { exact: true }).waitFor();
    await convLink(c, "Crew").waitFor();
    const members = await s.api("GET", `/api/conversations/${group.body.id}/members`, { token: alice.token });
    expect(members.body.items.map((m: any) => m.user.id).sort()).toEqual([alice.user.id, bob.user.id, carol.user.id].sort());
  });

  clientTest("a send the server refuses (429) says why and offers Retry; it goes by itself after the Retry-After, once", async () => {
    // 6 a minute: a token every 10 s, so the refusal is certain and a send works 10 s later.
    const t = await startServer({ sendsPerMinute: 6, writesPerMinute: 1_000_000 });
    try {
      const [alice, bob] = [await t.register(uniqueName("alice")), await t.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, t);
      const a = await pageFor(alice, `/c/${conv}`, t);
      for (let i = 0; ; i++) {
        const r = await t.api("POST", `/api/conversations/${conv}/messages`, { token: alice.token, body: { content: `filler ${i}` } });
        if (r.status === 429) break;
        expect(r.status).toBe(201);
      }
      await a.getByRole("textbox", { name: "Message" }).fill("refused at first");
      await a.getByRole("textbox", { name: "Message" }).press("Enter");
      const failed = log(a).locator(".msg.failed").filter({ hasText: "refused at first" });
      await failed.getByText(/Not sent: .+/).waitFor();
      expect(await failed.textContent()).toMatch(/Not sent: .*(too many|rate|slow)/i);
      // Retry before the server's time: sent, refused again, said again.
      const posts = () => a.evaluate(() => performance.getEntriesByType("resource").filter((r) => /\/messages$/.test(r.name) && (r as PerformanceResourceTiming).initiatorType === "fetch").length);
      const before = await posts();
      await failed.getByRole("button", { name: "Retry" }).click();
      await waitFor(async () => (await posts()) === before + 1, 5000);
      await failed.getByText(/Not sent: .+/).waitFor();
      // Since 2026-12-03 it goes again by itself after the 429's Retry-After (before, only Retry sent it).
      await log(a).locator(".msg.failed").waitFor({ state: "detached", timeout: 15_000 });
      await settled(a);
      const page = await t.api("GET", `/api/conversations/${conv}/messages?limit=100`, { token: alice.token });
      expect(page.body.items.filter((m: any) => m.content === "refused at first")).toHaveLength(1);
      expect(await log(a).getByText("refused at first").count()).toBe(1);
    } finally {
      await t.stop();
    }
  }, 90_000);

  btest("profile, reject, cancel, unfriend, leave: each changes the server and the other side's screen", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    await friends(alice, bob);
    // Not friends: the test server's CONTACT_POLICY is open.
    const conv = (await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "direct", user_id: carol.user.id } })).body.id;
    const group = await s.api("POST", "/api/conversations", { token: bob.token, body: { type: "group", title: "Left behind", member_ids: [alice.user.id] } });
    expect(group.status).toBe(201);
    const a = await pageFor(alice);
    const c = await pageFor(carol);

    // Profile: a new display name and avatar; Carol's sidebar shows the new name live.
    await a.getByRole("button", { name: "Profile" }).click();
    await a.getByRole("textbox", { name: "Display name" }).fill("Alice Liddell");
    await a.getByRole("textbox", { name: "Avatar URL" }).fill("https://example.com/alice.png");
    await a.getByRole("button", { name: "Save" }).click();
    await a.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    const me = await s.api("GET", "/api/users/me", { token: alice.token });
    expect([me.body.display_name, me.body.profile_image_url]).toEqual(["Alice Liddell", "https://example.com/alice.png"]);
    await convLink(c, "Alice Liddell").waitFor();
    await a.getByRole("button", { name: "Close" }).click();

    // Carol asks Alice; Alice rejects. Alice asks Carol, then cancels. Alice unfriends Bob.
    const req = await s.api("POST", "/api/friendships", { token: carol.token, body: { friend_id: alice.user.id } });
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    await a.getByRole("button", { name: "Reject" }).click();
    await a.getByRole("list", { name: "Friend requests" }).waitFor({ state: "hidden" });
    expect((await s.api("GET", "/api/friendships?status=pending", { token: carol.token })).body.items).toHaveLength(0);
    expect(req.status).toBe(201);
    await a.getByRole("textbox", { name: "Find people" }).fill(carol.user.username);
    await a.getByRole("button", { name: "Find" }).click();
    await a.getByRole("button", { name: "Add friend" }).click();
    await a.getByRole("list", { name: "Sent requests" }).getByRole("button", { name: "Cancel" }).click();
    await a.getByRole("list", { name: "Sent requests" }).waitFor({ state: "hidden" });
    expect((await s.api("GET", "/api/friendships?status=pending", { token: carol.token })).body.items).toHaveLength(0);
    a.once("dialog", (d) => void d.accept());
    await a.getByRole("list", { name: "Friends list" }).getByRole("button", { name: "Unfriend" }).click();
    await a.getByText("No friends yet: find people above.").waitFor();
    expect((await s.api("GET", "/api/friendships?status=accepted", { token: bob.token })).body.items).toHaveLength(0);
    await a.getByRole("button", { name: "Close" }).click();

    // Leave Bob's group.
    await convLink(a, "Left behind").click();
    await a.getByRole("button", { name: "Conversation settings" }).click();
    a.once("dialog", (d) => void d.accept());
    await a.getByRole("button", { name: "Leave group" }).click();
    await convLink(a, "Left behind").waitFor({ state: "detached" });
    expect((await s.api("GET", `/api/conversations/${group.body.id}`, { token: alice.token })).status).toBe(404);
    expect(conv).toBeTruthy();
  });

  clientTest("signing out and in as someone else in the same tab: their peers' presence is followed afresh", async () => {
    // Its own server, whose users go offline 300 ms after their last socket closes.
    const server = await startServer({ presenceGraceMs: 300 });
    try {
      const [alice, bob, peer] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob")), await server.register(uniqueName("peer"))];
      await direct(alice, peer, server);
      await direct(bob, peer, server);
      const peerPage = await pageFor(peer, "/", server); // online
      const a = await pageFor(alice, "/", server);
      await convLink(a, peer.user.display_name).click();
      await a.locator(".conversation .sub").filter({ hasText: "Online" }).waitFor();
      await a.getByRole("button", { name: "Profile" }).click();
      await a.getByRole("button", { name: "Sign out" }).click();
      await a.getByRole("textbox", { name: "Username" }).fill(bob.user.username);
      await a.getByRole("textbox", { name: "Password" }).fill(bob.password);
      await a.getByRole("button", { name: "Sign in" }).click();
      await convLink(a, peer.user.display_name).click();
      await a.locator(".conversation .sub").filter({ hasText: "Online" }).waitFor({ timeout: 5000 });
      // Live for Bob too: the peer leaves, and goes offline after PRESENCE_GRACE_MS.
      await peerPage.context().close();
      await a.locator(".conversation .sub").filter({ hasText: "Offline" }).waitFor({ timeout: 10_000 });
    } finally {
      await server.stop();
    }
  });
});

describe("search in the web client (issue #14)", () => {
  const searchDialog = (p: Page) => p.getByRole("dialog", { name: "Search" });
  async function searchFor(p: Page, q: string) {
    const box = searchDialog(p).getByRole("searchbox", { name: "Search messages" });
    if (!(await box.isVisible())) await p.getByRole("button", { name: "Search", exact: true }).click();
    await box.fill(q);
    await box.press("Enter");
  }

  btest("a Thai word and an English one: results grouped by conversation, the match marked", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    const dm = await direct(alice, bob);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Release team", member_ids: [bob.user.id, carol.user.id] } });
    expect(group.status).toBe(201);
    await say(bob, dm, "พรุ่งนี้ประชุมกี่โมง");
    await say(alice, dm, "We deploy the release tonight");
    await say(carol, group.body.id, "ประชุมทีมวันศุกร์ตอนบ่ายสอง");
    await say(carol, group.body.id, "The release notes are ready");
    await say(bob, group.body.id, "ประชุมเลื่อนเป็นสี่โมงนะครับ");
    await say(bob, group.body.id, "lunch?");
    const a = await pageFor(alice);
    await searchFor(a, "ประชุม");
    const d = searchDialog(a);
    await d.getByRole("region", { name: "Release team" }).waitFor();
    await d.getByRole("region", { name: bob.user.display_name }).waitFor();
    expect(await d.getByRole("region").count()).toBe(2);
    expect(await d.locator("mark").allTextContents()).toEqual(["ประชุม", "ประชุม", "ประชุม"]);
    expect(await d.getByRole("region", { name: "Release team" }).getByRole("button").count()).toBe(2);
    await a.screenshot({ path: join(shots, "search.png") });
    await expect(d.getByRole("region", { name: "Release team" }).getByRole("button").last().textContent()).resolves.toContain("ประชุมทีมวันศุกร์");

    await searchFor(a, "RELEASE");
    await d.getByRole("region", { name: "Release team" }).getByText("notes are ready").waitFor();
    await d.getByRole("region", { name: bob.user.display_name }).getByText("tonight").waitFor();
    expect(await d.locator("mark").allTextContents()).toEqual(["release", "release"]);
    // The keyboard: ↓ from the box to the first result (not through the filters' stops),
    // ↓ ↑ between results, ↑ from the first back to the box (found by an acceptance pass).
    const box = d.getByRole("searchbox", { name: "Search messages" });
    const focusedHit = () => a.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.hit ?? document.activeElement?.getAttribute("type"));
    const hits = await d.locator("button.result").evaluateAll((els) => els.map((el) => (el as HTMLElement).dataset.hit));
    expect(hits).toHaveLength(2);
    await box.focus();
    await box.press("ArrowDown");
    expect(await focusedHit()).toBe(hits[0]);
    await a.keyboard.press("ArrowDown");
    expect(await focusedHit()).toBe(hits[1]);
    await a.keyboard.press("ArrowDown"); // the last stays
    expect(await focusedHit()).toBe(hits[1]);
    await a.keyboard.press("ArrowUp");
    await a.keyboard.press("ArrowUp");
    expect(await focusedHit()).toBe("search");

    await searchFor(a, "nothingsaysthis");
    await d.getByText("Nothing found.").waitFor();
    expect(await d.getByRole("region").count()).toBe(0);
    // Too long for the server (422): its reason, and no results.
    await searchFor(a, "RELEASE");
    await d.getByRole("region", { name: "Release team" }).waitFor();
    await searchFor(a, "x".repeat(300));
    await d.getByRole("alert").filter({ hasText: "Cannot search for that: at most 256 characters." }).waitFor();
    // A refused query has no results (the previous query's stayed listed under the error: a usability pass).
    expect(await d.getByRole("region").count()).toBe(0);
  });

  btest("filters: In a conversation, From a member or Me, Since and Until a day; each change searches again", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    const dm = await direct(alice, bob);
    const group = (await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Filter team", member_ids: [bob.user.id, carol.user.id] } })).body.id;
    await say(bob, dm, "zebra in the direct one");
    await say(carol, group, "zebra from carol");
    await say(bob, group, "zebra from bob");
    await say(alice, group, "zebra from me");
    await say(carol, group, "zebra long ago");
    // Local noon ten days ago, for the last one.
    const old = new Date();
    old.setDate(old.getDate() - 10);
    old.setHours(12, 0, 0, 0);
    await s.rows("UPDATE messages SET created_at = ? WHERE conversation_id = ? AND content = ?", old.getTime(), group, "zebra long ago");
    const a = await pageFor(alice);
    await searchFor(a, "zebra");
    const d = searchDialog(a);
    const found = async (n: number) => {
      // Settled: the status counts them (it said nothing once a search was over).
      await a.waitForFunction((n) => document.querySelectorAll("dialog .result").length === n && document.querySelector("dialog .search-status")?.textContent === `${n} result${n === 1 ? "" : "s"}`, n);
      return (await d.locator(".result .snippet").allTextContents()).map((t) => t.replace(/^zebra ?/, ""));
    };
    expect(await found(5)).toEqual(["long ago", "from me", "from bob", "from carol", "in the direct one"]);
    const filters = d.getByRole("group", { name: "Filters" });
    await filters.getByLabel("In", { exact: true }).selectOption({ label: "Filter team" });
    expect(await found(4)).toEqual(["long ago", "from me", "from bob", "from carol"]);
    // From: the chosen conversation's members, and Me.
    await filters.getByLabel("From", { exact: true }).selectOption({ label: carol.user.display_name });
    expect(await found(2)).toEqual(["long ago", "from carol"]);
    await filters.getByLabel("From", { exact: true }).selectOption({ label: "Me" });
    expect(await found(1)).toEqual(["from me"]);
    await filters.getByLabel("From", { exact: true }).selectOption({ label: "Anyone" });
    const day = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    // Until the day it was sent (that whole day), then Since the day after.
    await filters.getByLabel("Until", { exact: true }).fill(day(old));
    expect(await found(1)).toEqual(["long ago"]);
    await filters.getByLabel("Until", { exact: true }).fill("");
    const after = new Date(old);
    after.setDate(after.getDate() + 1);
    await filters.getByLabel("Since", { exact: true }).fill(day(after));
    expect(await found(3)).toEqual(["from me", "from bob", "from carol"]);
    // A Since after Until (typed: the inputs' min and max do not stop typing) is said, not sent.
    await filters.getByLabel("Until", { exact: true }).fill(day(old));
    await d.getByRole("alert").filter({ hasText: "“Since” is a later day than “Until”." }).waitFor();
    await filters.getByLabel("Until", { exact: true }).fill("");
    await filters.getByLabel("Since", { exact: true }).fill(day(old));
    expect(await found(4)).toEqual(["long ago", "from me", "from bob", "from carol"]);
    await filters.getByLabel("In", { exact: true }).selectOption({ label: "All conversations" });
    expect(await found(5)).toEqual(["long ago", "from me", "from bob", "from carol", "in the direct one"]);
    // In all conversations, From offers friends (Bob is Alice's).
    await filters.getByLabel("From", { exact: true }).selectOption({ label: bob.user.display_name });
    expect(await found(2)).toEqual(["from bob", "in the direct one"]);
    await a.screenshot({ path: join(shots, "search-filters.png") });
    // Changing In keeps the sender where they are a member (it went back to Anyone each time)...
    const from = filters.getByLabel("From", { exact: true });
    await filters.getByLabel("In", { exact: true }).selectOption({ label: "Filter team" });
    expect(await found(1)).toEqual(["from bob"]);
    expect(await from.inputValue()).toBe(bob.user.id);
    // ... and in all conversations, where a co-member who is no friend is not listed otherwise.
    await from.selectOption({ label: carol.user.display_name });
    expect(await found(2)).toEqual(["long ago", "from carol"]);
    await filters.getByLabel("In", { exact: true }).selectOption({ label: "All conversations" });
    expect(await found(2)).toEqual(["long ago", "from carol"]);
    expect(await from.locator("option:checked").textContent()).toBe(carol.user.display_name);
    // Not a member of the conversation chosen: Anyone again.
    await filters.getByLabel("In", { exact: true }).selectOption({ label: bob.user.display_name });
    expect(await found(1)).toEqual(["in the direct one"]);
    expect(await from.inputValue()).toBe("");
  });

  clientTest("an <img onerror> in a message is shown as text in its snippet, never run", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const dm = await direct(alice, bob);
    const attack = "<img src=x onerror=alert(1)> & \"quoted\" 'single' &lt;b&gt; xsscanary";
    await say(bob, dm, attack);
    const a = await pageFor(alice);
    let alerted = false;
    a.on("dialog", (dlg) => { alerted = true; void dlg.dismiss(); });
    // Ctrl+Shift+F opens Search, its box focused.
    await a.keyboard.press("Control+Shift+F");
    await a.keyboard.type("xsscanary");
    await expect(searchDialog(a).getByRole("searchbox", { name: "Search messages" }).inputValue()).resolves.toBe("xsscanary");
    await searchFor(a, "xsscanary");
    const result = searchDialog(a).locator(".snippet");
    await result.filter({ hasText: "xsscanary" }).waitFor();
    expect(await result.textContent()).toBe(attack);
    expect(await result.locator("mark").allTextContents()).toEqual(["xsscanary"]);
    expect(await searchDialog(a).locator("img").count()).toBe(0);
    expect(await result.evaluate((el) => [...el.querySelectorAll("*")].map((n: HTMLElement) => n.tagName))).toEqual(["MARK"]);
    await a.waitForTimeout(200);
    expect(alerted).toBe(false);
  });

  btest("a result far back in a 300-message history: opened there, highlighted; scrolling loads older and newer; More results pages", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 300; i++) await say(i % 2 ? alice : bob, conv, i === 40 ? "message 40 zebra crossing" : `message ${i}`);
    const a = await pageFor(alice);
    // Paging: "message" is in all 300, 30 a page.
    await searchFor(a, "message");
    const results = searchDialog(a).locator("button.result");
    await results.nth(29).waitFor();
    expect(await results.count()).toBe(30);
    await searchDialog(a).getByRole("button", { name: "More results" }).click();
    await results.nth(59).waitFor();
    expect(await results.count()).toBe(60);
    // The focus goes to the first of them (the button is gone after the last page: it fell to <body>).
    const firstNew = await results.nth(30).textContent();
    await a.waitForFunction((text) => document.activeElement?.classList.contains("result") && document.activeElement.textContent === text, firstNew);

    await searchFor(a, "zebra");
    await results.filter({ hasText: "zebra" }).click();
    await expect(searchDialog(a).isVisible()).resolves.toBe(false);
    const target = log(a).locator(".msg.flash").filter({ hasText: "message 40 zebra crossing" });
    await target.waitFor();
    // In the view (not merely in the DOM).
    const inView = await target.evaluate((el: HTMLElement) => {
      const r = el.getBoundingClientRect();
      const l = el.closest("[role=log]")!.getBoundingClientRect();
      return r.top >= l.top && r.bottom <= l.bottom;
    });
    expect(inView).toBe(true);
    // Loaded around it, not from the end: the newest is not there yet.
    expect(await log(a).getByText("message 299", { exact: true }).count()).toBe(0);
    await log(a).getByText("message 39", { exact: true }).waitFor({ state: "attached" });
    await log(a).getByText("message 41", { exact: true }).waitFor({ state: "attached" });
    // The highlight goes after a while.
    await a.waitForFunction(() => !document.querySelector("[role=log] .msg.flash"), null, { timeout: 10_000 });

    // Up to the start…
    for (let guard = 0; !(await log(a).getByText("This is the start of the conversation.").isVisible()); guard++) {
      if (guard > 40) throw new Error("never reached the start of the history");
      await log(a).evaluate((el) => (el.scrollTop = 0));
      await a.waitForTimeout(100);
    }
    await log(a).getByText("message 0", { exact: true }).waitFor();
    // …and down to the newest, loaded page by page.
    for (let guard = 0; !(await log(a).getByText("message 299", { exact: true }).isVisible()); guard++) {
      if (guard > 60) throw new Error("never reached the newest message");
      await log(a).evaluate((el) => (el.scrollTop = el.scrollHeight));
      await a.waitForTimeout(100);
    }
    expect(await log(a).locator("[data-id]").count()).toBeLessThanOrEqual(300);
    // Now live again: a new message shows.
    await say(bob, conv, "after the search");
    await log(a).getByText("after the search").waitFor();
  }, 120_000);

  clientTest("a result in the open conversation's loaded history: scrolled to and highlighted without a reload", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 30; i++) await say(bob, conv, i === 2 ? "message 2 walrus" : `message ${i}`);
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("message 29", { exact: true }).waitFor();
    await searchFor(a, "walrus");
    await searchDialog(a).locator("button.result").filter({ hasText: "walrus" }).click();
    await log(a).locator(".msg.flash").filter({ hasText: "message 2 walrus" }).waitFor();
    await log(a).getByText("message 29", { exact: true }).waitFor({ state: "attached" });
  });

  clientTest("from a result far back, Jump to latest loads the newest messages; past the search budget, a 429 says to wait", async () => {
    // Its own server, with a budget of 8 searches a minute (2 at once).
    const server = await startServer({ searchesPerMinute: 8 });
    try {
      const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, server);
      for (let i = 0; i < 150; i++) await say(bob, conv, i === 5 ? "message 5 okapi" : `message ${i}`, server);
      const a = await pageFor(alice, "/", server);
      await searchFor(a, "okapi");
      await searchDialog(a).locator("button.result").filter({ hasText: "okapi" }).click();
      await log(a).locator(".msg.flash").filter({ hasText: "message 5 okapi" }).waitFor();
      expect(await log(a).getByText("message 149", { exact: true }).count()).toBe(0);
      // Straight to the newest page, not through the newer pages between (cursors are base64url JSON).
      const paged: string[] = [];
      a.on("request", (r) => {
        const cursor = new URL(r.url()).searchParams.get("cursor");
        if (cursor && Buffer.from(cursor, "base64url").toString().includes('"after"')) paged.push(r.url());
      });
      await a.getByRole("button", { name: "Jump to latest" }).click();
      await log(a).getByText("message 149", { exact: true }).waitFor();
      expect(paged).toEqual([]);
      await say(bob, conv, "live again", server);
      await log(a).getByText("live again").waitFor();
      // A send while reading far back goes after the newest messages, which are loaded first.
      await a.goto(server.base + "/"); // (nothing loaded: the result's history is loaded around it)
      await a.getByRole("navigation", { name: "Conversations" }).waitFor();
      await searchFor(a, "okapi");
      await searchDialog(a).locator("button.result").filter({ hasText: "okapi" }).click();
      await log(a).locator(".msg.flash").filter({ hasText: "message 5 okapi" }).waitFor();
      expect(await log(a).getByText("live again").count()).toBe(0);
      await a.getByRole("textbox", { name: "Message" }).fill("sent from far back");
      await a.keyboard.press("Enter");
      await log(a).getByText("sent from far back").waitFor();
      await settled(a);
      const order = await log(a).locator(".body").allTextContents();
      expect(order.slice(-3)).toEqual(["message 149", "live again", "sent from far back"]);
      await expect(log(a).getByText("sent from far back").isVisible()).resolves.toBe(true);

      for (let i = 0; i < 4; i++) await searchFor(a, `okapi ${i}`);
      await searchDialog(a).getByRole("alert").filter({ hasText: "Too many searches at once" }).waitFor();
    } finally {
      await server.stop();
    }
  });

  clientTest("Enter right after the typing's own search asks nothing more (twice the same question spent two of the minute's searches)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "the gnu migrates");
    const a = await pageFor(alice);
    const asked: string[] = [];
    a.on("request", (r) => r.url().includes("/api/search/messages") && asked.push(new URL(r.url()).searchParams.get("q")!));
    await a.getByRole("button", { name: "Search", exact: true }).click();
    const box = searchDialog(a).getByRole("searchbox", { name: "Search messages" });
    await box.fill("gnu");
    // The typing's search (after its 350 ms pause) answered…
    await searchDialog(a).locator("button.result").filter({ hasText: "the gnu migrates" }).waitFor();
    // …then Enter on the same words: nothing more is asked, the results stay.
    await box.press("Enter");
    await Bun.sleep(500);
    expect(asked).toEqual(["gnu"]);
    expect(await searchDialog(a).locator("button.result").count()).toBe(1);
    // Other words: asked at once (and once: Enter cancels the typing's pending search).
    await box.fill("migrates");
    await box.press("Enter");
    await searchDialog(a).getByRole("status").filter({ hasText: "1 result" }).waitFor();
    await Bun.sleep(600);
    expect(asked).toEqual(["gnu", "migrates"]);
  });

  clientTest("the quick switcher asks the server for conversations the loaded list does not hold", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const group = (title: string) => s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title, member_ids: [bob.user.id] } }).then((r) => {
      expect(r.status).toBe(201);
      return r.body.id as string;
    });
    await group("Hidden orchid garden");
    const fern = await group("Hidden fern corner");
    await say(bob, fern, "the ferns need water");
    for (let i = 0; i < 105; i++) await group(`bulk ${i}`);
    // The client loads at most 20 pages of the list; here it gets one (100), as if the rest were past that cap.
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    contexts.push(context);
    await context.route(/\/api\/conversations\?limit=100/, async (route) => {
      const res = await route.fetch();
      const body = await res.json();
      await route.fulfill({ response: res, json: { ...body, next_cursor: null } });
    });
    const session = JSON.stringify({ token: alice.token, expires_at: new Date(Date.now() + 86_400_000).toISOString(), user: alice.user });
    await context.addInitScript((v) => localStorage.setItem("parley.session", v), session);
    const a = await context.newPage();
    await a.goto(s.base + "/");
    await convLink(a, "bulk 104").waitFor();
    await a.waitForTimeout(300);
    expect(await convLink(a, "Hidden orchid").count()).toBe(0);

    await a.keyboard.press("Control+k");
    await a.getByRole("combobox", { name: "Conversation name" }).fill("orchid");
    await a.getByRole("option", { name: "Hidden orchid garden" }).waitFor();
    await a.keyboard.press("Enter");
    await a.getByRole("heading", { name: "Hidden orchid garden" }).waitFor();
    await convLink(a, "Hidden orchid").waitFor();
    expect(new URL(a.url()).pathname).toMatch(/^\/c\//);

    // A message search hit in another conversation past the list is titled (fetched for it).
    expect(await convLink(a, "Hidden fern").count()).toBe(0);
    await searchFor(a, "need water");
    await searchDialog(a).getByRole("region", { name: "Hidden fern corner" }).waitFor();
  });
});

/**
 * §10's accessible names the way an outside suite uses them: role + exact name, strict
 * locators (one match each, or the action throws), from a signed-out deep link.
 */
describe("§10's names, as an outside suite locates them", () => {
  btest("signed out at /c/<id>: sign in by name; every named control is unique; unread count ends the link's name", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const title = `Acceptance ${uniqueName("g")}`;
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title, member_ids: [bob.user.id] } });
    expect(group.status).toBe(201);
    const quiet = `Quiet ${uniqueName("g")}`;
    const other = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: quiet, member_ids: [bob.user.id] } });
    expect(other.status).toBe(201);
    for (const n of [1, 2, 3]) await say(bob, group.body.id, `unread ${n}`);

    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    contexts.push(context);
    const p = await context.newPage();
    await p.goto(`${s.base}/c/${other.body.id}`);
    const exact = { exact: true } as const;
    for (const [role, name] of [["textbox", "Username"], ["textbox", "Password"], ["button", "Sign in"], ["button", "Create account"]] as const) {
      await p.getByRole(role, { name, ...exact }).waitFor();
      expect(await p.getByRole(role, { name }).count()).toBe(1);
    }
    await p.getByRole("textbox", { name: "Username" }).fill(alice.user.username);
    await p.getByRole("textbox", { name: "Password" }).fill(alice.password);
    await p.getByRole("button", { name: "Sign in" }).click();

    const nav = p.getByRole("navigation", { name: "Conversations", ...exact });
    await nav.waitFor();
    await p.getByRole("heading", { name: quiet, ...exact }).waitFor(); // the deep link's conversation, opened
    await p.getByRole("link", { name: new RegExp(`^${title}.*, 3 unread$`) }).waitFor();
    expect(await p.getByRole("link", { name: new RegExp(`^${quiet}`) }).getAttribute("aria-label").then((n) => n ?? "")).not.toMatch(/unread$/);
    // Unique both by exact name and by Playwright's default (case-insensitive substring) match.
    for (const name of ["New conversation", "Friends", "Search"]) {
      expect(await p.getByRole("button", { name, ...exact }).count()).toBe(1);
      expect(await p.getByRole("button", { name }).count()).toBe(1);
    }

    await p.getByRole("link", { name: new RegExp(`^${title}`) }).click();
    await p.getByRole("log", { name: "Messages", ...exact }).getByText("unread 3", exact).waitFor();
    await p.getByRole("link", { name: new RegExp(`^${title}.*\\d unread$`) }).waitFor({ state: "detached" });
    await p.getByRole("textbox", { name: "Message" }).fill("seen, thanks");
    await p.getByRole("button", { name: "Send" }).click();
    await p.getByRole("log", { name: "Messages", ...exact }).getByText("seen, thanks", exact).waitFor();
    for (const [role, name] of [["textbox", "Message"], ["button", "Send"], ["log", "Messages"], ["navigation", "Conversations"]] as const) {
      expect(await p.getByRole(role, { name, ...exact }).count()).toBe(1);
      expect(await p.getByRole(role, { name }).count()).toBe(1);
    }
    expect(await p.getByRole("status").filter({ hasText: "Reconnecting…" }).count()).toBe(0);
    // With the Search dialog open, "Search" still names one button (the dialog's submits with "Find").
    await p.getByRole("button", { name: "Search", exact: true }).click();
    await p.getByRole("dialog", { name: "Search" }).waitFor();
    expect([await p.getByRole("button", { name: "Search", exact: true }).count(), await p.getByRole("button", { name: "Search" }).count()]).toEqual([1, 1]);
  });

  clientTest("a name in a group's preview does not make that person's link ambiguous", async () => {
    const [alice, ann] = [await s.register(uniqueName("alice")), await s.register(uniqueName("ann"))];
    await direct(alice, ann);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: `Weekend ${uniqueName("g")}`, member_ids: [ann.user.id] } });
    await say(ann, group.body.id, "group hello");
    const p = await pageFor(alice);
    // The group's preview reads "<ann>: group hello"; only the direct conversation is named after her.
    await p.getByRole("navigation", { name: "Conversations" }).getByText("group hello").waitFor();
    expect(await p.getByRole("link", { name: ann.user.display_name }).count()).toBe(1);
  });
});

describe("a network that goes away (browser offline)", () => {
  btest("Reconnecting… at once; back online, what was sent meanwhile shows, and a send made offline goes", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "before going offline");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("before going offline").waitFor();
    await a.context().setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    await say(bob, conv, "while you were offline");
    await a.getByRole("textbox", { name: "Message" }).fill("written offline");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await log(a).getByText("Not sent: offline.").waitFor();
    // It goes by itself: the message says so (Retry is there for the impatient).
    expect(await log(a).locator(".state.error").textContent()).toBe("Not sent: offline. It goes when you are back online. Retry Discard");
    // The list says it too (it showed the last message sent; a conversation with none, "No messages yet").
    const preview = convLink(a, bob.user.display_name).locator(".preview");
    await preview.filter({ hasText: /^Not sent: written offline$/ }).waitFor();
    await a.context().setOffline(false);
    await log(a).getByText("while you were offline").waitFor({ timeout: 10_000 });
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ state: "hidden" });
    await log(a).getByText("Not sent: offline.").waitFor({ state: "hidden", timeout: 10_000 });
    await settled(a);
    for (const text of ["before going offline", "while you were offline", "written offline"]) expect(await log(a).getByText(text, { exact: true }).count()).toBe(1);
    await preview.filter({ hasText: /^You: written offline$/ }).waitFor();
  });

  clientTest("Reconnecting… pushes the page down instead of covering the newest messages (desktop and phone); a friend typing in a group whose members were not read is named, the preview not indented", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Typing room", member_ids: [bob.user.id] } });
    for (let i = 0; i < 30; i++) await say(i % 2 ? alice : bob, conv, `line ${i}`);
    const box = (p: Page, sel: string) => p.locator(sel).first().evaluate((el: HTMLElement) => { const r = el.getBoundingClientRect(); return { top: r.top, bottom: r.bottom }; });
    for (const viewport of [{ width: 1100, height: 720 }, { width: 390, height: 760 }]) {
      const a = await pageFor(alice, "/", s, viewport);
      await convLink(a, bob.user.display_name).click();
      await log(a).getByText("line 29", { exact: true }).waitFor();
      await a.context().setOffline(true);
      const status = a.getByRole("status").filter({ hasText: "Reconnecting…" });
      await status.waitFor({ timeout: 3000 });
      // Nothing of the conversation is under it (the pill floated over the header or the messages).
      const [strip, main] = [await box(a, ".connection.away"), await box(a, "main")];
      expect(strip.bottom).toBeLessThanOrEqual(main.top + 0.5);
      await a.context().setOffline(false);
      await status.waitFor({ state: "hidden", timeout: 10_000 });
    }
    const a = await pageFor(alice, `/c/${conv}`);
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${bob.token}`);
    ws.send("message.typing", { conversation_id: group.body.id, is_typing: true });
    const preview = a.getByRole("navigation", { name: "Conversations" }).getByText(`${bob.user.display_name} typing…`);
    await preview.waitFor({ timeout: 5000 });
    expect(await preview.evaluate((el: HTMLElement) => getComputedStyle(el).paddingLeft)).toBe("0px");
    ws.close();
  });

  clientTest("while its own socket is away, a page claims no peer is Online (what it last heard may be stale); back online, it knows again", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const b = await pageFor(bob, "/"); // Bob is online
    const a = await pageFor(alice, `/c/${conv}`);
    const sub = a.locator(".conversation .sub");
    const dot = a.getByRole("navigation", { name: "Conversations" }).locator(".dot");
    await sub.filter({ hasText: "Online" }).waitFor();
    expect(await dot.getAttribute("class")).toBe("dot on");
    await a.context().setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    expect(await sub.textContent()).toBe("");
    expect(await dot.count()).toBe(0);
    await a.context().setOffline(false);
    await sub.filter({ hasText: "Online" }).waitFor({ timeout: 10_000 });
    expect(await dot.getAttribute("class")).toBe("dot on");
    await b.close();
  });

  clientTest("a peer who went offline while the page's socket was away is never shown Online after it is back (not even until the client follows them again)", async () => {
    const server = await startServer({ presenceGraceMs: 0 });
    try {
      const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, server);
      const b = await pageFor(bob, "/", server);
      const a = await pageFor(alice, `/c/${conv}`, server);
      const sub = a.locator(".conversation .sub");
      await sub.filter({ hasText: "Online" }).waitFor();
      await a.context().setOffline(true);
      await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
      await b.context().close(); // Bob goes offline meanwhile
      await Bun.sleep(500);
      // Every text the header shows from now on.
      await a.evaluate(() => {
        const w = window as unknown as { __subs: string[] };
        w.__subs = [];
        const el = document.querySelector(".conversation .sub")!;
        new (globalThis as any).MutationObserver(() => w.__subs.push(el.textContent ?? "")).observe(el, { childList: true, characterData: true, subtree: true });
      });
      await a.context().setOffline(false);
      await sub.filter({ hasText: "Offline" }).waitFor({ timeout: 10_000 });
      expect(await a.evaluate(() => (window as unknown as { __subs: string[] }).__subs)).not.toContain("Online");
    } finally {
      await server.stop();
    }
  });

  clientTest("a conversation opened while the network is away loads once it is back (it stayed blank)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "waiting for you");
    const a = await pageFor(alice, "/");
    await a.context().setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    await convLink(a, bob.user.display_name).click();
    await Bun.sleep(300); // its first page fails meanwhile
    await a.context().setOffline(false);
    await log(a).getByText("waiting for you").waitFor({ timeout: 10_000 });
    await say(bob, conv, "and live");
    await log(a).getByText("and live").waitFor({ timeout: 5000 });
  });

  // Found by an acceptance pass (2026-12-02): the read made offline never reached the server,
  // and the list sent on reconnect brought its count back while the conversation was open.
  clientTest("a conversation read while the network is away is read on the server once it is back, and not shown unread", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Elsewhere", member_ids: [bob.user.id] } });
    await say(bob, conv, "first");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("first").waitFor();
    const unreadOnServer = async () => (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count;
    /** A message arrives while Alice is elsewhere; she reads it offline (and leaves it, or not); back online, the server has the read. */
    async function readOffline(text: string, leaveBeforeOnline: boolean) {
      await convLink(a, "Elsewhere").click();
      await say(bob, conv, text);
      await convLink(a, `${bob.user.display_name}, 1 unread`).waitFor({ timeout: 5000 });
      await a.context().setOffline(true);
      await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
      await convLink(a, bob.user.display_name).click();
      await log(a).getByText(text).waitFor();
      if (leaveBeforeOnline) await convLink(a, "Elsewhere").click();
      await a.context().setOffline(false);
      await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ state: "hidden", timeout: 10_000 });
      for (let i = 0; i < 50 && (await unreadOnServer()) !== 0; i++) await Bun.sleep(100);
      expect(await unreadOnServer()).toBe(0);
    }
    await readOffline("unread while elsewhere", false);
    await settled(a);
    expect(await a.getByRole("navigation", { name: "Conversations" }).getByRole("link", { name: /unread$/ }).count()).toBe(0);
    expect(group.status).toBe(201);
    // Read offline and left before the network came back: the read is sent once it is.
    await readOffline("second unread while elsewhere", true);
  });

  clientTest("a read made while the network is away, in a tab closed before it came back, is sent by the next page", async () => {
    const { alice, bob, conv, a } = await aliceAwayFromDirect("Elsewhere");
    await say(bob, conv, "read offline, then the tab closed");
    await convLink(a, `${bob.user.display_name}, 1 unread`).waitFor({ timeout: 5000 });
    const context = a.context();
    await context.setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    await convLink(a, bob.user.display_name).click();
    await log(a).getByText("read offline, then the tab closed").waitFor();
    await a.close();
    await context.setOffline(false);
    const unreadOnServer = async () => (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count;
    expect(await unreadOnServer()).toBe(1);
    // The next page (the list, not that conversation) sends the read it left.
    const next = await context.newPage();
    await next.goto(s.base + "/");
    for (let i = 0; i < 50 && (await unreadOnServer()) !== 0; i++) await Bun.sleep(100);
    expect(await unreadOnServer()).toBe(0);
    expect(await next.evaluate((id) => localStorage.getItem(`parley.unsentReads.${id}`), alice.user.id)).toBeNull();
  });

  /** The conversation's messages on the server, oldest first. */
  const contents = async (a: Account, conv: string, server = s) =>
    ((await server.api("GET", `/api/conversations/${conv}/messages?limit=100`, { token: a.token })).body.items as { content: string }[]).map((m) => m.content).reverse();
  const outbox = (p: Page, a: Account) => p.evaluate((id) => localStorage.getItem(`parley.outbox.${id}`), a.user.id);

  // Found by a read of the client (2026-12-03): what was written offline lived in the page
  // only: a closed tab (or a phone's browser dropping it) lost it, though the page had said
  // "It goes when you are back online"; and sent again all at once, it could arrive in any order.
  clientTest("messages written offline go in the order written once back; written in a tab closed before then, the next page sends them, once each", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "hello");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("hello").waitFor();
    const context = a.context();
    async function writeOffline(page: Page, texts: string[]) {
      await context.setOffline(true);
      await page.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
      const box = page.getByRole("textbox", { name: "Message" });
      for (const text of texts) {
        await box.fill(text);
        await box.press("Enter");
      }
      await waitFor(async () => (await log(page).getByText("Not sent: offline.").count()) === texts.length, 5000);
    }
    await writeOffline(a, ["first offline", "second offline", "third offline"]);
    // Readable while on its way: 4.5:1 at least against the page, light and dark (an axe check found 4.47 in light).
    for (const scheme of ["light", "dark"] as const) {
      await a.emulateMedia({ colorScheme: scheme });
      const ratio = await log(a).locator(".msg.pending .body").first().evaluate((el: HTMLElement) => {
        const rgb = (c: string) => c.match(/[\d.]+/g)!.slice(0, 3).map(Number);
        const lum = ([r, g, b]: number[]) => [r!, g!, b!].map((v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i]!, 0);
        let bgEl: HTMLElement | null = el;
        while (bgEl && /rgba\(0, 0, 0, 0\)|transparent/.test(getComputedStyle(bgEl).backgroundColor)) bgEl = bgEl.parentElement;
        const bg = rgb(getComputedStyle(bgEl ?? document.body).backgroundColor);
        const alpha = Number(getComputedStyle(el).opacity);
        const fg = rgb(getComputedStyle(el).color).map((v, i) => v * alpha + bg[i]! * (1 - alpha));
        const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
        return (hi! + 0.05) / (lo! + 0.05);
      });
      expect(ratio).toBeGreaterThanOrEqual(4.5);
    }
    await a.emulateMedia({ colorScheme: "light" });
    expect(JSON.parse((await outbox(a, alice))!).map((u: { content: string }) => u.content)).toEqual(["first offline", "second offline", "third offline"]);
    await context.setOffline(false);
    await waitFor(async () => (await contents(alice, conv)).length === 4, 10_000);
    expect(await contents(alice, conv)).toEqual(["hello", "first offline", "second offline", "third offline"]);
    await settled(a);
    expect(await outbox(a, alice)).toBeNull();

    await writeOffline(a, ["fourth, the tab closed", "fifth, the tab closed"]);
    await a.close();
    await context.setOffline(false);
    await Bun.sleep(300);
    expect((await contents(alice, conv)).length).toBe(4);
    const next = await context.newPage();
    await next.goto(`${s.base}/c/${conv}`);
    await waitFor(async () => (await contents(alice, conv)).length === 6, 10_000);
    expect((await contents(alice, conv)).slice(4)).toEqual(["fourth, the tab closed", "fifth, the tab closed"]);
    await log(next).getByText("fifth, the tab closed").waitFor();
    await settled(next);
    for (const text of ["first offline", "fourth, the tab closed", "fifth, the tab closed"]) expect(await log(next).getByText(text, { exact: true }).count()).toBe(1);
    expect(await outbox(next, alice)).toBeNull();
  });

  clientTest("a message the server holds back (429) stays, after a reload too, until sent or discarded; signing out with one asks first, and signing out anyway forgets it", async () => {
    const server = await startServer({ sendsPerMinute: 1 });
    try {
      const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, server);
      await say(alice, conv, "the minute's one message", server); // her budget for the minute is spent
      const a = await pageFor(alice, `/c/${conv}`, server);
      const box = a.getByRole("textbox", { name: "Message" });
      await box.fill("one too many");
      await box.press("Enter");
      const held = log(a).getByText("Not sent: Too many messages, slow down. It goes by itself shortly.");
      await held.waitFor();
      await a.reload();
      await held.waitFor({ timeout: 5000 }); // shown again, and sent again (and held back again)
      expect(await log(a).getByText("one too many", { exact: true }).count()).toBe(1);

      const asked: string[] = [];
      a.on("dialog", (d) => void (asked.push(d.message()), d.dismiss()));
      await a.getByRole("button", { name: `${alice.user.display_name} (profile)`, exact: true }).click();
      await a.getByRole("dialog").getByRole("button", { name: "Sign out" }).click();
      expect(asked).toEqual(["1 message not sent yet will be lost. Sign out anyway?"]);
      await a.keyboard.press("Escape");
      await a.getByRole("dialog").waitFor({ state: "hidden" });

      a.removeAllListeners("dialog");
      a.once("dialog", (d) => void (asked.push(d.message()), d.accept()));
      await log(a).getByRole("button", { name: "Discard the message not sent" }).click();
      await log(a).getByText("one too many").waitFor({ state: "hidden" });
      expect(asked.at(-1)).toBe("Discard this message? It has not been sent.");
      await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Message");
      expect(await outbox(a, alice)).toBeNull();
      expect(await contents(alice, conv, server)).toEqual(["the minute's one message"]);

      // Another, and signing out anyway: nothing of it is kept, nor sent.
      await box.fill("written, then signed out");
      await box.press("Enter");
      await held.waitFor();
      expect(await outbox(a, alice)).not.toBeNull();
      a.once("dialog", (d) => void d.accept());
      await a.getByRole("button", { name: `${alice.user.display_name} (profile)`, exact: true }).click();
      await a.getByRole("dialog").getByRole("button", { name: "Sign out" }).click();
      await a.getByRole("button", { name: "Sign in" }).waitFor();
      expect(await outbox(a, alice)).toBeNull();
    } finally {
      await server.stop();
    }
  });

  clientTest("a message written offline in a tab closed before the network came back is sent by another tab of the browser still open, once back", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    const context = a.context();
    const other = await context.newPage();
    await other.goto(`${s.base}/`);
    await other.getByRole("navigation", { name: "Conversations" }).waitFor();
    await context.setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    const box = a.getByRole("textbox", { name: "Message" });
    await box.fill("from the tab that closed");
    await box.press("Enter");
    await log(a).getByText("Not sent: offline.").waitFor();
    await a.close();
    await context.setOffline(false);
    await waitFor(async () => (await contents(alice, conv)).length === 1, 10_000);
    expect(await contents(alice, conv)).toEqual(["from the tab that closed"]);
    await waitFor(async () => (await outbox(other, alice)) === null, 5000);
  });

  // From an acceptance pass (2026-12-03): sends went again once back online, uploads did not ("Retry upload" was the only way).
  clientTest("a file picked while offline uploads by itself once back online, and goes with the message", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    await a.context().setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    await a.locator("input[type=file]").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("written on the train") });
    const retry = a.getByRole("button", { name: "Retry upload of notes.txt" });
    await retry.waitFor();
    await a.context().setOffline(false);
    await retry.waitFor({ state: "detached", timeout: 10_000 });
    await a.waitForFunction(() => !document.querySelector(".picks progress"));
    await a.getByRole("textbox", { name: "Message" }).fill("the notes");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await waitFor(async () => (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items.length === 1, 5000);
    const sent = (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items[0];
    expect([sent.content, sent.attachments.map((f: { filename: string }) => f.filename)]).toEqual(["the notes", ["notes.txt"]]);
  });

  clientTest("while it waits to reconnect, a page that gets the focus tries at once (not after its backoff)", async () => {
    const dir = tempDir();
    let server = await startServer({}, dir);
    const port = Number(new URL(server.base).port);
    try {
      const alice = await server.register(uniqueName("alice"));
      const a = await pageFor(alice, "/", server);
      await server.stop(false);
      const away = a.getByRole("status").filter({ hasText: "Reconnecting…" });
      await away.waitFor();
      await Bun.sleep(12_000); // the backoff at its cap
      server = await startServer({}, dir, port);
      // A new socket within half a second of the focus (its backoff would wait up to 10 s: a
      // chance of some 5 % that it tried in that half second anyway).
      const attempt = a.waitForEvent("websocket", { timeout: 500 });
      await a.evaluate(() => window.dispatchEvent(new Event("focus")));
      await attempt;
      await away.waitFor({ state: "hidden", timeout: 2000 });
    } finally {
      await server.stop();
    }
  }, 60_000);

  // Found by an acceptance pass (2026-12-03): a page that never had the conversation sent
  // what waited for it, got 403, and let it go without a word.
  clientTest("a message written offline for a group one is removed from before the next page sends it: that page says so, with its text to copy", async () => {
    const { alice, bob, group, a } = await aliceWithFriendsInAGroup("Left behind");
    const context = a.context();
    await context.setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    const box = a.getByRole("textbox", { name: "Message" });
    await box.fill("for the group, written offline");
    await box.press("Enter");
    await log(a).getByText("Not sent: offline.").waitFor();
    await a.close();
    // Bob, now the owner, removes her (Alice hands the group over first: she owns it).
    expect((await s.api("PATCH", `/api/conversations/${group.body.id}/members/${bob.user.id}`, { token: alice.token, body: { role: "owner" } })).status).toBeLessThan(300);
    expect((await s.api("DELETE", `/api/conversations/${group.body.id}/members/${alice.user.id}`, { token: bob.token })).status).toBe(204);
    await context.setOffline(false);
    const next = await context.newPage();
    await next.goto(`${s.base}/`);
    const notice = next.getByRole("alert").filter({ hasText: "You are no longer in “Left behind”" });
    const unsent = notice.getByRole("textbox", { name: "What you had typed there (not sent)" });
    await unsent.waitFor({ timeout: 10_000 });
    await expect(unsent.inputValue()).resolves.toBe("for the group, written offline");
    expect(await outbox(next, alice)).toBeNull();
  });

  // Found by an acceptance pass (2026-12-03): Enter sent the text at once and the file, whose
  // upload had failed offline, was dropped from the message without a word.
  clientTest("Enter while a file could not upload offline: the message waits for it and goes with it once back", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    await a.context().setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    await a.locator("input[type=file]").setInputFiles({ name: "plan.txt", mimeType: "text/plain", buffer: Buffer.from("the plan") });
    await a.getByRole("button", { name: "Retry upload of plan.txt" }).waitFor();
    await a.getByRole("textbox", { name: "Message" }).fill("the plan, attached");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await a.getByText("Sends once the files are uploaded.").waitFor();
    await a.context().setOffline(false);
    await waitFor(async () => (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items.length === 1, 10_000);
    const sent = (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items[0];
    expect([sent.content, sent.attachments.map((f: { filename: string }) => f.filename)]).toEqual(["the plan, attached", ["plan.txt"]]);
  });

  // Found by an acceptance pass (2026-12-03): the next page sent a refused message again, unasked.
  clientTest("a message the server refused (422) shows so after a reload, and is not sent again unless asked", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    const uploaded = a.waitForResponse((r) => r.url().includes("/api/uploads") && r.request().method() === "POST");
    await a.locator("input[type=file]").setInputFiles({ name: "once.txt", mimeType: "text/plain", buffer: Buffer.from("once") });
    const attachment = await (await uploaded).json();
    await a.waitForFunction(() => !document.querySelector(".picks progress"));
    // The same upload sent elsewhere first (another device): this page's send of it is refused.
    expect((await s.api("POST", `/api/conversations/${conv}/messages`, { token: alice.token, body: { content: "sent elsewhere", attachment_ids: [attachment.id] } })).status).toBe(201);
    await a.getByRole("textbox", { name: "Message" }).fill("refused here");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    const refused = log(a).locator(".msg.failed").filter({ hasText: "refused here" });
    await refused.getByText(/^Not sent: /).waitFor();
    let posts = 0;
    a.on("request", (r) => void (r.method() === "POST" && r.url().endsWith(`/api/conversations/${conv}/messages`) && posts++));
    await a.reload();
    await refused.getByText(/^Not sent: /).waitFor({ timeout: 5000 });
    await Bun.sleep(500);
    expect(posts).toBe(0);
    // Retry asks again (refused again, said again).
    await refused.getByRole("button", { name: "Retry" }).click();
    await waitFor(() => posts === 1, 5000);
  });

  // Found by an acceptance pass (2026-12-03): the other tab's send failed after the discard, and it sent it again.
  clientTest("a message discarded in one tab while another tab was sending it is not sent again by that tab", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a1 = await pageFor(alice, `/c/${conv}`);
    const context = a1.context();
    // Every send is held here until the test cuts it (as an unanswered server would, then a reset).
    const held: { page: Page; route: Route }[] = [];
    await context.route(`**/api/conversations/${conv}/messages`, (route) =>
      route.request().method() === "POST" ? void held.push({ page: route.request().frame().page(), route }) : route.continue());
    const cut = async (page: Page) => {
      await waitFor(() => held.some((h) => h.page === page), 5000);
      const i = held.findIndex((h) => h.page === page);
      await held.splice(i, 1)[0]!.route.abort("connectionreset");
    };
    await a1.getByRole("textbox", { name: "Message" }).fill("to be discarded");
    await a1.getByRole("textbox", { name: "Message" }).press("Enter");
    const a2 = await context.newPage();
    await a2.goto(`${s.base}/c/${conv}`);
    await log(a2).getByText("to be discarded").waitFor(); // a2 sends it too (it was kept)
    await cut(a1);
    await log(a1).getByText("Not sent: the server cannot be reached.").waitFor();
    a1.once("dialog", (d) => void d.accept());
    await log(a1).getByRole("button", { name: "Discard the message not sent" }).click();
    await log(a1).getByText("to be discarded").waitFor({ state: "hidden" });
    await cut(a2); // a2's send fails after the discard
    await context.unroute(`**/api/conversations/${conv}/messages`);
    await Bun.sleep(7000); // past the 5 s after which a held send goes again
    expect(await contents(alice, conv)).toEqual([]);
    expect(await log(a2).getByText("to be discarded").count()).toBe(0);
  }, 60_000);

  // Found by a review (2026-12-03): a send that failed on its way (here: its request cut) was
  // held, and one written after it went straight away, ahead of it.
  clientTest("a send that did not reach the server holds those written after it: they arrive in the order written", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    let cut = 0;
    await a.route(`**/api/conversations/${conv}/messages`, (route) => (route.request().method() === "POST" && cut++ === 0 ? route.abort("connectionreset") : route.continue()));
    const box = a.getByRole("textbox", { name: "Message" });
    await box.fill("A, cut on its way");
    await box.press("Enter");
    await log(a).getByText("Not sent: the server cannot be reached.").waitFor();
    await box.fill("B, written after");
    await box.press("Enter");
    await waitFor(async () => (await contents(alice, conv)).length === 2, 15_000);
    expect(await contents(alice, conv)).toEqual(["A, cut on its way", "B, written after"]);
    await settled(a);
    expect(await outbox(a, alice)).toBeNull();
  });

  clientTest("signing out in one tab asks about a message not sent in another; the group deleted elsewhere meanwhile (not the one open), what waited for it is kept in the notice's text to copy, not sent", async () => {
    const { alice, bob, group, a } = await aliceWithFriendsInAGroup("Soon without me");
    expect((await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "direct", user_id: bob.user.id } })).status).toBe(201);
    const second = await a.context().newPage();
    await second.goto(`${s.base}/c/${group.body.id}`);
    await log(second).waitFor();
    await a.context().setOffline(true);
    await second.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    const box = second.getByRole("textbox", { name: "Message" });
    await box.fill("written in the other tab");
    await box.press("Enter");
    await log(second).getByText("Not sent: offline.").waitFor();
    await convLink(second, bob.user.display_name).click(); // the group is not the one open when it goes
    // The first tab has nothing of its own waiting, and still asks.
    const asked: string[] = [];
    a.on("dialog", (d) => void (asked.push(d.message()), d.dismiss()));
    await a.getByRole("button", { name: `${alice.user.display_name} (profile)`, exact: true }).click();
    await a.getByRole("dialog").getByRole("button", { name: "Sign out" }).click();
    expect(asked).toEqual(["1 message not sent yet will be lost. Sign out anyway?"]);
    await a.close();

    // Alice deletes the group on another device meanwhile.
    const messagesBefore = await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=100`, { token: bob.token });
    expect(messagesBefore.body.items).toHaveLength(0);
    expect((await s.api("DELETE", `/api/conversations/${group.body.id}`, { token: alice.token })).status).toBe(204);
    await second.context().setOffline(false);
    const unsent = second.getByRole("alert").getByRole("textbox", { name: "What you had typed there (not sent)" });
    await unsent.waitFor({ timeout: 10_000 });
    await expect(unsent.inputValue()).resolves.toBe("written in the other tab");
    await Bun.sleep(300);
    expect(await outbox(second, alice)).toBeNull();
  });

  // Found by a read of the client (2026-12-03): the edit closed at Enter, and a failed save lost what was typed.
  clientTest("an edit saved while offline is not lost: back in the box, said so; Enter saves it once back", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const mine = await say(alice, conv, "first words");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("first words").waitFor();
    await a.context().setOffline(true);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ timeout: 3000 });
    const box = a.getByRole("textbox", { name: "Message" });
    await box.press("ArrowUp");
    await a.getByText("Editing your message").waitFor();
    await box.fill("better words, typed offline");
    await box.press("Enter");
    await a.getByRole("alert").filter({ hasText: "You are offline. Your edit is back in the box: Enter saves it, Escape drops it." }).waitFor();
    await a.getByText("Editing your message").waitFor();
    expect(await box.inputValue()).toBe("better words, typed offline");
    // A reaction made offline says what did not happen, and why ("The server cannot be reached." alone, before).
    await box.press("Escape");
    const theirs = await say(bob, conv, "react to me");
    expect(theirs.id).toBeTruthy();
    await a.context().setOffline(false);
    const shown = log(a).locator(".msg").filter({ hasText: "react to me" });
    await shown.waitFor();
    await a.context().setOffline(true);
    await shown.hover();
    await shown.getByRole("button", { name: "React", exact: true }).click();
    await shown.getByRole("button", { name: "React 👍" }).click();
    await a.getByRole("alert").filter({ hasText: "The reaction did not change. You are offline." }).waitFor();
    await box.press("ArrowUp");
    await box.fill("better words, typed offline");
    await a.context().setOffline(false);
    await a.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ state: "hidden", timeout: 10_000 });
    await box.press("Enter");
    await log(a).getByText("better words, typed offline").waitFor();
    await a.getByText("Editing your message").waitFor({ state: "detached" });
    const page = await s.api("GET", `/api/conversations/${conv}/messages?limit=10`, { token: alice.token });
    expect(page.body.items.find((m: { id: string }) => m.id === mine.id).content).toBe("better words, typed offline");
  });

  clientTest("a display name changed elsewhere shows after a reload (the session's copy is read again)", async () => {
    const alice = await s.register(uniqueName("alice"));
    const p = await pageFor(alice);
    const renamed = `Renamed ${uniqueName("a")}`;
    expect((await s.api("PATCH", "/api/users/me", { token: alice.token, body: { display_name: renamed } })).status).toBe(200);
    await p.reload();
    await p.getByRole("button", { name: `${renamed} (profile)`, exact: true }).waitFor({ timeout: 5000 });
  });
});

describe("reading and writing as a user does (found in a browser)", () => {
  /** Distance (px) from the view's bottom to the end of the message list. */
  const belowView = (p: Page) => log(p).evaluate((el: HTMLElement) => el.scrollHeight - el.scrollTop - el.clientHeight);
  /** A message of `b`'s carrying a `width`×`height` PNG. */
  async function sayImage(b: Account, conv: string, name: string, content: string, width = 200, height = 150) {
    const up = await fetch(`${s.base}/api/uploads?filename=${name}`, { method: "POST", headers: { authorization: `Bearer ${b.token}`, "content-type": "image/png" }, body: await png(width, height) });
    expect(up.status).toBe(201);
    const res = await s.api("POST", `/api/conversations/${conv}/messages`, { token: b.token, body: { content, attachment_ids: [((await up.json()) as { id: string }).id] } });
    expect(res.status).toBe(201);
  }
  const loaded = (p: Page, name: string) => p.waitForFunction((n) => (document.querySelector(`[role=log] img[alt='${n}']`) as any)?.naturalWidth > 0, name);

  clientTest("images that load after the list has rendered keep a reader at the end at the end (opened, and live)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 30; i++) await say(bob, conv, `line ${i}`);
    await sayImage(bob, conv, "first.png", "a photo");
    await sayImage(bob, conv, "second.png", "", 120, 300);
    const last = await say(bob, conv, "newest line");
    // Read already: the view opens at the end, not at a "New messages" divider.
    expect((await s.api("POST", `/api/conversations/${conv}/read`, { token: alice.token, body: { message_id: last.id } })).status).toBeLessThan(300);
    const a = await pageFor(alice);
    // Thumbnails come late, as on a slow link: the list renders (and scrolls to its end) first.
    await a.route("**/api/attachments/*/thumbnail*", async (route) => {
      await Bun.sleep(500);
      await route.continue();
    });
    await convLink(a, bob.user.display_name).click();
    await log(a).getByText("newest line").waitFor();
    await loaded(a, "first.png");
    await loaded(a, "second.png");
    await a.evaluate(() => new Promise((r) => window.requestAnimationFrame(r)));
    expect(await belowView(a)).toBeLessThan(2);
    expect(await a.getByRole("button", { name: "Jump to latest" }).count()).toBe(0);

    // One arriving live while the reader is at the end.
    await sayImage(bob, conv, "live.png", "just now", 300, 200);
    await loaded(a, "live.png");
    await a.evaluate(() => new Promise((r) => window.requestAnimationFrame(r)));
    expect(await belowView(a)).toBeLessThan(2);
    await log(a).getByText("just now").waitFor();
    await a.screenshot({ path: join(shots, "images-at-end.png") });
  });

  clientTest("a send made while scrolled up brings the view to the newest, the message in it", async () => {
    const a = await longHistory(120);
    // Up a little (the window stays), then far up (the window moves back from the end).
    for (const far of [false, true]) {
      await log(a).evaluate((el: HTMLElement, far) => (el.scrollTop = far ? 0 : el.scrollHeight - el.clientHeight - 1000), far);
      await a.getByRole("button", { name: "Jump to latest" }).waitFor();
      const text = far ? "sent from far up" : "sent from a little up";
      await a.getByRole("textbox", { name: "Message" }).fill(text);
      await a.getByRole("textbox", { name: "Message" }).press("Enter");
      await log(a).getByText(text).waitFor();
      await settled(a);
      await a.waitForFunction(() => {
        const el = document.querySelector("[role=log]");
        return el.scrollHeight - el.scrollTop - el.clientHeight < 2;
      }, undefined, { timeout: 10_000 }); // 3 s ran out once under CI's load
      await a.getByRole("button", { name: "Jump to latest" }).waitFor({ state: "detached" });
    }
  });

  clientTest("a friend's new display name shows live in the Friends dialog and in a group's Add friends", async () => {
    const { bob, carol, a } = await aliceWithFriendsInAGroup("Renames");
    const rename = async (who: Account, name: string) => expect((await s.api("PATCH", "/api/users/me", { token: who.token, body: { display_name: name } })).status).toBe(200);

    await a.getByRole("button", { name: "Friends", exact: true }).click();
    const list = a.getByRole("list", { name: "Friends list" });
    await list.getByText(bob.user.display_name, { exact: true }).waitFor();
    const bobsName = `Robert ${uniqueName("b")}`;
    await rename(bob, bobsName);
    await list.getByText(bobsName, { exact: true }).waitFor({ timeout: 5000 });
    await a.keyboard.press("Escape");

    await a.getByRole("button", { name: "Conversation settings" }).click();
    await a.getByRole("button", { name: `Add ${carol.user.display_name}` }).waitFor();
    const carolsName = `Caroline ${uniqueName("c")}`;
    await rename(carol, carolsName);
    await a.getByRole("button", { name: `Add ${carolsName}` }).waitFor({ timeout: 5000 });
  });

  clientTest("a friends read that began before a rename and lands after its user.update keeps the new name", async () => {
    const { alice, bob, a } = await aliceWithFriendsInAGroup("Late friends");
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    const list = a.getByRole("list", { name: "Friends list" });
    await list.getByText(bob.user.display_name, { exact: true }).waitFor();
    let read!: () => void;
    const wasRead = new Promise<void>((r) => (read = r));
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    let held = false;
    await a.route("**/api/friendships?status=accepted*", async (route) => {
      if (held) return route.continue();
      held = true;
      const response = await route.fetch(); // read by the server before the rename
      read();
      await answered; // and answered after its user.update
      await route.fulfill({ response });
    });
    // A friend request to Alice starts a friends read (friend.request).
    const dave = await s.register(uniqueName("dave"));
    expect((await s.api("POST", "/api/friendships", { token: dave.token, body: { friend_id: alice.user.id } })).status).toBe(201);
    await wasRead;
    const bobsName = `Robert ${uniqueName("b")}`;
    expect((await s.api("PATCH", "/api/users/me", { token: bob.token, body: { display_name: bobsName } })).status).toBe(200);
    await list.getByText(bobsName, { exact: true }).waitFor({ timeout: 5000 });
    answer();
    await a.getByRole("list", { name: "Friend requests" }).getByText(dave.user.display_name, { exact: true }).waitFor();
    expect(await list.getByText(bobsName, { exact: true }).count()).toBe(1);
    expect(await list.getByText(bob.user.display_name, { exact: true }).count()).toBe(0);
  });

  clientTest("two people of a conversation with the same display name: their messages show their usernames beside it", async () => {
    const { alice, bob, carol, group, a } = await aliceWithFriendsInAGroup("Same names");
    await say(alice, group.body.id, "from alice");
    await say(bob, group.body.id, "from the real bob");
    const handles = () => a.evaluate(() => [...document.querySelectorAll("[role=log] .msg .handle")].map((h) => h.textContent));
    await log(a).getByText("from the real bob").waitFor();
    expect(await handles()).toEqual([]);
    // Carol joins and takes Bob's display name.
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [carol.user.id] } })).status).toBeLessThan(300);
    expect((await s.api("PATCH", "/api/users/me", { token: carol.token, body: { display_name: bob.user.display_name } })).status).toBe(200);
    await say(carol, group.body.id, "from the other bob");
    await log(a).getByText("from the other bob").waitFor();
    await a.waitForFunction(() => document.querySelectorAll("[role=log] .msg .handle").length === 2);
    expect(await handles()).toEqual([`@${bob.user.username}`, `@${carol.user.username}`]);
    await a.screenshot({ path: join(shots, "same-names.png") });
  });

  clientTest("Escape in Search with a query typed closes the dialog", async () => {
    const alice = await s.register(uniqueName("alice"));
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "Search", exact: true }).click();
    await a.getByRole("searchbox", { name: "Search messages" }).fill("anything at all");
    await a.getByRole("status").filter({ hasText: "Nothing found." }).waitFor();
    await a.keyboard.press("Escape");
    await a.getByRole("dialog", { name: "Search" }).waitFor({ state: "detached", timeout: 2000 });
  });

  clientTest("one of a thing is singular: 1 member, 1 friend request", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Just me", member_ids: [] } });
    expect(group.status).toBe(201);
    expect((await s.api("POST", "/api/friendships", { token: bob.token, body: { friend_id: alice.user.id } })).status).toBe(201);
    const a = await pageFor(alice, `/c/${group.body.id}`);
    await a.locator(".conversation .sub").filter({ hasText: /^1 member$/ }).waitFor();
    const friendsButton = a.getByRole("button", { name: "Friends", exact: true });
    await a.waitForFunction(() => document.querySelector("[aria-description]"));
    expect(await friendsButton.getAttribute("aria-description")).toBe("1 friend request");
  });

  clientTest("first use: a new account is told what to do, Choose a display name opens Profile; with a conversation, the usual empty pane", async () => {
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    contexts.push(context);
    const p = await context.newPage();
    p.on("pageerror", (e) => pageErrors.push(e.message));
    await p.goto(s.base + "/");
    const name = uniqueName("newbie");
    await p.getByRole("textbox", { name: "Username" }).fill(name);
    await p.getByRole("textbox", { name: "Password" }).fill("password123");
    await p.getByRole("button", { name: "Create account" }).click();
    const welcome = p.getByRole("heading", { name: "Welcome to Parley" });
    await welcome.waitFor();
    // Said once: the sidebar's own "No conversations yet" is not shown beside it.
    expect(await p.getByText("No conversations yet").isVisible()).toBe(false);
    // Nothing in it repeats the words tests and people find the buttons and the user by.
    for (const words of ["Friends", "New conversation", "Search", name]) expect(await p.locator(".welcome").getByText(words).count()).toBe(0);
    await p.screenshot({ path: join(shots, "welcome.png") });

    await p.getByRole("button", { name: "Choose a display name" }).click();
    const dialog = p.getByRole("dialog", { name: "Profile" });
    await dialog.getByRole("textbox", { name: "Display name" }).fill("Newbie Person");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await dialog.getByRole("button", { name: "Close" }).click();
    // Named now: that step goes, the rest stays until there is a conversation.
    await p.getByRole("button", { name: "Choose a display name" }).waitFor({ state: "detached" });
    expect(await welcome.isVisible()).toBe(true);

    const login = await s.api("POST", "/api/auth/login", { body: { username: name, password: "password123" } });
    const newbie: Account = { token: login.body.token, user: login.body.user, password: "password123" };
    const bob = await s.register(uniqueName("bob"));
    await direct(bob, newbie);
    await welcome.waitFor({ state: "detached" });
    await p.getByText("Pick a conversation, or start one.").waitFor();
  });

  // Found by an acceptance pass: a phone showed only the sidebar's "No conversations yet" (the welcome's pane was out of sight).
  clientTest("on a phone, a first use shows the welcome's steps under the list's buttons; gone with the first conversation", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const p = await pageFor(alice, "/", s, { width: 390, height: 760 });
    const welcome = p.getByRole("heading", { name: "Welcome to Parley" });
    await welcome.waitFor();
    expect(await welcome.isVisible()).toBe(true);
    const choose = p.getByRole("button", { name: "Choose a display name" });
    expect(await choose.isVisible()).toBe(true);
    expect(await p.getByText("No conversations yet").isVisible()).toBe(false);
    const [actions, steps] = [(await p.getByRole("button", { name: "Search", exact: true }).boundingBox())!, (await welcome.boundingBox())!];
    expect(steps.y).toBeGreaterThanOrEqual(actions.y + actions.height);
    await p.screenshot({ path: join(shots, "welcome-phone.png") });
    await choose.click();
    await p.getByRole("dialog", { name: "Profile" }).waitFor();
    await p.keyboard.press("Escape");
    await direct(bob, alice);
    await welcome.waitFor({ state: "detached" });
    await convLink(p, bob.user.display_name).waitFor();
    // Back to one pane: the list alone (the pane beside it out of sight again).
    expect((await p.locator("main.main").boundingBox())!.width).toBeLessThanOrEqual(1);
  });

  // Found by an acceptance pass: removed from her only group, someone with two friends was told to send friend requests.
  clientTest("the welcome of someone with friends but no conversation says to start one with a friend, not to make friends", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const p = await pageFor(alice);
    await p.getByRole("heading", { name: "Welcome to Parley" }).waitFor();
    // Under either contact policy, the steps start with finding people.
    const makeFriends = p.locator(".welcome li").filter({ hasText: /^(Send the people you talk to a friend request|Find the people you talk to by name)/ });
    await makeFriends.waitFor();
    await friends(alice, bob);
    await p.getByText("Start a conversation with a friend, or a group with several (the buttons above the list).").waitFor();
    expect(await makeFriends.count()).toBe(0);
  });

  clientTest("the sidebar says there is nothing yet only once the list is read (it said so while loading)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    await direct(alice, bob);
    const context = await browser!.newContext({ viewport: { width: 390, height: 760 } });
    contexts.push(context);
    await context.addInitScript((v) => localStorage.setItem("parley.session", v), JSON.stringify({ token: alice.token, expires_at: new Date(Date.now() + 86_400_000).toISOString(), user: alice.user }));
    const p = await context.newPage();
    p.on("pageerror", (e) => pageErrors.push(e.message));
    // The list's read and the socket's ticket (whose socket would send the list) held.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await p.route(/\/api\/(conversations\?|ws\/ticket)/, async (route) => {
      await held;
      await route.continue();
    });
    await p.goto(s.base + "/");
    await p.getByRole("navigation", { name: "Conversations" }).waitFor();
    await Bun.sleep(400);
    expect(await p.getByText("No conversations yet").count()).toBe(0);
    release();
    await p.getByRole("link", { name: new RegExp(bob.user.display_name) }).waitFor();
    expect(await p.getByText("No conversations yet").count()).toBe(0);
  });

  clientTest("sign-in: Create account checks the required fields; rate limited says when to try again; signed out, Username has the focus", async () => {
    const alice = await s.register(uniqueName("alice"));
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    contexts.push(context);
    const p = await context.newPage();
    const asked: string[] = [];
    p.on("request", (r) => r.url().includes("/api/auth/") && asked.push(r.url()));
    await p.goto(s.base + "/");
    await p.getByRole("button", { name: "Create account" }).click();
    // The browser's own check, as for "Sign in": the empty field has the focus; nothing was sent.
    await p.waitForFunction(() => document.activeElement?.getAttribute("name") === "username");
    expect(await p.getByRole("textbox", { name: "Username" }).evaluate((el: HTMLElement) => el.validity.valueMissing)).toBe(true);
    await Bun.sleep(300);
    expect(asked).toEqual([]);
    expect(await p.getByRole("alert").count()).toBe(0);
    // The field at fault, by name (it said both rules whichever was broken: a usability pass).
    await p.getByRole("textbox", { name: "Username" }).fill(uniqueName("fresh"));
    await p.getByRole("textbox", { name: "Password" }).fill("short");
    await p.getByRole("button", { name: "Create account" }).click();
    await p.getByRole("alert").filter({ hasText: /^The password must have 8–128 characters\.$/ }).waitFor();
    await p.getByRole("textbox", { name: "Username" }).fill("has space");
    await p.getByRole("textbox", { name: "Password" }).fill("long enough password");
    await p.getByRole("button", { name: "Create account" }).click();
    await p.getByRole("alert").filter({ hasText: /^Usernames are 3–32 letters, digits, _ or \. \(no spaces\)\.$/ }).waitFor();

    // Past LOGIN_MAX_FAILURES (10) in LOGIN_WINDOW_SECONDS (900): the server's Retry-After, in words.
    for (let i = 0; i < 10; i++) await s.api("POST", "/api/auth/login", { body: { username: alice.user.username, password: "not-the-password" } });
    await p.getByRole("textbox", { name: "Username" }).fill(alice.user.username);
    await p.getByRole("textbox", { name: "Password" }).fill("still-not-it");
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByRole("alert").filter({ hasText: "Too many attempts: try again in 15 minutes." }).waitFor();
    await p.screenshot({ path: join(shots, "login-rate-limited.png") });

    // Signed out: the form has the focus, as on a first load.
    const bob = await s.register(uniqueName("bob"));
    const b = await pageFor(bob);
    await b.getByRole("button", { name: "Profile" }).click();
    await b.getByRole("button", { name: "Sign out" }).click();
    await b.getByRole("textbox", { name: "Username" }).waitFor();
    await b.waitForFunction(() => document.activeElement?.getAttribute("name") === "username");
    // At once: with effects running ~100 ms late (a busy machine), the focus came after the
    // keyboard had moved on, and took what was typed into Password.
    await b.evaluate(() => (window.requestAnimationFrame = () => 0));
    await b.getByRole("textbox", { name: "Username" }).fill(bob.user.username);
    await b.getByLabel("Password").fill(bob.password);
    await b.getByRole("button", { name: "Sign in" }).click();
    await b.getByRole("button", { name: "Profile" }).click();
    await b.getByRole("button", { name: "Sign out" }).click();
    await b.getByRole("textbox", { name: "Username" }).waitFor();
    await b.getByLabel("Password").focus();
    await b.keyboard.type("typed at once, slowly", { delay: 15 });
    expect(await b.getByLabel("Password").inputValue()).toBe("typed at once, slowly");
  });

  clientTest("keyboard only: a message's Reply, React, Edit and Delete are reached with Tab and the arrows", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "plain words from Bob");
    await say(alice, conv, "plain words of mine");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("plain words of mine").waitFor();
    // Opened and caught up (the socket's first catch-up may render the list again).
    await settled(a);
    await a.waitForFunction(() => !document.querySelector("[role=log] .loading"));
    // A message by its text (its accessible name is who and when), a control by its name.
    const focused = () => a.evaluate(() => (document.activeElement?.getAttribute("role") !== "article" && document.activeElement?.getAttribute("aria-label")) || document.activeElement?.textContent || "");
    // As on a busy machine (or in a tab behind another), effects run ~100 ms after a render:
    // none may then take the focus from where the keyboard has gone meanwhile.
    await a.evaluate(() => (window.requestAnimationFrame = () => 0));
    // The log, then the newest message (one tab stop for the list, not one per message); its tools show.
    await log(a).focus();
    await a.keyboard.press("Tab");
    expect(await focused()).toContain("plain words of mine");
    // Named by who and when, for a screen reader landing on it (it had no name).
    expect(await a.evaluate(() => document.activeElement?.getAttribute("aria-label"))).toStartWith(`${alice.user.display_name}, `);
    expect(await a.evaluate(() => getComputedStyle(document.activeElement).outlineStyle)).not.toBe("none");
    await a.keyboard.press("Tab");
    expect(await focused()).toBe("Reply");
    await a.screenshot({ path: join(shots, "keyboard-tools.png") });
    await a.keyboard.press("Enter");
    await a.getByText(`Replying to ${alice.user.display_name}`).waitFor();
    await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Message");
    await a.keyboard.press("Escape");
    // Back in the list, the keyboard is where it was.
    await log(a).focus();
    await a.keyboard.press("Tab");
    expect(await focused()).toContain("plain words of mine");
    // Named by who and when, for a screen reader landing on it (it had no name).
    expect(await a.evaluate(() => document.activeElement?.getAttribute("aria-label"))).toStartWith(`${alice.user.display_name}, `);
    for (let i = 0; i < 3; i++) await a.keyboard.press("Tab");
    expect(await focused()).toBe("Edit");
    await a.keyboard.press("Enter");
    await a.getByText("Editing your message").waitFor();
    await a.keyboard.press("Escape");

    // Up to Bob's message: React, a reaction, and the focus stays on the message's tools.
    await log(a).focus();
    await a.keyboard.press("Tab");
    await a.keyboard.press("ArrowUp");
    expect(await focused()).toContain("plain words from Bob");
    await a.keyboard.press("Tab");
    await a.keyboard.press("Tab");
    expect(await focused()).toBe("React");
    await a.keyboard.press("Enter");
    expect(await focused()).toBe("React 👍"); // the open picker has the focus
    await a.keyboard.press("Escape"); // closes it, back on React
    expect([await focused(), await a.getByRole("group", { name: "Reactions" }).count()]).toEqual(["React", 0]);
    await a.keyboard.press("Enter");
    expect(await focused()).toBe("React 👍");
    // Right and Left move between the reactions (Right did nothing), round the ends.
    await a.keyboard.press("ArrowRight");
    expect(await focused()).toBe("React ❤️");
    await a.keyboard.press("ArrowLeft");
    await a.keyboard.press("ArrowLeft");
    expect(await focused()).toBe("React 😢");
    await a.keyboard.press("Home");
    expect(await focused()).toBe("React 👍");
    await a.keyboard.press("Enter");
    await log(a).getByRole("button", { name: "👍 1" }).waitFor();
    expect(await focused()).toBe("React");
    // Shift+Tab back to the message; Down to mine; its Delete.
    await a.keyboard.press("Shift+Tab");
    await a.keyboard.press("Shift+Tab");
    await a.keyboard.press("Shift+Tab");
    expect(await focused()).toContain("plain words from Bob");
    await a.keyboard.press("ArrowDown");
    a.once("dialog", (d) => void d.accept());
    for (let i = 0; i < 5 && (await focused()) !== "Delete"; i++) await a.keyboard.press("Tab");
    await a.keyboard.press("Enter");
    await log(a).getByText("Message deleted").waitFor();
    // The keyboard stays on the message, whose tools went with it (it fell to <body>).
    await a.waitForFunction(() => document.activeElement?.getAttribute("role") === "article" && document.activeElement.textContent.includes("Message deleted"));
  });

  clientTest("keyboard: removing or adding a member keeps the focus in the list (the next row's button), not on <body>", async () => {
    const { alice, bob, carol, group, a } = await aliceWithFriendsInAGroup("Focus team");
    const dave = await s.register(uniqueName("dave"));
    await friends(alice, dave);
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [carol.user.id] } })).status).toBeLessThan(300);
    await a.getByRole("button", { name: "Conversation settings" }).click();
    const active = () => a.evaluate(() => document.activeElement?.getAttribute("aria-label") ?? document.activeElement?.tagName);
    const members = a.getByRole("list", { name: "Members" });
    await members.getByRole("button", { name: `Remove ${carol.user.display_name}` }).waitFor();
    // Members are listed in the order they joined: Bob's row, then Carol's takes its place.
    await members.getByRole("button", { name: `Remove ${bob.user.display_name}` }).focus();
    // The lists are never emptied while they are read again after a change (every friend showed
    // as one to add, and the members as none, for a moment: CI caught a keyboard on the wrong row).
    await a.evaluate(() => {
      const w = window as any;
      w.__emptied = false;
      new MutationObserver(() => {
        const list = document.querySelector("dialog [aria-label=Members]");
        if (!list || list.children.length < 2) w.__emptied = true;
      }).observe(document.querySelector("dialog")!, { childList: true, subtree: true });
    });
    await a.keyboard.press("Enter");
    await members.getByRole("button", { name: `Remove ${bob.user.display_name}` }).waitFor({ state: "detached" });
    await a.waitForFunction((name) => document.activeElement?.getAttribute("aria-label") === name, `Remove ${carol.user.display_name}`).catch(async () => expect(await active()).toBe(`Remove ${carol.user.display_name}`));
    // Adding: the next friend's Add.
    const addBob = a.getByRole("button", { name: `Add ${bob.user.display_name}` });
    await addBob.focus();
    const next = await a.evaluate(() => [...document.querySelectorAll("dialog button")].map((b: any) => b.getAttribute("aria-label")).filter((l: string) => l?.startsWith("Add ")));
    await a.keyboard.press("Enter");
    await addBob.waitFor({ state: "detached" });
    const expected = next[next.indexOf(`Add ${bob.user.display_name}`) + 1] ?? next[next.indexOf(`Add ${bob.user.display_name}`) - 1];
    expect(expected).toBeTruthy();
    await a.waitForFunction((name) => document.activeElement?.getAttribute("aria-label") === name, expected).catch(async () => expect(await active()).toBe(expected));
    // The last friend added, the list is empty: the focus goes to the box above it that finds
    // more people (this suite's server is open: "Find people to add"; it fell to <body>, then to
    // the dialog).
    await a.getByRole("button", { name: `Add ${dave.user.display_name}` }).focus();
    await a.keyboard.press("Enter");
    await a.getByRole("button", { name: `Add ${dave.user.display_name}` }).waitFor({ state: "detached" });
    expect(await a.getByRole("button", { name: /^Add / }).count()).toBe(0);
    await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Find people to add", undefined, { timeout: 3000 }).catch(async () => expect(await active()).toBe("Find people to add"));
    await Bun.sleep(300);
    expect(await a.evaluate(() => (window as any).__emptied)).toBe(false);
  });

  clientTest("more unread than a page: the conversation opens at the first unread, under the divider, and stays unread until the reader reaches the end", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 5; i++) await say(alice, conv, `read ${i}`);
    for (let i = 0; i < 120; i++) await say(bob, conv, `unread ${i}`);
    const a = await pageFor(alice);
    await a.getByRole("link", { name: new RegExp(`^${bob.user.display_name}, 120 unread$`) }).click();
    // The divider stands right before the first unread message, with the end of what was read above it.
    await log(a).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    expect(await a.evaluate(() => document.querySelector("[role=log] .divider")?.nextElementSibling?.textContent ?? "")).toContain("unread 0");
    await log(a).getByText("read 4", { exact: true }).waitFor();
    await expect(log(a).getByText("unread 0", { exact: true }).isVisible()).resolves.toBe(true);
    await a.screenshot({ path: join(shots, "opened-at-first-unread.png") });
    // Nothing marked read yet: the reader has not seen the rest.
    await Bun.sleep(300);
    await a.getByRole("link", { name: new RegExp(`^${bob.user.display_name}, 120 unread$`) }).waitFor();
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count).toBe(120);
    // One scroll down loads the rest, but the reader is not at the end yet: still nothing read.
    await log(a).evaluate((el: HTMLElement) => (el.scrollTop = el.scrollHeight));
    await log(a).getByText("unread 119", { exact: true }).waitFor({ state: "attached" });
    await Bun.sleep(300);
    expect(await log(a).evaluate((el: HTMLElement) => el.scrollHeight - el.scrollTop - el.clientHeight)).toBeGreaterThan(200);
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count).toBe(120);
    // Scrolling on to the end; there, all read.
    for (let i = 0; i < 20 && !(await log(a).getByText("unread 119", { exact: true }).isVisible()); i++) {
      await log(a).evaluate((el: HTMLElement) => (el.scrollTop = el.scrollHeight));
      await Bun.sleep(150);
    }
    await log(a).getByText("unread 119", { exact: true }).waitFor();
    // Rendered is not read: the reader reaches the end.
    await log(a).evaluate((el: HTMLElement) => (el.scrollTop = el.scrollHeight));
    await a.getByRole("link", { name: bob.user.display_name, exact: true }).waitFor();
    for (let i = 0; i < 50 && (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count !== 0; i++) await Bun.sleep(50);
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count).toBe(0);
  }, 60_000);

  // Found by a usability pass (2026-12-02): back to a thread loaded earlier, everything was
  // marked read at once while the view stood at the divider, the rest unseen below it.
  clientTest("back to a conversation loaded earlier with more unread than fit: opened at the divider, read only once the reader reaches the end", async () => {
    const { alice, bob, conv, a } = await aliceAwayFromDirect("Meanwhile");
    for (let i = 0; i < 40; i++) await say(bob, conv, `unread ${i}`);
    await convLink(a, `${bob.user.display_name}, 40 unread`).waitFor({ timeout: 5000 });
    await convLink(a, `${bob.user.display_name}, 40 unread`).click();
    await log(a).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    await Bun.sleep(300);
    const unread = async () => (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count;
    expect(await log(a).evaluate((el: HTMLElement) => el.scrollHeight - el.scrollTop - el.clientHeight)).toBeGreaterThan(200);
    expect(await unread()).toBe(40);
    await log(a).evaluate((el: HTMLElement) => (el.scrollTop = el.scrollHeight));
    for (let i = 0; i < 50 && (await unread()) !== 0; i++) await Bun.sleep(50);
    expect(await unread()).toBe(0);
  });

  clientTest("back to a conversation loaded earlier with a few unread that fit: read at once", async () => {
    const { alice, bob, conv, a } = await aliceAwayFromDirect("Meanwhile");
    await say(bob, conv, "just one");
    await convLink(a, `${bob.user.display_name}, 1 unread`).click();
    await log(a).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    await convLink(a, bob.user.display_name).waitFor({ timeout: 5000 });
    for (let i = 0; i < 50 && (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count !== 0; i++) await Bun.sleep(50);
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count).toBe(0);
  });

  /** Alice's page on 40 messages with Bob, scrolled 600 px up from the end ("Jump to latest" shown). */
  async function scrolledUp() {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 40; i++) await say(i % 2 ? alice : bob, conv, `line ${i}`);
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("line 39", { exact: true }).waitFor();
    await log(a).evaluate((el: HTMLElement) => (el.scrollTop = el.scrollHeight - el.clientHeight - 600));
    await a.getByRole("button", { name: "Jump to latest" }).waitFor();
    return { alice, bob, conv, a };
  }

  // The tests below were found by a usability pass (2026-12-02).
  const activeText = (p: Page) => p.evaluate(() => document.activeElement?.textContent ?? "");

  clientTest("a search result's message takes the keyboard, opened from another conversation or the open one (the message box or Search kept it)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Elsewhere", member_ids: [bob.user.id] } });
    expect(group.status).toBe(201);
    await say(bob, conv, "the quokka question");
    for (let i = 0; i < 5; i++) await say(bob, conv, `filler ${i}`);
    const a = await pageFor(alice, `/c/${group.body.id}`);
    for (const from of ["another conversation", "the open one"]) {
      await a.getByRole("button", { name: "Search", exact: true }).click();
      const box = a.getByRole("searchbox", { name: "Search messages" });
      await box.fill("quokka");
      await a.locator("button.result").first().waitFor();
      await box.press("ArrowDown");
      await a.keyboard.press("Enter");
      await a.getByRole("dialog", { name: "Search" }).waitFor({ state: "detached" });
      await a.waitForFunction(() => document.activeElement?.getAttribute("role") === "article", undefined, { timeout: 5000 }).catch(() => {});
      expect({ from, focused: await activeText(a) }).toEqual({ from, focused: expect.stringContaining("the quokka question") });
    }
  });

  clientTest("a role chosen with the keyboard is applied on Enter, not on each arrow, and the select keeps the focus", async () => {
    const { alice, bob, group, a } = await aliceWithFriendsInAGroup("Roles by keyboard");
    await a.getByRole("button", { name: "Conversation settings" }).click();
    const role = a.getByRole("combobox", { name: `Role of ${bob.user.display_name}` });
    await role.focus();
    await a.keyboard.press("ArrowUp");
    expect(await role.inputValue()).toBe("admin");
    await a.getByRole("button", { name: `Save role of ${bob.user.display_name}` }).waitFor();
    await a.screenshot({ path: join(shots, "role-chosen.png") });
    await Bun.sleep(300);
    const bobsRole = async () => (await s.api("GET", `/api/conversations/${group.body.id}/members`, { token: alice.token })).body.items.find((m: any) => m.user.id === bob.user.id).role;
    expect(await bobsRole()).toBe("member");
    await a.keyboard.press("Enter");
    await waitFor(async () => (await bobsRole()) === "admin", 5000);
    await a.getByRole("button", { name: `Save role of ${bob.user.display_name}` }).waitFor({ state: "detached" });
    await a.waitForFunction((name) => document.activeElement?.getAttribute("aria-label") === name, `Role of ${bob.user.display_name}`, { timeout: 3000 });
  });

  clientTest("the settings' group name follows a rename made elsewhere until the manager types (Rename sent the stale one back)", async () => {
    const { alice, group, a } = await aliceWithFriendsInAGroup("Book club");
    await a.getByRole("button", { name: "Conversation settings" }).click();
    const name = a.getByRole("textbox", { name: "Group name" });
    expect(await name.inputValue()).toBe("Book club");
    expect((await s.api("PATCH", `/api/conversations/${group.body.id}`, { token: alice.token, body: { title: "Book club, December" } })).status).toBe(200);
    await a.waitForFunction(() => (document.querySelector('input[aria-label="Group name"]') as any)?.value === "Book club, December", undefined, { timeout: 5000 });
    await name.fill("Book club 2027");
    expect((await s.api("PATCH", `/api/conversations/${group.body.id}`, { token: alice.token, body: { title: "Someone else's" } })).status).toBe(200);
    await convLink(a, "Someone else's").waitFor();
    expect(await name.inputValue()).toBe("Book club 2027"); // what was typed stays
  });

  clientTest("the keyboard stays in the Friends dialog after Accept, and Message puts it in the new conversation's message box", async () => {
    const [alice, dave] = [await s.register(uniqueName("alice")), await s.register(uniqueName("dave"))];
    expect((await s.api("POST", "/api/friendships", { token: dave.token, body: { friend_id: alice.user.id } })).status).toBe(201);
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    await a.getByRole("button", { name: `Accept ${dave.user.display_name}` }).focus();
    await a.keyboard.press("Enter");
    await a.getByRole("list", { name: "Friends list" }).getByText(dave.user.display_name, { exact: true }).waitFor();
    await a.waitForFunction(() => document.activeElement !== document.body && !!document.activeElement?.closest("dialog"), undefined, { timeout: 3000 });
    await a.getByRole("button", { name: `Message ${dave.user.display_name}` }).focus();
    await a.keyboard.press("Enter");
    await a.getByRole("dialog", { name: "Friends" }).waitFor({ state: "detached" });
    await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Message", undefined, { timeout: 3000 });
  });

  clientTest("a reply to a message of files only quotes its file's name (the quote was empty)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await sayImage(bob, conv, "holiday.png", "");
    const a = await pageFor(alice, `/c/${conv}`);
    const article = log(a).getByRole("article").filter({ has: a.getByRole("img", { name: "holiday.png" }) });
    await article.hover();
    await article.getByRole("button", { name: "Reply" }).click();
    await a.getByText(`Replying to ${bob.user.display_name}: File: holiday.png`).waitFor();
    await a.getByRole("textbox", { name: "Message" }).fill("nice one");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await log(a).getByRole("button", { name: `${bob.user.display_name}: File: holiday.png` }).waitFor();
  });

  clientTest("a search result deleted while the dialog is open says so, not its text; a picker open on a deleted message closes", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const secret = await say(bob, conv, "the pineapple code is 4711");
    const other = await say(bob, conv, "react to me");
    const a = await pageFor(alice, `/c/${conv}`);
    const article = log(a).getByRole("article").filter({ hasText: "react to me" });
    await article.hover();
    await article.getByRole("button", { name: "React" }).click();
    const picker = a.locator(".picker");
    await picker.waitFor();
    expect((await s.api("DELETE", `/api/messages/${other.id}`, { token: bob.token })).status).toBeLessThan(300);
    await picker.waitFor({ state: "detached", timeout: 5000 });
    await a.getByRole("button", { name: "Search", exact: true }).click();
    await a.getByRole("searchbox", { name: "Search messages" }).fill("pineapple");
    const result = a.locator("button.result").filter({ hasText: "4711" });
    await result.waitFor();
    expect((await s.api("DELETE", `/api/messages/${secret.id}`, { token: bob.token })).status).toBeLessThan(300);
    await a.locator("button.result").filter({ hasText: "Message deleted" }).waitFor({ timeout: 5000 });
    await a.screenshot({ path: join(shots, "search-deleted.png") });
    expect(await a.locator("button.result").filter({ hasText: "4711" }).count()).toBe(0);
  });

  clientTest("Home in a long history keeps the keyboard on a message as older pages load (the nodes were made anew and it fell to <body>)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await Promise.all(Array.from({ length: 4 }, async (_, k) => { for (let i = 0; i < 60; i++) await say(k % 2 ? alice : bob, conv, `long ${k}-${i}`); }));
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByRole("article").last().waitFor();
    await settled(a);
    await log(a).focus();
    await a.keyboard.press("Tab");
    expect(await a.evaluate(() => document.activeElement?.getAttribute("role"))).toBe("article");
    for (let round = 0; round < 6; round++) {
      await a.keyboard.press("Home");
      await Bun.sleep(400);
      expect(await a.evaluate(() => document.activeElement?.getAttribute("role") ?? document.activeElement?.tagName)).toBe("article");
    }
    await log(a).getByText("This is the start of the conversation.").waitFor({ timeout: 10_000 });
  }, 90_000);

  clientTest("Profile: Saved. goes once a field is edited again", async () => {
    const alice = await s.register(uniqueName("alice"));
    const a = await pageFor(alice);
    await a.getByRole("button", { name: `${alice.user.display_name} (profile)`, exact: true }).click();
    const name = a.getByRole("textbox", { name: "Display name" });
    await name.fill(`Alice ${uniqueName("x")}`);
    await a.getByRole("button", { name: "Save", exact: true }).click();
    await a.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await name.fill("another, not saved");
    await a.getByRole("status").filter({ hasText: "Saved." }).waitFor({ state: "detached", timeout: 2000 });
  });

  clientTest("a message that arrives while the reader is scrolled up is not read yet (no Seen for its sender); reaching the end reads it", async () => {
    const { alice, bob, conv, a } = await scrolledUp();
    await say(bob, conv, "while you were up");
    await log(a).getByText("while you were up", { exact: true }).waitFor({ state: "attached" });
    await Bun.sleep(300);
    const unread = async () => (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count;
    expect(await unread()).toBe(1);
    expect((await s.api("GET", `/api/conversations/${conv}/messages?limit=1`, { token: bob.token })).body.items[0].read_count).toBe(0);
    await a.getByRole("link", { name: new RegExp(`^${bob.user.display_name}, 1 unread$`) }).waitFor();
    await log(a).evaluate((el: HTMLElement) => (el.scrollTop = el.scrollHeight));
    for (let i = 0; i < 60 && (await unread()) !== 0; i++) await Bun.sleep(50);
    expect(await unread()).toBe(0);
  });

  clientTest("a scroll up stays up though the list renders before its scroll event comes (a socket's frame, a focus): it went back to the end", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 40; i++) await say(i % 2 ? alice : bob, conv, `line ${i}`);
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("line 39", { exact: true }).waitFor();
    const top = await log(a).evaluate((el: HTMLElement) => {
      el.scrollTop = el.scrollHeight - el.clientHeight - 600;
      // A message focused without a scroll: the list renders at once, its scroll event comes at the next frame.
      (el.querySelectorAll("[role=article]")[10] as HTMLElement).focus({ preventScroll: true });
      return el.scrollTop;
    });
    await a.getByRole("button", { name: "Jump to latest" }).waitFor({ timeout: 5000 });
    expect(await log(a).evaluate((el: HTMLElement) => el.scrollTop)).toBe(top);
  });

  clientTest("signed out, the address is the list's; a request the other side rejected leaves Friends when it opens; a switcher search that finds nothing says so", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).waitFor();
    // Quick switcher: nothing by that name.
    await a.keyboard.press("Control+k");
    await a.getByRole("combobox", { name: "Conversation name" }).fill("zzz-no-such-name");
    await a.getByText("No conversation matches “zzz-no-such-name”.").waitFor();
    await a.keyboard.press("Escape");
    // A request Carol rejects: no event reaches Alice, the dialog reads the list when it opens.
    const carol = await s.register(uniqueName("carol"));
    const sent = await s.api("POST", "/api/friendships", { token: alice.token, body: { friend_id: carol.user.id } });
    expect(sent.status).toBe(201);
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    await a.getByRole("list", { name: "Sent requests" }).getByText(carol.user.display_name, { exact: true }).waitFor();
    await a.keyboard.press("Escape");
    expect((await s.api("PATCH", `/api/friendships/${sent.body.id}/reject`, { token: carol.token })).status).toBe(200);
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    await a.getByRole("list", { name: "Sent requests" }).waitFor({ state: "detached" });
    await a.keyboard.press("Escape");
    // Signing out leaves the conversation's address behind.
    await a.getByRole("button", { name: "Profile" }).click();
    await a.getByRole("button", { name: "Sign out" }).click();
    await a.getByRole("textbox", { name: "Username" }).waitFor();
    expect(new URL(a.url()).pathname).toBe("/");
  });

  clientTest("an edit typed at once after Edit, in a tab behind another of the same conversation, is the one saved", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const mine = await say(alice, conv, "first words");
    const a = await pageFor(alice, `/c/${conv}`);
    await settled(a);
    // A tab behind another runs no animation frames (Chromium's headless tabs here all count as
    // in front, so the page is made to do as a hidden one does): Preact's effects then run
    // ~100 ms late, after the text typed at once.
    await a.evaluate(() => (window.requestAnimationFrame = () => 0));
    const second = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("first words").hover();
    await log(a).getByRole("button", { name: "Edit" }).click();
    await a.getByRole("textbox", { name: "Message" }).fill("second words");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await log(second).getByText("second words").waitFor();
    const stored = await s.api("GET", `/api/conversations/${conv}/messages`, { token: alice.token });
    expect(stored.body.items.find((m: { id: string }) => m.id === mine.id).content).toBe("second words");
  });

  clientTest("keyboard: a dialog closed by its Close button or by Escape gives the focus back to what opened it; the status region is there while connected; switcher options are named like the links", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await s.api("PATCH", "/api/users/me", { token: bob.token, body: { display_name: "Bobby Tables" } });
    for (let i = 0; i < 3; i++) await say(bob, conv, `unread ${i}`);
    const a = await pageFor(alice);
    const focused = () => a.evaluate(() => document.activeElement?.getAttribute("aria-label") || document.activeElement?.textContent?.trim() || document.activeElement?.tagName || "");
    for (const [name, close] of [["Friends", "button"], ["New conversation", "button"], ["Search", "button"], ["Search", "Escape"], ["Friends", "Escape"]] as const) {
      await a.getByRole("button", { name, exact: true }).focus();
      await a.keyboard.press("Enter");
      const dialog = a.getByRole("dialog", { name });
      await dialog.waitFor();
      if (close === "button") await dialog.getByRole("button", { name: "Close" }).click();
      else await a.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
      expect([name, close, await focused()]).toEqual([name, close, name]);
    }
    // The live region is in the accessibility tree before it has anything to say (and takes no room).
    const status = a.getByRole("status");
    expect(await status.count()).toBe(1);
    expect(await status.textContent()).toBe("");
    expect(await status.isHidden()).toBe(true);
    // The quick switcher's options: the title, then the unread count, as the sidebar's links.
    await a.keyboard.press("Control+k");
    await a.getByRole("combobox", { name: "Conversation name" }).fill("Bobby");
    await a.getByRole("option", { name: "Bobby Tables, 3 unread", exact: true }).waitFor();
  });

  clientTest("Friends' search tells a request sent from one received; a deleted reply shows no quote", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    expect((await s.api("POST", "/api/friendships", { token: bob.token, body: { friend_id: alice.user.id } })).status).toBe(201);
    expect((await s.api("POST", "/api/friendships", { token: alice.token, body: { friend_id: carol.user.id } })).status).toBe(201);
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    const found = a.getByRole("list", { name: "People found" });
    for (const [who, hint] of [[bob, "Asked you (see Requests)"], [carol, "Requested"]] as const) {
      await a.getByRole("textbox", { name: "Find people" }).fill(who.user.username);
      await a.getByRole("button", { name: "Find" }).click();
      await found.getByText(hint, { exact: true }).waitFor();
    }
    await a.keyboard.press("Escape");
    // A reply, then deleted: "Message deleted", without the message it quoted.
    const dave = await s.register(uniqueName("dave"));
    const talk = await direct(alice, dave);
    const quoted = await say(dave, talk, "the quoted words");
    const reply = await s.api("POST", `/api/conversations/${talk}/messages`, { token: alice.token, body: { content: "my reply", reply_to_id: quoted.id } });
    expect(reply.status).toBe(201);
    await a.goto(s.base + `/c/${talk}`);
    await log(a).locator(".quote").filter({ hasText: "the quoted words" }).waitFor();
    expect((await s.api("DELETE", `/api/messages/${reply.body.id}`, { token: alice.token })).status).toBe(204);
    await log(a).getByText("Message deleted").waitFor();
    expect(await log(a).locator(".quote").count()).toBe(0);
  });

  clientTest("opened at the first unread of more than a page, one click on Jump to latest shows the newest, with no divider over the page it loaded", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(alice, conv, "read 0");
    for (let i = 0; i < 120; i++) await say(bob, conv, `unread ${i}`);
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    await a.getByRole("button", { name: "Jump to latest" }).click();
    await log(a).getByText("unread 119", { exact: true }).waitFor();
    // In the view at once (it used to open the newest page at its top, under a divider: a second click went down).
    await a.waitForFunction(() => {
      const el = document.querySelector("[role=log]");
      return el.scrollHeight - el.scrollTop - el.clientHeight < 2;
    }, undefined, { timeout: 3000 });
    await expect(log(a).getByText("unread 119", { exact: true }).isVisible()).resolves.toBe(true);
    // The page begins in the middle of the unread (70 of 120): "New messages" over it would be a lie.
    expect(await log(a).getByRole("separator").filter({ hasText: "New messages" }).count()).toBe(0);
    await a.getByRole("button", { name: "Jump to latest" }).waitFor({ state: "detached" });
    for (let i = 0; i < 50 && (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count !== 0; i++) await Bun.sleep(50);
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count).toBe(0);
  });

  clientTest("a read position never moved: what came before one's own last message is read, the view opens after it", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    // More than a page of Bob's before (61 unread by the server's count): it opened at the very start.
    for (let i = 0; i < 60; i++) await say(bob, conv, `before mine ${i}`);
    for (let i = 0; i < 40; i++) await say(alice, conv, `mine ${i}`);
    await say(bob, conv, "after mine");
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count).toBe(61);
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("after mine", { exact: true }).waitFor();
    // The divider stands over the message after Alice's last (it stood over "before mine 0", the history's start).
    await log(a).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    expect(await a.evaluate(() => document.querySelector("[role=log] .divider")?.nextElementSibling?.textContent ?? "")).toContain("after mine");
    await expect(log(a).getByText("after mine", { exact: true }).isVisible()).resolves.toBe(true);
    await expect(log(a).getByText("mine 39", { exact: true }).isVisible()).resolves.toBe(true);
  });

  // From a review (2026-12-02): a page asked for before the conversation went away, landing
  // after, brought its thread back, and Back to its address showed "Loading…" for good again.
  clientTest("a conversation's first page that lands after the conversation went away does not bring it back", async () => {
    const { alice, bob, group } = await aliceWithFriendsInAGroup("Going away");
    await say(alice, group.body.id, "the only message");
    const b = await pageFor(bob, "/");
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let asked!: () => void;
    const askedFor = new Promise<void>((r) => (asked = r));
    await b.route(`**/api/conversations/${group.body.id}/messages*`, async (route) => {
      const answer = await route.fetch(); // answered while Bob is a member…
      asked();
      await released; // …and handed to the page once he is not
      await route.fulfill({ response: answer });
    });
    await convLink(b, "Going away").click();
    await askedFor;
    expect((await s.api("DELETE", `/api/conversations/${group.body.id}/members/${bob.user.id}`, { token: alice.token })).status).toBe(204);
    await b.getByRole("alert").filter({ hasText: "You are no longer in “Going away”" }).waitFor();
    release();
    await Bun.sleep(300);
    await b.unrouteAll({ behavior: "ignoreErrors" });
    await b.goBack();
    await b.getByText("That conversation does not exist, or you are not a member.").waitFor({ timeout: 5000 });
  });

  clientTest("removed from the open group elsewhere: said, with the unsent text to copy; leaving it oneself says nothing", async () => {
    const { alice, bob, group } = await aliceWithFriendsInAGroup("Leaving soon");
    const b = await pageFor(bob, `/c/${group.body.id}`);
    await b.getByRole("textbox", { name: "Message" }).fill("half a thought");
    expect((await s.api("DELETE", `/api/conversations/${group.body.id}/members/${bob.user.id}`, { token: alice.token })).status).toBe(204);
    // It went back to the list, without a word, and the draft with it.
    const notice = b.getByRole("alert").filter({ hasText: "You are no longer in “Leaving soon”: it was deleted, or you were removed from it." });
    await notice.waitFor();
    // Back to its address: asked for, and answered (a kept thread showed "Loading…" for good: found by an acceptance pass).
    await b.goBack();
    await b.getByText("That conversation does not exist, or you are not a member.").waitFor({ timeout: 5000 });
    expect(await b.getByText("Loading…").count()).toBe(0);
    await b.goForward().catch(() => {});
    const unsent = notice.getByRole("textbox", { name: "What you had typed there (not sent)" });
    await expect(unsent.inputValue()).resolves.toBe("half a thought");
    // Readable: its text is not drawn in the colour of its ground (the toast's light text on a light field).
    const colours = await unsent.evaluate((el: HTMLElement) => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]);
    expect(colours[0]).not.toBe(colours[1]);
    await b.screenshot({ path: join(shots, "removed-from-group.png") });
    await convLink(b, "Leaving soon").waitFor({ state: "detached" });
    // Going to another conversation (to paste it there) keeps it; Dismiss ends it.
    await direct(bob, await s.register(uniqueName("dana")));
    await b.getByRole("link", { name: /^dana/ }).click();
    await log(b).waitFor();
    await expect(unsent.inputValue()).resolves.toBe("half a thought");
    // A reload keeps it too (it was the text's only copy, and went); for its own user only.
    // (Read by polling: a value read while the reloaded page renders may find the node replaced.)
    const showsUnsent = () => b.waitForFunction(() => (document.querySelector("[role=alert] textarea[readonly]") as any)?.value === "half a thought");
    await b.reload();
    await log(b).waitFor();
    await showsUnsent();
    const owner = (user: string) => b.evaluate((user) => {
      const kept = JSON.parse(sessionStorage.getItem("parley.no-longer")!);
      sessionStorage.setItem("parley.no-longer", JSON.stringify({ ...kept, user_id: user }));
    }, user);
    await owner("someone else");
    await b.reload();
    await log(b).waitFor();
    await Bun.sleep(200);
    expect(await notice.count()).toBe(0);
    await owner(bob.user.id);
    await b.reload();
    await showsUnsent();
    await notice.getByRole("button", { name: "Dismiss" }).click();
    await notice.waitFor({ state: "detached" });

    // Back in, and leaving by its own hand: no notice.
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [bob.user.id] } })).status).toBeLessThan(300);
    await convLink(b, "Leaving soon").click();
    await b.getByRole("button", { name: "Conversation settings" }).click();
    b.once("dialog", (d) => void d.accept());
    await b.getByRole("button", { name: "Leave group" }).click();
    await convLink(b, "Leaving soon").waitFor({ state: "detached" });
    await Bun.sleep(300);
    expect(await b.getByRole("alert").count()).toBe(0);
    // Nor deleting one's own direct conversation (it said "no longer in", with the draft).
    await b.getByRole("link", { name: /^dana/ }).click();
    await b.getByRole("textbox", { name: "Message" }).fill("never mind");
    await b.getByRole("button", { name: "Conversation settings" }).click();
    b.once("dialog", (d) => void d.accept());
    await b.getByRole("button", { name: "Delete conversation" }).click();
    await b.getByRole("link", { name: /^dana/ }).waitFor({ state: "detached" });
    await Bun.sleep(300);
    expect(await b.getByRole("alert").count()).toBe(0);
    // A direct conversation the other side deleted: said so, without "removed from it" (nobody is).
    const erin = await s.register(uniqueName("erin"));
    const withErin = await direct(bob, erin);
    await b.getByRole("link", { name: new RegExp(`^${erin.user.display_name}`) }).click();
    await log(b).waitFor();
    expect((await s.api("DELETE", `/api/conversations/${withErin}`, { token: erin.token })).status).toBe(204);
    const deleted = b.getByRole("alert").filter({ hasText: `Your conversation with ${erin.user.display_name} was deleted.` });
    await deleted.waitFor();
    await deleted.getByRole("button", { name: "Dismiss" }).click();
    await deleted.waitFor({ state: "detached" });

    // A notice is one person's: signing out takes it (the next to sign in in this tab saw it, draft and all).
    await b.goto(`${s.base}/c/${group.body.id}`);
    await b.getByRole("navigation", { name: "Conversations" }).waitFor();
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [bob.user.id] } })).status).toBeLessThan(300);
    await convLink(b, "Leaving soon").click();
    await b.getByRole("textbox", { name: "Message" }).fill("private words");
    expect((await s.api("DELETE", `/api/conversations/${group.body.id}/members/${bob.user.id}`, { token: alice.token })).status).toBe(204);
    await notice.waitFor();
    await b.getByRole("button", { name: "Profile" }).click();
    await b.getByRole("button", { name: "Sign out" }).click();
    await b.getByRole("textbox", { name: "Username" }).waitFor();
    const carol = await s.register(uniqueName("carol"));
    await signInWithForm(b, carol);
    await Bun.sleep(200);
    expect(await b.getByText("private words").count()).toBe(0);
    expect(await b.getByRole("alert").count()).toBe(0);
    await b.reload();
    await b.getByRole("navigation", { name: "Conversations" }).waitFor();
    await Bun.sleep(200);
    expect(await b.getByText("private words").count()).toBe(0);
  });

  clientTest("a reply's quote goes to the message replied to: scrolled to when loaded, the history around it loaded when not", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const ids: string[] = [];
    for (let i = 0; i < 130; i++) ids.push((await say(i % 2 ? alice : bob, conv, `line ${i}`)).id);
    const reply = async (to: number, content: string) =>
      expect((await s.api("POST", `/api/conversations/${conv}/messages`, { token: bob.token, body: { content, reply_to_id: ids[to] } })).status).toBe(201);
    expect((await s.api("POST", `/api/conversations/${conv}/read`, { token: alice.token, body: { message_id: ids.at(-1) } })).status).toBe(200);
    await reply(120, "about line 120");
    await reply(3, "about line 3");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("about line 3", { exact: true }).waitFor();
    // Not loaded (two pages back): the history around it.
    const far = log(a).locator(".msg").filter({ hasText: "about line 3" }).locator(".quote");
    expect(await far.textContent()).toBe("Reply to an earlier message");
    await far.click();
    const target = log(a).locator(".msg.flash").filter({ has: a.locator(".body", { hasText: /^line 3$/ }) });
    await target.waitFor();
    await expect(target.isVisible()).resolves.toBe(true);
    // The keyboard is there too (it fell to <body>).
    await a.waitForFunction(() => document.activeElement?.getAttribute("role") === "article" && document.activeElement.querySelector(".body")?.textContent === "line 3");
    // Loaded (in the newest page): scrolled to and highlighted.
    await a.reload();
    await log(a).getByText("about line 120", { exact: true }).waitFor();
    await log(a).getByRole("button", { name: `${bob.user.display_name}: line 120` }).click();
    const near = log(a).locator(".msg.flash").filter({ has: a.locator(".body", { hasText: /^line 120$/ }) });
    await near.waitFor();
    await expect(near.isVisible()).resolves.toBe(true);
  });

  clientTest("a send whose request is lost while the socket stays up (a blip, a proxy) goes again by itself; a proxy's 502 too", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    for (const [text, fail] of [["lost once", "abort"], ["proxied once", "502"]] as const) {
      let failed = false;
      await a.route("**/api/conversations/*/messages", async (route) => {
        if (route.request().method() !== "POST" || failed) return route.continue();
        failed = true;
        if (fail === "abort") await route.abort("connectionreset");
        else await route.fulfill({ status: 502, contentType: "text/html", body: "<html>Bad Gateway</html>" });
      });
      await a.getByRole("textbox", { name: "Message" }).fill(text);
      await a.getByRole("textbox", { name: "Message" }).press("Enter");
      const state = log(a).locator(".msg").filter({ hasText: text }).locator(".state");
      await state.filter({ hasText: "Not sent: the server cannot be reached." }).waitFor();
      // Not only when the socket opens again (it never closed): it stayed unsent for good.
      await state.waitFor({ state: "detached", timeout: 10_000 });
      await a.unroute("**/api/conversations/*/messages");
    }
    const sent = (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items.map((m: any) => m.content);
    expect(sent.sort()).toEqual(["lost once", "proxied once"]);
  });

  clientTest("a member added while the members are read (read before it, answered after) is in the list when it lands (it was lost)", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    await friends(alice, bob);
    await friends(alice, carol);
    const group = (await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Late joiner", member_ids: [bob.user.id] } })).body.id;
    let read!: () => void;
    const wasRead = new Promise<void>((r) => (read = r));
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const a = await pageFor(alice, "/");
    let held = false;
    await a.route("**/api/conversations/*/members*", async (route) => {
      if (held) return route.continue();
      held = true;
      const response = await route.fetch(); // read by the server now
      read();
      await answered; // and answered later
      await route.fulfill({ response });
    });
    await convLink(a, "Late joiner").click();
    await wasRead;
    expect((await s.api("POST", `/api/conversations/${group}/members`, { token: alice.token, body: { user_ids: [carol.user.id] } })).status).toBeLessThan(300);
    await a.getByRole("heading", { name: "Late joiner" }).locator("xpath=..").getByText("3 members").waitFor();
    answer();
    await a.getByRole("button", { name: "Conversation settings" }).click();
    const list = a.getByRole("list", { name: "Members" });
    await list.getByText(bob.user.display_name, { exact: true }).waitFor();
    expect(await list.getByText(carol.user.display_name, { exact: true }).count()).toBe(1);
  });

  clientTest("names count characters as the server does: 64 emoji make a display name, 100 a group name (maxLength stopped them at half)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    await friends(alice, bob);
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "Profile" }).click();
    const name = a.getByRole("textbox", { name: "Display name" });
    // A flag is two code points: cut whole, before it (half a flag was left).
    await name.fill(`${"x".repeat(63)}🇹🇭`);
    expect(await name.inputValue()).toBe("x".repeat(63));
    const cut = a.getByRole("status").filter({ hasText: "Cut to 64 characters, the most it may have." });
    await cut.waitFor();
    await name.fill("x".repeat(10));
    await cut.waitFor({ state: "detached" });
    // Said, not cut in silence (a pasted name lost its end without a word).
    await name.fill("🦊".repeat(70));
    expect([...(await name.inputValue())].length).toBe(64);
    await cut.waitFor();
    await a.getByRole("button", { name: "Save" }).click();
    await a.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    expect((await s.api("GET", "/api/users/me", { token: alice.token })).body.display_name).toBe("🦊".repeat(64));
    await a.getByRole("button", { name: "Close" }).click();
    await a.getByRole("button", { name: "New conversation" }).click();
    await a.getByRole("textbox", { name: "Group name" }).fill("🌿".repeat(101));
    expect([...(await a.getByRole("textbox", { name: "Group name" }).inputValue())].length).toBe(100);
    await a.getByRole("status").filter({ hasText: "Cut to 100 characters, the most it may have." }).waitFor();
    await a.getByRole("checkbox", { name: bob.user.display_name }).check();
    await a.getByRole("button", { name: "Create group" }).click();
    await a.getByRole("heading", { name: "🌿".repeat(100) }).waitFor();
  });

  clientTest("Alt+Up/Down open the conversation above or below in the list, Alt+Shift the next with unread messages, from the message box too", async () => {
    const alice = await s.register(uniqueName("alice"));
    const peers = [await s.register(uniqueName("first")), await s.register(uniqueName("second")), await s.register(uniqueName("third"))];
    const convs: string[] = [];
    for (const p of peers) {
      convs.push(await direct(alice, p));
      await say(alice, convs.at(-1)!, `hello ${p.user.display_name}`);
    }
    await say(peers[0]!, convs[0]!, "unread from the first"); // listed first (newest), unread
    // Listed newest first: the first (unread), the third, the second.
    const a = await pageFor(alice, `/c/${convs[2]}`);
    const heading = (p: Account) => a.getByRole("heading", { name: p.user.display_name, exact: true }).waitFor();
    await heading(peers[2]!);
    // The whole list first: the deep link's conversation shows before the list has come (a CI run under load pressed Alt+Down then).
    for (const p of peers) await convLink(a, p.user.display_name).waitFor();
    await a.getByRole("textbox", { name: "Message" }).focus();
    await a.keyboard.press("Alt+ArrowDown");
    await heading(peers[1]!);
    await a.keyboard.press("Alt+ArrowUp");
    await heading(peers[2]!);
    // Not "edit my last message" (Up in an empty message box).
    expect(await a.getByText("Editing your message").count()).toBe(0);
    await a.keyboard.press("Alt+ArrowDown");
    await heading(peers[1]!);
    await a.keyboard.press("Alt+Shift+ArrowUp"); // past the third (nothing unread) to the first
    await heading(peers[0]!);
    expect(new URL(a.url()).pathname).toBe(`/c/${convs[0]}`);
  });

  clientTest("back in a conversation opened earlier: the divider is over what came while away (it stayed where it first was); a new name shows on messages already loaded", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    const dm = await direct(alice, bob);
    await direct(alice, carol);
    await say(bob, dm, "read long ago");
    const a = await pageFor(alice, `/c/${dm}`);
    await log(a).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    await convLink(a, carol.user.display_name).click();
    await log(a).waitFor();
    await say(bob, dm, "while away 1");
    await say(bob, dm, "while away 2");
    await a.getByRole("link", { name: `${bob.user.display_name}, 2 unread` }).click();
    await log(a).getByText("while away 2").waitFor();
    expect(await a.evaluate(() => document.querySelector("[role=log] .divider")?.nextElementSibling?.textContent ?? "")).toContain("while away 1");
    expect(await log(a).getByRole("separator").filter({ hasText: "New messages" }).count()).toBe(1);
    // Bob's new name, on his messages loaded before it (they kept the old one until a reload).
    expect((await s.api("PATCH", "/api/users/me", { token: bob.token, body: { display_name: "Robert Renamed" } })).status).toBe(200);
    await a.waitForFunction(() => [...document.querySelectorAll("[role=log] .sender")].every((e: any) => e.textContent === "Robert Renamed"));
  });

  clientTest("Enter while files upload sends once they are, and says so; added back to a group, its notice goes and the text returns to the box", async () => {
    const { alice, bob, group } = await aliceWithFriendsInAGroup("Uploads and returns");
    const b = await pageFor(bob, `/c/${group.body.id}`);
    const release = await holdUploads(b);
    await b.locator("input[type=file]").setInputFiles([{ name: "slow.txt", mimeType: "text/plain", buffer: Buffer.from("slow") }]);
    await b.getByRole("textbox", { name: "Message" }).fill("with the slow file");
    await b.getByRole("textbox", { name: "Message" }).press("Enter");
    await b.getByRole("status").filter({ hasText: "Sends once the files are uploaded." }).waitFor();
    release();
    const sent = log(b).locator(".msg").filter({ hasText: "with the slow file" });
    await sent.getByRole("link", { name: /slow\.txt/ }).waitFor();
    await settled(b);
    await b.getByRole("status").filter({ hasText: "Sends once" }).waitFor({ state: "detached" });
    const last = (await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=1`, { token: bob.token })).body.items[0];
    expect([last.content, last.attachments.map((x: any) => x.filename)]).toEqual(["with the slow file", ["slow.txt"]]);

    // A file refused while the send waits: nothing goes without it, and it says so (it went, the error chip cleared).
    await b.route("**/api/uploads*", (route) => route.fulfill({ status: 413, contentType: "application/json", body: JSON.stringify({ error: { code: "payload_too_large", message: "at most 10 bytes (MAX_UPLOAD_BYTES)" } }) }));
    const refuse = await holdUploads(b, (route) => route.fallback());
    await b.locator("input[type=file]").setInputFiles([{ name: "too-big.txt", mimeType: "text/plain", buffer: Buffer.from("far too big") }]);
    await b.getByRole("textbox", { name: "Message" }).fill("not without its file");
    await b.getByRole("textbox", { name: "Message" }).press("Enter");
    await b.getByRole("status").filter({ hasText: "Sends once the files are uploaded." }).waitFor();
    refuse();
    await b.getByRole("alert").filter({ hasText: "Not sent: a file could not be uploaded." }).waitFor();
    await b.getByRole("list", { name: "Files to send" }).getByText("too-big.txt").waitFor();
    expect(await log(b).getByText("not without its file").count()).toBe(0);
    await b.getByRole("button", { name: "Remove too-big.txt" }).click();
    await b.getByRole("button", { name: "Dismiss" }).click();
    await b.unrouteAll({ behavior: "ignoreErrors" });

    await b.getByRole("textbox", { name: "Message" }).fill("unsent words");
    expect((await s.api("DELETE", `/api/conversations/${group.body.id}/members/${bob.user.id}`, { token: alice.token })).status).toBe(204);
    const notice = b.getByRole("alert").filter({ hasText: "You are no longer in “Uploads and returns”" });
    await notice.waitFor();
    // Back to its address (the browser's Back) while still out: it says it is not ours (and
    // goes back to the list: waiting for the address itself raced that, a CI flake), and the
    // notice stays, with its text.
    await b.evaluate(() => history.back());
    await b.getByRole("alert").filter({ hasText: "That conversation does not exist, or you are not a member." }).waitFor({ timeout: 5000 });
    await Bun.sleep(200);
    await notice.waitFor();
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [bob.user.id] } })).status).toBeLessThan(300);
    // Gone once the group is ours again, before it is opened (on a phone it covered the list,
    // and Dismiss, the only way past it, threw the text away: a usability pass).
    await notice.waitFor({ state: "detached", timeout: 5000 });
    await convLink(b, "Uploads and returns").click();
    await expect(b.getByRole("textbox", { name: "Message" }).inputValue()).resolves.toBe("unsent words");
  });

  // From a second usability pass (2026-12-02).
  clientTest("a file refused before Enter does not stop a send waiting for the others: it goes without it", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const b = await pageFor(bob, `/c/${conv}`);
    await b.locator("input[type=file]").setInputFiles([{ name: "empty.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) }]);
    await b.getByRole("list", { name: "Files to send" }).getByText("The file is empty.").waitFor();
    const release = await holdUploads(b);
    await b.locator("input[type=file]").setInputFiles([{ name: "slow.txt", mimeType: "text/plain", buffer: Buffer.from("slow") }]);
    await b.getByRole("textbox", { name: "Message" }).fill("with the good file");
    await b.getByRole("textbox", { name: "Message" }).press("Enter");
    await b.getByRole("status").filter({ hasText: "Sends once the files are uploaded." }).waitFor();
    release();
    await log(b).locator(".msg").filter({ hasText: "with the good file" }).getByRole("link", { name: /slow\.txt/ }).waitFor();
    expect(await b.getByRole("alert").filter({ hasText: "Not sent" }).count()).toBe(0);
  });

  clientTest("an upload that did not reach the server offers Retry, which uploads it again", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const b = await pageFor(bob, `/c/${conv}`);
    // Its request cut while the socket stays up: offline, the socket's return now uploads it by itself (tested above).
    let cut = 0;
    await b.route("**/api/uploads*", (route) => (cut++ === 0 ? route.abort("connectionreset") : route.continue()));
    await b.locator("input[type=file]").setInputFiles([{ name: "report.txt", mimeType: "text/plain", buffer: Buffer.from("the report") }]);
    const chips = b.getByRole("list", { name: "Files to send" });
    await chips.getByRole("button", { name: "Retry upload of report.txt" }).waitFor();
    await chips.getByRole("button", { name: "Retry upload of report.txt" }).click();
    await chips.getByRole("button", { name: "Remove report.txt" }).waitFor({ timeout: 10_000 });
    expect(await chips.getByRole("alert").count()).toBe(0);
    await b.getByRole("textbox", { name: "Message" }).fill("sent after a retry");
    await b.getByRole("textbox", { name: "Message" }).press("Enter");
    await log(b).locator(".msg").filter({ hasText: "sent after a retry" }).getByRole("link", { name: /report\.txt/ }).waitFor({ timeout: 10_000 });
  });

  clientTest("one's own typing in another tab is not shown as someone typing", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    const other = await a.context().newPage();
    const live = socketLive(other);
    await other.goto(`${s.base}/c/${conv}`);
    await live;
    await a.getByRole("textbox", { name: "Message" }).pressSequentially("typing here", { delay: 20 });
    // Bob's typing still shows (the indicator works), Alice's own never does.
    const b = await pageFor(bob, `/c/${conv}`);
    await b.getByRole("textbox", { name: "Message" }).pressSequentially("bob types", { delay: 20 });
    await other.getByText(`${bob.user.display_name} is typing…`).waitFor({ timeout: 5000 });
    expect(await other.getByText(`${alice.user.display_name} is typing…`).count()).toBe(0);
    expect(await other.getByText(`${alice.user.display_name} typing…`).count()).toBe(0); // the sidebar's line
  });

  clientTest("the message being edited is deleted elsewhere: the edit ends, what was typed stays in the box, and the notice goes by itself, clear of the box", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const mine = await say(alice, conv, "to be edited");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("to be edited").waitFor();
    const box = a.getByRole("textbox", { name: "Message" });
    await box.press("ArrowUp");
    await a.getByText("Editing your message").waitFor();
    await box.fill("to be edited, and more words");
    expect((await s.api("DELETE", `/api/messages/${mine.id}`, { token: alice.token })).status).toBeLessThan(300);
    const notice = a.getByRole("alert").filter({ hasText: "The message you were editing was deleted. What you typed is kept in the box." });
    await notice.waitFor({ timeout: 5000 });
    await a.screenshot({ path: join(shots, "toast.png") });
    await a.getByText("Editing your message").waitFor({ state: "detached" });
    expect(await box.inputValue()).toBe("to be edited, and more words");
    // Above the message box, not over it.
    const [toast, composer] = [await notice.boundingBox(), await box.boundingBox()];
    expect(toast!.y + toast!.height).toBeLessThanOrEqual(composer!.y);
    await notice.waitFor({ state: "detached", timeout: 12_000 });
  }, 30_000);

  // Found by an acceptance pass on a phone: the notice, at the top, hid the list's buttons for the 8 seconds it stays.
  clientTest("on a phone, a notice leaves the list's buttons and the message box free", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, "/c/00000000-0000-4000-8000-000000000000", s, { width: 390, height: 760 });
    const notice = a.getByRole("alert").filter({ hasText: "That conversation does not exist, or you are not a member." });
    await notice.waitFor({ timeout: 5000 });
    const clear = async (other: Locator) => {
      const [n, o] = [(await notice.boundingBox())!, (await other.boundingBox())!];
      expect(n.y >= o.y + o.height || n.y + n.height <= o.y).toBe(true);
    };
    for (const name of ["New conversation", "Friends", "Search"]) await clear(a.getByRole("button", { name, exact: true }));
    await convLink(a, bob.user.display_name).click();
    await clear(a.getByRole("textbox", { name: "Message" }));
    expect(conv).toBeTruthy();
  });

  clientTest("messages that came while the reader was scrolled up get the divider when they reach the end", async () => {
    const { bob, conv, a } = await scrolledUp();
    await say(bob, conv, "new while up 1");
    await say(bob, conv, "new while up 2");
    await log(a).getByText("new while up 2", { exact: true }).waitFor({ state: "attached" });
    await a.getByRole("button", { name: "Jump to latest" }).click();
    await a.waitForFunction(() => document.querySelector("[role=log] .divider")?.nextElementSibling?.textContent?.includes("new while up 1"), undefined, { timeout: 5000 });
  });

  clientTest("mentions: marked for members only, not in an e-mail address nor a trailing dot; one's own stands out; links keep their closing parenthesis", async () => {
    const { alice, bob, group, a } = await aliceWithFriendsInAGroup("Mention marks");
    await say(bob, group.body.id, `mail ${alice.user.username}@example.com. Also @nobody here, (@${alice.user.username}) and @${bob.user.username}. See https://en.wikipedia.org/wiki/Foo_(bar) ok`);
    const body = log(a).locator(".body").filter({ hasText: "Also @nobody" });
    await body.waitFor();
    expect(await body.locator(".mention").allTextContents()).toEqual([`@${alice.user.username}`, `@${bob.user.username}`]);
    expect(await body.locator(".mention.me").allTextContents()).toEqual([`@${alice.user.username}`]);
    expect(await body.getByRole("link").getAttribute("href")).toBe("https://en.wikipedia.org/wiki/Foo_(bar)");
  });

  clientTest("Seen by three and \"1 other\" (not \"1 others\"); everyone on hover", async () => {
    const alice = await s.register(uniqueName("alice"));
    const readers = [];
    for (let i = 0; i < 4; i++) {
      const r = await s.register(uniqueName(`r${i}`));
      await friends(alice, r);
      readers.push(r);
    }
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "Readers", member_ids: readers.map((r) => r.user.id) } });
    expect(group.status).toBe(201);
    const mine = await say(alice, group.body.id, "read me");
    for (const r of readers) expect((await s.api("POST", `/api/conversations/${group.body.id}/read`, { token: r.token, body: { message_id: mine.id } })).status).toBe(200);
    const a = await pageFor(alice, `/c/${group.body.id}`);
    const seen = log(a).locator(".seen");
    await seen.filter({ hasText: / and 1 other$/ }).waitFor({ timeout: 5000 });
    expect((await seen.getAttribute("title"))!.split(", ").sort()).toEqual(readers.map((r) => r.user.display_name).sort());
  });

  clientTest("one's own message keeps its node from pending to sent (a screen reader heard it twice: it was replaced)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    await a.evaluate(() => {
      const w = globalThis as any;
      w.__removed = 0;
      new (w.MutationObserver)((records: any[]) => {
        for (const r of records) for (const n of r.removedNodes) if ((n as any).getAttribute?.("role") === "article") w.__removed++;
      }).observe(document.querySelector("[role=log]")!, { childList: true, subtree: true });
    });
    await a.getByRole("textbox", { name: "Message" }).fill("said once");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await log(a).getByText("said once").waitFor();
    await settled(a);
    await Bun.sleep(200);
    expect(await a.evaluate(() => (globalThis as any).__removed)).toBe(0);
  });

  clientTest("New conversation without friends: no empty Direct message list, the group's members say why", async () => {
    // This suite's server is open: anyone can be found from the dialog (under friends: see the contact policy's test).
    const alice = await s.register(uniqueName("alice"));
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "New conversation" }).click();
    const d = a.getByRole("dialog", { name: "New conversation" });
    await d.getByText("Find people above to add them; or the group starts with you alone.").waitFor();
    expect(await d.getByRole("heading", { name: "Direct message" }).count()).toBe(0);
  });

  clientTest("Friends: finding nobody says so; \"@name\" finds by username", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    const box = a.getByRole("textbox", { name: "Find people" });
    await box.fill("xyzzy-nobody");
    await box.press("Enter");
    await a.getByRole("status").filter({ hasText: "Nobody found for “xyzzy-nobody”." }).waitFor();
    await box.fill(`@${bob.user.username}`);
    await box.press("Enter");
    await a.getByRole("list", { name: "People found" }).getByText(bob.user.display_name, { exact: true }).waitFor();
    expect(await a.getByRole("status").filter({ hasText: "Nobody found" }).count()).toBe(0);
  });

  clientTest("CONTACT_POLICY=open: someone found in Friends can be messaged without a friendship; under friends only a request is offered", async () => {
    // This suite's server is open (test/helpers.ts).
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const a = await pageFor(alice);
    await a.locator(".welcome").getByText("everyone here may write to everyone").waitFor();
    await a.getByRole("button", { name: "New conversation" }).click();
    await a.getByText("Anyone here can be messaged: find them by name.").waitFor();
    await a.keyboard.press("Escape");
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    const box = a.getByRole("textbox", { name: "Find people" });
    await box.fill(`@${bob.user.username}`);
    await box.press("Enter");
    const found = a.getByRole("list", { name: "People found" });
    await found.getByRole("button", { name: `Add friend ${bob.user.display_name}` }).waitFor();
    await found.getByRole("button", { name: `Message ${bob.user.display_name}` }).click();
    await a.getByRole("dialog", { name: "Friends" }).waitFor({ state: "detached" });
    await a.getByRole("textbox", { name: "Message" }).fill("hello without a friendship");
    await a.getByRole("textbox", { name: "Message" }).press("Enter");
    await log(a).getByText("hello without a friendship").waitFor();
    const convs = await s.api("GET", "/api/conversations", { token: bob.token });
    expect(convs.body.items.map((c: any) => [c.type, c.peer?.id])).toEqual([["direct", alice.user.id]]);
    expect((await s.api("GET", "/api/friendships?status=accepted", { token: alice.token })).body.items).toEqual([]);

    // Under friends (the default) the same search offers a request only.
    const strict = await startServer({ contactPolicy: "friends" });
    try {
      const [carol, dan] = [await strict.register(uniqueName("carol")), await strict.register(uniqueName("dan"))];
      const c = await pageFor(carol, "/", strict);
      await c.locator(".welcome").getByText("Send the people you talk to a friend request").waitFor();
      await c.getByRole("button", { name: "Friends", exact: true }).click();
      await c.getByRole("textbox", { name: "Find people" }).fill(`@${dan.user.username}`);
      await c.getByRole("textbox", { name: "Find people" }).press("Enter");
      const list = c.getByRole("list", { name: "People found" });
      await list.getByRole("button", { name: `Add friend ${dan.user.display_name}` }).waitFor();
      expect(await list.getByRole("button", { name: `Message ${dan.user.display_name}` }).count()).toBe(0);
      await c.keyboard.press("Escape");
      await c.getByRole("button", { name: "New conversation" }).click();
      await c.getByText('Conversations start with friends: add some with "Friends".').waitFor();
      await c.getByText("No friends to add yet: the group starts with you alone.").waitFor();
      expect(await c.getByRole("searchbox", { name: "Find people" }).count()).toBe(0);
    } finally {
      await strict.stop();
    }
  });

  clientTest("CONTACT_POLICY=open: New conversation and a group's settings find anyone, not friends alone; the picked stay picked across searches", async () => {
    // This suite's server is open (test/helpers.ts).
    const [alice, dave, bob, carol, erin] = (await Promise.all(["alice", "dave", "bob", "carol", "erin"].map((n) => s.register(uniqueName(n))))) as [Account, Account, Account, Account, Account];
    await friends(alice, dave);
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "New conversation" }).click();
    const d = a.getByRole("dialog", { name: "New conversation" });
    const box = d.getByRole("searchbox", { name: "Find people" });
    // Typing narrows the friends; a stranger is not listed until asked for.
    await box.fill(`@${bob.user.username}`);
    await d.getByRole("status").filter({ hasText: `No friend matches “@${bob.user.username}”: Enter finds anyone.` }).waitFor();
    expect(await d.getByRole("checkbox").count()).toBe(0);
    await box.press("Enter");
    await d.getByRole("status").filter({ hasText: "1 person found." }).waitFor();
    await d.getByRole("checkbox", { name: bob.user.display_name }).check();
    await d.getByRole("button", { name: `Message ${bob.user.display_name}` }).waitFor();
    await box.fill(carol.user.display_name);
    await d.getByRole("button", { name: "Find", exact: true }).click();
    await d.getByRole("checkbox", { name: carol.user.display_name }).check();
    await d.getByRole("group", { name: "Members (2 picked)" }).waitFor();
    await box.fill("xyzzy-nobody");
    await box.press("Enter");
    await d.getByRole("status").filter({ hasText: "Nobody found for “xyzzy-nobody”." }).waitFor();
    // Cleared: the friends again, and the two strangers still listed and picked (no narrowing of
    // the friends would bring them back to be unpicked).
    await box.fill("");
    await d.getByRole("checkbox", { name: dave.user.display_name, checked: false }).waitFor();
    expect(await d.getByRole("checkbox", { checked: true }).count()).toBe(2);
    expect(await d.getByRole("checkbox").count()).toBe(3);
    await d.getByRole("group", { name: "Members (2 picked)" }).waitFor();
    await d.getByRole("textbox", { name: "Group name" }).fill("Strangers welcome");
    await d.getByRole("button", { name: "Create group" }).click();
    await d.waitFor({ state: "detached" });
    const group = (await s.api("GET", "/api/conversations", { token: alice.token })).body.items.find((c: any) => c.title === "Strangers welcome");
    const ids = async () => (await s.api("GET", `/api/conversations/${group.id}/members`, { token: alice.token })).body.items.map((m: any) => m.user.id).sort();
    expect(await ids()).toEqual([alice.user.id, bob.user.id, carol.user.id].sort());

    // Settings: "Add people", the friend outside the group listed, anyone else found.
    await a.getByRole("button", { name: "Conversation settings" }).click();
    const settings = a.getByRole("dialog", { name: "Conversation settings" });
    expect(await settings.getByRole("heading", { level: 3 }).allTextContents()).toEqual(["Add people", "Members (3)"]);
    await settings.getByRole("button", { name: `Add ${dave.user.display_name}` }).waitFor();
    // Two found, one of them a member already: counted as listed (it said "2 people found").
    const tag = uniqueName("zeta");
    for (const [who, name] of [[bob, `${tag} Bob`], [erin, `${tag} Erin`]] as const) expect((await s.api("PATCH", "/api/users/me", { token: who.token, body: { display_name: name } })).status).toBe(200);
    const add = settings.getByRole("searchbox", { name: "Find people to add" });
    await add.fill(tag);
    await add.press("Enter");
    await settings.getByRole("status").filter({ hasText: "1 person found outside the group." }).waitFor();
    await add.fill(`@${erin.user.username}`);
    await add.press("Enter");
    await settings.getByRole("button", { name: `Add ${tag} Erin` }).click();
    await settings.getByRole("heading", { name: "Members (4)" }).waitFor();
    await settings.getByRole("status").filter({ hasText: `Everyone found for “${erin.user.username}” is in the group.` }).waitFor();
    expect(await ids()).toEqual([alice.user.id, bob.user.id, carol.user.id, erin.user.id].sort());
    await a.screenshot({ path: join(shots, "open-add-people.png") });
  });

  clientTest("Profile: a picture uploaded is everyone's avatar of you (live for a partner), kept when the name is saved, removed on request; a file that is not a picture is said so", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    await direct(alice, bob);
    const [a, b] = [await pageFor(alice), await pageFor(bob)];
    const bobSeesAlice = convLink(b, alice.user.display_name).locator(".avatar img");
    await a.getByRole("button", { name: "Profile" }).click();
    const dialog = a.getByRole("dialog", { name: "Profile" });
    // Typing goes to the first field shown (not the file box behind "Upload picture").
    await a.waitForFunction(() => document.activeElement?.closest("label")?.textContent?.startsWith("Display name"), undefined, { timeout: 3000 });
    // Not a picture: said in words, and nothing changes.
    let chooser = a.waitForEvent("filechooser");
    await dialog.getByRole("button", { name: "Upload picture" }).click();
    await (await chooser).setFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a picture") });
    await dialog.getByRole("alert").filter({ hasText: "“notes.txt” is not a picture this server can read" }).waitFor();
    // An empty file, said in words (the server's answer explains its API), nothing uploaded.
    const uploads = async () => (await s.rows<{ n: number }>("SELECT count(*) AS n FROM attachments WHERE uploader_id = ?", alice.user.id))[0]!.n;
    const before = await uploads();
    chooser = a.waitForEvent("filechooser");
    await dialog.getByRole("button", { name: "Upload picture" }).click();
    await (await chooser).setFiles({ name: "empty.png", mimeType: "image/png", buffer: Buffer.alloc(0) });
    await dialog.getByRole("alert").filter({ hasText: "“empty.png” is empty." }).waitFor();
    expect(await uploads()).toBe(before);
    expect((await s.api("GET", "/api/users/me", { token: alice.token })).body.profile_image_url).toBeNull();

    chooser = a.waitForEvent("filechooser");
    await dialog.getByRole("button", { name: "Upload picture" }).click();
    await (await chooser).setFiles({ name: "me.png", mimeType: "image/png", buffer: Buffer.from(await png(300, 200)) });
    await dialog.getByRole("status").filter({ hasText: "Picture saved." }).waitFor();
    const url = (await s.api("GET", "/api/users/me", { token: alice.token })).body.profile_image_url;
    expect(url).toStartWith("/api/avatars/");
    // Shown, loaded (not the initials of a picture that failed), in the dialog and to Bob, live.
    await dialog.locator(`.avatar img[src="${url}"]`).waitFor();
    await bobSeesAlice.waitFor();
    expect(await bobSeesAlice.getAttribute("src")).toBe(url);
    // Its width once decoded (0 for a picture that failed to load).
    await waitFor(async () => (await bobSeesAlice.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)) > 0, 3000);

    // A new name saved keeps the picture (the URL box is empty for an uploaded one).
    await dialog.getByRole("textbox", { name: "Display name" }).fill("Alice Pictured");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    const saved = (await s.api("GET", "/api/users/me", { token: alice.token })).body;
    expect([saved.display_name, saved.profile_image_url]).toEqual(["Alice Pictured", url]);
    await a.screenshot({ path: join(shots, "profile-picture.png") });

    await dialog.getByRole("button", { name: "Remove picture" }).focus();
    await a.keyboard.press("Enter");
    await dialog.getByRole("status").filter({ hasText: "Picture removed." }).waitFor();
    // Its button gone, the keyboard goes on from "Upload picture".
    await a.waitForFunction(() => document.activeElement?.textContent === "Upload picture", undefined, { timeout: 3000 });
    expect((await s.api("GET", "/api/users/me", { token: alice.token })).body.profile_image_url).toBeNull();
    await convLink(b, "Alice Pictured").locator(".avatar img").waitFor({ state: "detached" });
    expect((await fetch(`${s.base}${url}`)).status).toBe(404);

    // Past MAX_UPLOAD_BYTES: the limit in the units people read, not the server's sentence for APIs.
    const small = await startServer({ maxUploadBytes: 2048 });
    try {
      const carol = await small.register(uniqueName("carol"));
      const c = await pageFor(carol, "/", small);
      await c.getByRole("button", { name: "Profile" }).click();
      const chooser = c.waitForEvent("filechooser");
      await c.getByRole("button", { name: "Upload picture" }).click();
      await (await chooser).setFiles({ name: "big.png", mimeType: "image/png", buffer: Buffer.alloc(10_000, 1) });
      await c.getByRole("dialog", { name: "Profile" }).getByRole("alert").filter({ hasText: "Too large: a file may have at most 2 KB" }).waitFor();
    } finally {
      await small.stop();
    }
  });

  clientTest("a group shows who joined after it began, where it happened, live and after a reload (those it began with: no line)", async () => {
    const { alice, bob, carol, group, a } = await aliceWithFriendsInAGroup("Joins");
    await say(bob, group.body.id, "before carol");
    await log(a).getByText("before carol").waitFor();
    await Bun.sleep(1100); // a join within a second of the group's creation is its creation's
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [carol.user.id] } })).status).toBeLessThan(300);
    const line = log(a).locator(".event").filter({ hasText: `${carol.user.display_name} joined` });
    await line.waitFor({ timeout: 5000 });
    await say(carol, group.body.id, "hello from carol");
    await log(a).getByText("hello from carol").waitFor();
    const order = () => log(a).locator(".event, .body").allTextContents();
    const expected = ["before carol", expect.stringContaining(`${carol.user.display_name} joined`), "hello from carol"];
    expect(await order()).toEqual(expected);
    expect(await log(a).getByText(`${bob.user.display_name} joined`).count()).toBe(0);
    await a.reload();
    await log(a).getByText("hello from carol").waitFor();
    await line.waitFor();
    expect(await order()).toEqual(expected);
    await a.screenshot({ path: join(shots, "joined.png") });
  });

  clientTest("the @ list finds a member by any part of their name, and opens after a bracket", async () => {
    const { bob, a } = await aliceWithFriendsInAGroup("Mention list");
    const box = a.getByRole("textbox", { name: "Message" });
    const tail = bob.user.display_name.slice(3, 8);
    await box.pressSequentially(`(@${tail}`, { delay: 20 });
    await a.getByRole("listbox", { name: "Mention someone" }).getByRole("option", { name: new RegExp(bob.user.display_name) }).waitFor({ timeout: 3000 });
    await box.press("Enter");
    expect(await box.inputValue()).toBe(`(@${bob.user.username} `);
  });

  clientTest("another conversation opened and back: the files picked, the reply and a send waiting for its files are kept (they were lost)", async () => {
    const { alice, bob, group } = await aliceWithFriendsInAGroup("Kept while away");
    const other = (await s.api("POST", "/api/conversations", { token: bob.token, body: { type: "direct", user_id: alice.user.id } })).body.id;
    await say(alice, group.body.id, "reply to me");
    const b = await pageFor(bob, `/c/${group.body.id}`);
    const box = b.getByRole("textbox", { name: "Message" });
    const files = b.getByRole("list", { name: "Files to send" });
    // An uploaded file and a reply, left for a direct conversation and found again.
    await b.locator("input[type=file]").setInputFiles([{ name: "kept.txt", mimeType: "text/plain", buffer: Buffer.from("kept") }]);
    await files.getByRole("button", { name: "Remove kept.txt" }).waitFor();
    const quoted = log(b).locator(".msg").filter({ hasText: "reply to me" });
    await quoted.hover();
    await quoted.getByRole("button", { name: "Reply" }).click();
    await b.getByText(/^Replying to .*: reply to me$/).waitFor();
    await convLink(b, alice.user.display_name).click();
    await b.getByRole("region", { name: alice.user.display_name }).waitFor();
    expect(await b.getByRole("list", { name: "Files to send" }).count()).toBe(0);
    expect(await b.getByText(/^Replying to/).count()).toBe(0);
    await convLink(b, "Kept while away").click();
    await files.getByText("kept.txt").waitFor();
    await b.getByText(/^Replying to .*: reply to me$/).waitFor();
    await box.fill("with the kept file");
    await box.press("Enter");
    await log(b).locator(".msg").filter({ hasText: "with the kept file" }).getByRole("link", { name: /kept\.txt/ }).waitFor();
    await settled(b);
    let last = (await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=1`, { token: bob.token })).body.items[0];
    expect([last.content, last.attachments.map((x: any) => x.filename), last.reply_to_id !== null]).toEqual(["with the kept file", ["kept.txt"], true]);

    // Enter while a file uploads, then away: the send still goes once the file is up.
    const release = await holdUploads(b);
    await b.locator("input[type=file]").setInputFiles([{ name: "slow.txt", mimeType: "text/plain", buffer: Buffer.from("slow") }]);
    await box.fill("sent while away");
    await box.press("Enter");
    await b.getByRole("status").filter({ hasText: "Sends once the files are uploaded." }).waitFor();
    await convLink(b, alice.user.display_name).click();
    await b.getByRole("region", { name: alice.user.display_name }).waitFor();
    release();
    await b.waitForFunction(() => !document.querySelector("[aria-label='Uploading slow.txt']"));
    const deadline = Date.now() + 10_000;
    while (last.content !== "sent while away" && Date.now() < deadline) {
      await Bun.sleep(100);
      last = (await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=1`, { token: bob.token })).body.items[0];
    }
    expect([last.content, last.attachments.map((x: any) => x.filename)]).toEqual(["sent while away", ["slow.txt"]]);
    expect((await s.api("GET", `/api/conversations/${other}/messages`, { token: bob.token })).body.items).toEqual([]);
    await convLink(b, "Kept while away").click();
    await log(b).locator(".msg").filter({ hasText: "sent while away" }).getByRole("link", { name: /slow\.txt/ }).waitFor();
    expect(await b.getByRole("list", { name: "Files to send" }).count()).toBe(0);
    expect(await box.inputValue()).toBe("");
    await b.unrouteAll({ behavior: "ignoreErrors" });

    // The message replied to, edited while away: the reply shows its new text; deleted: the reply goes, and so does the send's reference.
    const target = await say(alice, group.body.id, "first words");
    const shown = log(b).locator(".msg").filter({ hasText: "first words" });
    await shown.hover();
    await shown.getByRole("button", { name: "Reply" }).click();
    await convLink(b, alice.user.display_name).click();
    await b.getByRole("region", { name: alice.user.display_name }).waitFor();
    expect((await s.api("PATCH", `/api/messages/${target.id}`, { token: alice.token, body: { content: "second words" } })).status).toBe(200);
    await convLink(b, "Kept while away").click();
    await b.getByText(/^Replying to .*: second words$/).waitFor();
    await convLink(b, alice.user.display_name).click();
    await b.getByRole("region", { name: alice.user.display_name }).waitFor();
    expect((await s.api("DELETE", `/api/messages/${target.id}`, { token: alice.token })).status).toBe(204);
    await convLink(b, "Kept while away").click();
    await log(b).getByText("second words").waitFor({ state: "detached" });
    expect(await b.getByText(/^Replying to/).count()).toBe(0);
    await box.fill("no reply now");
    await box.press("Enter");
    await log(b).getByText("no reply now").waitFor();
    await settled(b);
    last = (await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=1`, { token: bob.token })).body.items[0];
    expect([last.content, last.reply_to_id]).toEqual(["no reply now", null]);

    // Removed from the group with a file picked: the file goes with it (its upload stopped); added back, nothing of it is there.
    const holdAgain = await holdUploads(b);
    await b.locator("input[type=file]").setInputFiles([{ name: "orphan.txt", mimeType: "text/plain", buffer: Buffer.from("orphan") }]);
    await files.getByText("orphan.txt").waitFor();
    await convLink(b, alice.user.display_name).click();
    await b.getByRole("region", { name: alice.user.display_name }).waitFor();
    expect((await s.api("DELETE", `/api/conversations/${group.body.id}/members/${bob.user.id}`, { token: alice.token })).status).toBe(204);
    await convLink(b, "Kept while away").waitFor({ state: "detached" });
    holdAgain();
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [bob.user.id] } })).status).toBeLessThan(300);
    await convLink(b, "Kept while away").click();
    await log(b).getByText("no reply now").waitFor();
    expect(await b.getByRole("list", { name: "Files to send" }).count()).toBe(0);
  });

  clientTest("a reload keeps the reply and the files uploaded for the next message (they were lost), another tab follows them, a sign-out forgets them", async () => {
    const { alice, bob, group } = await aliceWithFriendsInAGroup("Kept through a reload");
    await say(alice, group.body.id, "reply to me");
    const b = await pageFor(bob, `/c/${group.body.id}`);
    const box = b.getByRole("textbox", { name: "Message" });
    const files = (p: Page) => p.getByRole("list", { name: "Files to send" });
    await b.locator("input[type=file]").setInputFiles([
      { name: "kept.txt", mimeType: "text/plain", buffer: Buffer.from("kept") },
      { name: "dot.png", mimeType: "image/png", buffer: Buffer.from(await png(64, 48)) },
    ]);
    await files(b).getByRole("button", { name: "Remove kept.txt" }).waitFor();
    await files(b).getByRole("button", { name: "Remove dot.png" }).waitFor();
    await b.waitForFunction(() => !document.querySelector(".picks .loading"));
    const quoted = log(b).locator(".msg").filter({ hasText: "reply to me" });
    await quoted.hover();
    await quoted.getByRole("button", { name: "Reply" }).click();
    await b.getByText(/^Replying to .*: reply to me$/).waitFor();
    // One still uploading at the reload cannot outlive the page: it is not shown as kept.
    await holdUploads(b);
    await b.locator("input[type=file]").setInputFiles([{ name: "in-flight.txt", mimeType: "text/plain", buffer: Buffer.from("x") }]);
    await files(b).getByText("in-flight.txt").waitFor();
    await box.fill("with what was kept");
    // Reloaded while it is held (let go first, it could finish before the reload and be kept).
    await b.reload();
    await b.unrouteAll({ behavior: "ignoreErrors" });
    await log(b).waitFor();
    await files(b).getByRole("button", { name: "Remove kept.txt" }).waitFor();
    await files(b).getByRole("img", { name: "dot.png" }).waitFor();
    expect(await files(b).getByText("in-flight.txt").count()).toBe(0);
    await b.getByText(/^Replying to .*: reply to me$/).waitFor();
    expect(await box.inputValue()).toBe("with what was kept");

    // Another tab of the browser shows them too; a file removed there goes here as well.
    const two = await b.context().newPage();
    two.on("pageerror", (e) => pageErrors.push(e.message));
    await two.goto(`${s.base}/c/${group.body.id}`);
    await files(two).getByRole("button", { name: "Remove dot.png" }).click();
    await files(b).getByText("dot.png").waitFor({ state: "detached" });
    await two.close();
    await b.bringToFront();

    await box.press("Enter");
    await log(b).locator(".msg").filter({ hasText: "with what was kept" }).getByRole("link", { name: /kept\.txt/ }).waitFor();
    await settled(b);
    const last = (await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=1`, { token: bob.token })).body.items[0];
    expect([last.content, last.attachments.map((x: any) => x.filename), last.reply_to_id !== null]).toEqual(["with what was kept", ["kept.txt"], true]);
    expect(await b.evaluate((id) => localStorage.getItem(`parley.compose.${id}`), bob.user.id)).toBeNull();
    await b.reload();
    await log(b).getByText("with what was kept").waitFor();
    expect(await files(b).count()).toBe(0);
    expect(await b.getByText(/^Replying to/).count()).toBe(0);

    // Signing out on purpose forgets them (the next person to sign in here must not get them).
    await b.locator("input[type=file]").setInputFiles([{ name: "left.txt", mimeType: "text/plain", buffer: Buffer.from("left") }]);
    await files(b).getByRole("button", { name: "Remove left.txt" }).waitFor();
    await b.waitForFunction(() => !document.querySelector(".picks .loading"));
    expect(await b.evaluate((id) => localStorage.getItem(`parley.compose.${id}`), bob.user.id)).toContain("left.txt");
    await b.getByRole("button", { name: `${bob.user.display_name} (profile)`, exact: true }).click();
    await b.getByRole("dialog").getByRole("button", { name: "Sign out" }).click();
    await b.getByRole("textbox", { name: "Username" }).waitFor();
    expect(await b.evaluate((id) => localStorage.getItem(`parley.compose.${id}`), bob.user.id)).toBeNull();
    await signInWithForm(b, bob);
    await convLink(b, "Kept through a reload").click();
    await log(b).getByText("with what was kept").waitFor();
    expect(await files(b).count()).toBe(0);
  });

  clientTest("a kept picture whose signed thumbnail link has expired shows as a file, not a broken picture", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const up = await fetch(`${s.base}/api/uploads?filename=old.png`, { method: "POST", headers: { authorization: `Bearer ${bob.token}`, "content-type": "image/png" }, body: await png(32, 32) });
    const attachment = (await up.json()) as { thumbnail_url: string };
    expect(attachment.thumbnail_url).toContain("e=");
    const expired = { ...attachment, thumbnail_url: attachment.thumbnail_url.replace(/([?&])e=\d+/, "$1e=1") };
    const kept = JSON.stringify({ [conv]: { files: [{ key: "k1", name: "old.png", size: 100, attachment: expired }] } });
    const b = await pageFor(bob, `/c/${conv}`, s, undefined, (p) => p.context().addInitScript(({ k, v }) => localStorage.getItem(k) ?? localStorage.setItem(k, v), { k: `parley.compose.${bob.user.id}`, v: kept }));
    const files = b.getByRole("list", { name: "Files to send" });
    await files.getByRole("button", { name: "Remove old.png" }).waitFor();
    expect(await files.getByRole("img").count()).toBe(0);
  });

  clientTest("two tabs of one browser: drafts typed in each are both kept; a theme picked in one is the other's; signed out in one, the other says so; signed in in one, the other follows", async () => {
    const { alice, bob, group } = await aliceWithFriendsInAGroup("Two tabs");
    const other = (await s.api("POST", "/api/conversations", { token: bob.token, body: { type: "direct", user_id: alice.user.id } })).body.id;
    const one = await pageFor(bob, `/c/${group.body.id}`);
    const two = await one.context().newPage();
    two.on("pageerror", (e) => pageErrors.push(e.message));
    await two.goto(`${s.base}/c/${other}`);
    await log(two).waitFor();
    const box = (p: Page) => p.getByRole("textbox", { name: "Message" });
    await box(one).fill("typed in tab one");
    await box(two).fill("typed in tab two");
    // The tab in front: a background tab's animation frames are throttled, and each click waited ~2 s for them.
    await one.bringToFront();
    await one.reload();
    await log(one).waitFor();
    expect(await box(one).inputValue()).toBe("typed in tab one");
    await convLink(one, alice.user.display_name).click();
    await one.getByRole("region", { name: alice.user.display_name }).waitFor();
    expect(await box(one).inputValue()).toBe("typed in tab two");
    // A theme picked in one tab is the other's too (it stayed until a reload).
    await one.getByRole("button", { name: /^Theme:/ }).click();
    await two.waitForFunction(() => document.documentElement.dataset.theme === "dark");
    await two.getByRole("button", { name: "Theme: dark" }).waitFor();

    await one.getByRole("button", { name: "Profile" }).click();
    await one.getByRole("button", { name: "Sign out" }).click();
    await one.getByRole("textbox", { name: "Username" }).waitFor();
    await two.getByText("You were signed out in another tab.").waitFor();
    await two.getByRole("textbox", { name: "Username" }).waitFor();
    await signInWithForm(one, bob);
    await two.bringToFront();
    await two.getByRole("navigation", { name: "Conversations" }).waitFor();
    // Live, not only listed: its socket started too.
    await say(alice, group.body.id, "seen in tab two");
    await two.getByRole("navigation", { name: "Conversations" }).getByText("seen in tab two").waitFor();
  });

  clientTest("names of 64 and 100 letters without a space stay inside the dialogs of a phone (New conversation, Search, the switcher, settings)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    await friends(alice, bob);
    expect((await s.api("PATCH", "/api/users/me", { token: bob.token, body: { display_name: "W".repeat(64) } })).status).toBe(200);
    const group = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "G".repeat(100), member_ids: [bob.user.id] } });
    expect(group.status).toBe(201);
    const a = await pageFor(alice, "/", s, { width: 390, height: 780 });
    /** The open dialog is no wider than the screen, scrolls nothing sideways (a text box's own text may), and its `button` is on the screen. */
    const fits = async (button: string, shot: string) => {
      const dialog = a.getByRole("dialog");
      await dialog.getByRole("button", { name: button, exact: true }).first().waitFor();
      await a.screenshot({ path: join(shots, shot) });
      const box = (await dialog.boundingBox())!;
      const target = (await dialog.getByRole("button", { name: button, exact: true }).first().boundingBox())!;
      const sideways = await dialog.evaluate((d: any) => [...d.querySelectorAll(":not(input, textarea, select)")].filter((e: any) => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "hidden" && e.clientWidth > 0).map((e: any) => e.tagName));
      expect({ right: Math.round(box.x + box.width) <= 390, button: Math.round(target.x + target.width) <= 390, sideways }).toEqual({ right: true, button: true, sideways: [] });
      await dialog.getByRole("button", { name: "Close" }).click();
      await dialog.waitFor({ state: "detached" });
    };
    await a.getByRole("button", { name: "New conversation" }).click();
    await fits("Create group", "long-names-new.png");
    await a.getByRole("button", { name: "Search" }).click();
    await fits("Find", "long-names-search.png");
    await a.keyboard.press("Control+k");
    await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Conversation name");
    await a.keyboard.type("GGG");
    await a.getByRole("dialog").getByRole("option").first().waitFor();
    await fits("Close", "long-names-switcher.png");
    await convLink(a, "GGG").click();
    await a.getByRole("button", { name: "Conversation settings" }).click();
    await fits("Leave group", "long-names-settings.png");
  });

  clientTest("a group is created once however often Create group is pressed; an owner's leave names who becomes the owner; the owner may delete the group; an avatar that does not load shows the initials", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    await friends(alice, bob);
    await friends(alice, carol);
    const a = await pageFor(alice);
    await a.getByRole("button", { name: "New conversation" }).click();
    const title = `Once ${uniqueName("g")}`;
    await a.getByRole("textbox", { name: "Group name" }).fill(title);
    await a.getByRole("checkbox", { name: bob.user.display_name }).check();
    await a.getByRole("checkbox", { name: carol.user.display_name }).check();
    // Two clicks and Enter presses, as fast as a person's double click: it made a group for each.
    await a.getByRole("button", { name: "Create group" }).dblclick();
    await a.getByRole("dialog").waitFor({ state: "detached" });
    await convLink(a, title).waitFor();
    await Bun.sleep(300);
    const named = async () => (await s.api("GET", "/api/conversations?limit=100", { token: alice.token })).body.items.filter((c: any) => c.title === title);
    expect((await named()).length).toBe(1);
    const id = (await named())[0].id;
    expect((await s.api("PATCH", `/api/conversations/${id}/members/${carol.user.id}`, { token: alice.token, body: { role: "admin" } })).status).toBe(200);

    await convLink(a, title).click();
    await a.getByRole("button", { name: "Conversation settings" }).click();
    await a.getByRole("list", { name: "Members" }).getByText(carol.user.display_name, { exact: true }).waitFor();
    const asked: string[] = [];
    a.once("dialog", (d) => void (asked.push(d.message()), d.dismiss()));
    await a.getByRole("button", { name: "Leave group" }).click();
    await waitFor(() => asked[0]);
    // The longest-standing admin, not the first member.
    expect(asked[0]).toBe(`Leave this group? You are its owner: ${carol.user.display_name} becomes the owner.`);
    a.once("dialog", (d) => void (asked.push(d.message()), d.accept()));
    await a.getByRole("button", { name: "Delete group" }).click();
    await convLink(a, title).waitFor({ state: "detached" });
    expect(asked[1]).toBe(`Delete “${title}” for all its members? Its messages go with it.`);
    expect((await s.api("GET", `/api/conversations/${id}`, { token: bob.token })).status).toBe(404);
    expect(await a.getByRole("alert").count()).toBe(0);

    // An avatar at an address that answers nothing (an http one, which the page's policy refused too): the initials.
    expect((await s.api("PATCH", "/api/users/me", { token: alice.token, body: { profile_image_url: `${s.base}/nothing-here.png` } })).status).toBe(200);
    await a.reload();
    const mine = a.getByRole("button", { name: "Profile" });
    await mine.waitFor();
    await a.waitForFunction(() => !document.querySelector(".sidebar .bar .avatar img"));
    expect((await mine.locator(".avatar").textContent())!.trim().length).toBeGreaterThan(0);
  });

  clientTest("the quick switcher puts a name typed in full first: \"Room 1\" and Enter opens Room 1, not the more recent Room 19", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const tag = uniqueName("r");
    const make = async (title: string) => (await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title, member_ids: [bob.user.id] } })).body.id;
    const one = await make(`Room 1${tag}`);
    await make(`Room 1${tag}9`);
    await make(`Room 1${tag}0`);
    const a = await pageFor(alice);
    await a.keyboard.press("Control+k");
    await a.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Conversation name");
    await a.keyboard.type(`room 1${tag}`);
    await a.getByRole("option").nth(2).waitFor();
    await a.keyboard.press("Enter");
    await a.waitForURL(`**/c/${one}`);
  });

  clientTest("drafts are their user's: kept over a lost session, not shown to the next person who signs in in the same browser, there again for their user", async () => {
    const { alice, bob, carol, group } = await aliceWithFriendsInAGroup("Shared drafts");
    expect((await s.api("POST", `/api/conversations/${group.body.id}/members`, { token: alice.token, body: { user_ids: [carol.user.id] } })).status).toBeLessThan(300);
    const b = await pageFor(bob, `/c/${group.body.id}`);
    const box = b.getByRole("textbox", { name: "Message" });
    await box.fill("bob's own words");
    // The session lost (a 401 from anywhere): the drafts are kept.
    await b.route("**/api/search/**", (route) => route.fulfill({ status: 401, contentType: "application/json", body: JSON.stringify({ error: { code: "unauthorized", message: "token expired" } }) }));
    await b.getByRole("button", { name: "Search" }).click();
    await b.getByRole("searchbox", { name: "Search messages" }).fill("anything");
    await b.keyboard.press("Enter");
    await b.getByText("Your session has ended. Sign in again; your drafts are kept.").waitFor();
    await b.unrouteAll({ behavior: "ignoreErrors" });
    await signInWithForm(b, carol);
    await convLink(b, "Shared drafts").click();
    await log(b).waitFor();
    expect(await box.inputValue()).toBe("");
    await b.getByRole("button", { name: "Profile" }).click();
    await b.getByRole("button", { name: "Sign out" }).click();
    await signInWithForm(b, bob);
    await convLink(b, "Shared drafts").click();
    await log(b).waitFor();
    expect(await box.inputValue()).toBe("bob's own words");
  });

  clientTest("read part of the way on another device: the sidebar counts what is left unread (it said none)", async () => {
    const { alice, bob, group } = await aliceWithFriendsInAGroup("Partly read");
    const b = await pageFor(bob);
    const first = await say(alice, group.body.id, "one");
    await say(alice, group.body.id, "two");
    await say(alice, group.body.id, "three");
    await b.getByRole("link", { name: /^Partly read.*, 3 unread$/ }).waitFor();
    expect((await s.api("POST", `/api/conversations/${group.body.id}/read`, { token: bob.token, body: { message_id: first.id } })).status).toBe(200);
    await b.getByRole("link", { name: /^Partly read.*, 2 unread$/ }).waitFor();
    const last = await say(alice, group.body.id, "four");
    await b.getByRole("link", { name: /^Partly read.*, 3 unread$/ }).waitFor();
    expect((await s.api("POST", `/api/conversations/${group.body.id}/read`, { token: bob.token, body: { message_id: last.id } })).status).toBe(200);
    await b.getByRole("link", { name: /^Partly read[^,]*$/ }).waitFor();
  });

  clientTest("accessibility: axe-core finds nothing on the sign-in page, a conversation and every dialog, light and dark, desktop and phone; comboboxes name their highlighted option; Skip to the conversation", async () => {
    const axe = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
    /** axe's violations on the page as it is (its own script given through the debugger protocol: the page's CSP allows no other). */
    const violations = async (p: Page, where: string) => {
      await p.evaluate(axe);
      const found: { id: string; nodes: { target: string[]; html: string }[] }[] = await p.evaluate(async () => (await (window as any).axe.run(document, { resultTypes: ["violations"] })).violations);
      return found
        // The conversation links' and the switcher's names are "<title>, N unread" (§10), with the
        // preview, time and badge drawn beside the title: the visible title starts the name.
        .map((v) => (v.id === "label-content-name-mismatch" ? { ...v, nodes: v.nodes.filter((n) => !/^<(a [^>]*class="item|li [^>]*role="option")/.test(n.html)) } : v))
        .filter((v) => v.nodes.length)
        .map((v) => `${where}: ${v.id} ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    };
    const problems: string[] = [];
    const signInPage = await (await browser!.newContext()).newPage();
    await signInPage.goto(s.base + "/");
    await signInPage.getByRole("textbox", { name: "Username" }).waitFor();
    problems.push(...(await violations(signInPage, "sign-in")));
    await signInPage.context().close();
    // A first use's welcome, and the strip with "Reconnect now" while the network is away.
    const newcomer = await pageFor(await s.register(uniqueName("newcomer")));
    await newcomer.getByRole("heading", { name: "Welcome to Parley" }).waitFor();
    problems.push(...(await violations(newcomer, "welcome")));
    await newcomer.context().setOffline(true);
    await newcomer.getByRole("button", { name: "Reconnect now" }).waitFor();
    problems.push(...(await violations(newcomer, "reconnecting")));
    await newcomer.context().setOffline(false);

    const { alice, bob, carol, group } = await aliceWithFriendsInAGroup("Accessible");
    const first = await say(bob, group.body.id, "a first message with a link https://example.com/x");
    await s.api("POST", `/api/conversations/${group.body.id}/messages`, { token: bob.token, body: { content: "a reply", reply_to_id: first.id } });
    const edited = await say(alice, group.body.id, "to be edited");
    await s.api("PATCH", `/api/messages/${edited.id}`, { token: alice.token, body: { content: "edited" } });
    const gone = await say(bob, group.body.id, "to be deleted");
    await s.api("DELETE", `/api/messages/${gone.id}`, { token: bob.token });
    await s.api("POST", `/api/messages/${first.id}/reactions`, { token: alice.token, body: { emoji: "👍" } });
    await s.api("POST", "/api/friendships", { token: carol.token, body: { friend_id: bob.user.id } });
    const a = await pageFor(alice, `/c/${group.body.id}`);
    await log(a).getByText("(edited)").waitFor();
    for (const theme of ["light", "dark"]) {
      while ((await a.evaluate(() => document.documentElement.dataset.theme ?? "system")) !== theme) await a.getByRole("button", { name: /^Theme:/ }).click();
      problems.push(...(await violations(a, `${theme} conversation`)));
      for (const [button, name] of [["Friends", "Friends"], ["New conversation", "New conversation"], ["Conversation settings", "Conversation settings"], ["(profile)", "Profile"], ["Search", "Search"]] as const) {
        await a.getByRole("button", { name: button }).first().click();
        const dialog = a.getByRole("dialog", { name });
        await dialog.waitFor();
        if (name === "Search") {
          await dialog.getByRole("searchbox", { name: "Search messages" }).fill("first");
          await dialog.locator("mark").first().waitFor();
        }
        problems.push(...(await violations(a, `${theme} ${name}`)));
        await dialog.getByRole("button", { name: "Close" }).click();
        await dialog.waitFor({ state: "detached" });
      }
    }
    expect(problems).toEqual([]);

    // The quick switcher names the option its arrows move to; with nothing to offer, it is not expanded.
    await a.keyboard.press("Control+k");
    const combo = a.getByRole("combobox", { name: "Conversation name" });
    await combo.waitFor();
    await a.keyboard.type("zzz-none");
    await a.waitForFunction(() => document.querySelector("[role=combobox]")?.getAttribute("aria-expanded") === "false");
    await combo.fill("Access");
    await a.getByRole("option").first().waitFor();
    const active = await combo.getAttribute("aria-activedescendant");
    expect(await a.locator(`[id="${active}"]`).getAttribute("aria-selected")).toBe("true");
    await a.keyboard.press("Escape");
    // The mention list's highlighted option, on the message box.
    const box = a.getByRole("textbox", { name: "Message" });
    await box.fill("@");
    await a.getByRole("listbox", { name: "Mention someone" }).waitFor();
    const mentioned = await box.getAttribute("aria-activedescendant");
    expect(await a.locator(`[id="${mentioned}"]`).getAttribute("role")).toBe("option");
    await box.fill("");
    // A message's link and reactions are in the Tab order of the message the keyboard is on only.
    const older = log(a).locator(".msg").filter({ hasText: "a first message" });
    expect(await older.locator("a, .reaction").evaluateAll((els: any[]) => els.map((e) => e.tabIndex))).toEqual([-1, -1]);
    // Skip to the conversation: the first stop of the keyboard, to the messages.
    expect(await a.evaluate(() => document.querySelector("button, a[href], input, textarea, select, [tabindex='0']")?.textContent?.trim())).toBe("Skip to the conversation");
    const skip = a.getByRole("button", { name: "Skip to the conversation" });
    await skip.focus();
    expect((await skip.boundingBox())!.width).toBeGreaterThan(20); // drawn while it has the focus
    await a.keyboard.press("Enter");
    expect(await a.evaluate(() => document.activeElement?.getAttribute("role"))).toBe("log");

    // A phone: the list, then the conversation.
    const phone = await pageFor(alice, "/", s, { width: 390, height: 780 });
    expect(await violations(phone, "phone list")).toEqual([]);
  });

  clientTest("the composer counts a message's characters as the server does: 4,000 emoji fit, one more says how many are over", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    const box = a.getByRole("textbox", { name: "Message" });
    // 4,000 code points in 8,000 UTF-16 units: a maxLength of 4000 cut it in half.
    await box.fill("😀".repeat(4001));
    await a.getByRole("alert").filter({ hasText: "Too long: a message may have at most 4,000 characters (1 character over)." }).waitFor();
    await expect(a.getByRole("button", { name: "Send" }).isDisabled()).resolves.toBe(true);
    await box.press("Enter");
    await box.press("End");
    await box.press("Backspace");
    await a.getByRole("alert").filter({ hasText: "Too long" }).waitFor({ state: "detached" });
    await box.press("Enter");
    await settled(a);
    const sent = (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items;
    expect(sent.length).toBe(1);
    expect([...sent[0].content].length).toBe(4000);
  });

  clientTest("more unread than a page, opened by its link (or a reload, before the list has arrived): at the first unread too, nothing marked read", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(alice, conv, "read 0");
    for (let i = 0; i < 80; i++) await say(bob, conv, `unread ${i}`);
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByRole("separator").filter({ hasText: "New messages" }).waitFor();
    expect(await a.evaluate(() => document.querySelector("[role=log] .divider")?.nextElementSibling?.textContent ?? "")).toContain("unread 0");
    await Bun.sleep(300);
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count).toBe(80);
  });
});
