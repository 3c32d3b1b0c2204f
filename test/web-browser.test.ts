/**
 * The web client in a real Chromium against the real server (PROTOCOL §10): two people
 * chatting live, history scroll-back, reconnect after a restart, a phone screen, keyboard
 * only, message text that never runs as HTML, search, §10's names as an outside suite finds
 * them, and a network that goes away. The harness and shared helpers: web-harness.ts; the
 * flows found by using the client as a user does: web-browser-use.test.ts.
 */
import { describe, expect } from "bun:test";
import type { Page, Route } from "playwright-core";
import { join } from "node:path";
import { startServer, uniqueName, waitFor, type Account, tempDir } from "./helpers";
import { backup } from "./backups";
import { png } from "./files-fixtures";
import { TestSocket } from "./ws-client";
import { shots, browser, s, contexts, btest, clientTest, pageFor, pageErrors, friends, direct, aliceWithFriendsInAGroup, aliceAwayFromDirect, say, log, longHistory, settled, convLink, recordingNotifications, setHidden, useBrowserSuite } from "./web-harness";

// The functions given to page.evaluate run in the page; the test program has no DOM types.
declare const document: any, window: any, getComputedStyle: any, MutationObserver: any, history: any, location: any;
type HTMLElement = any;

useBrowserSuite();

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
    await say(bob, conv, "and www.example.org. or my www.notes");
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
    // Written as people write one: www.… opens over https (it was text); "www.notes" is no address.
    expect(await log(a).getByRole("link", { name: "www.example.org" }).getAttribute("href")).toBe("https://www.example.org");
    expect(await log(a).getByRole("link", { name: /notes/ }).count()).toBe(0);
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

  clientTest("a mistyped or cut link (no page there) opens the list and says so (it showed the API's JSON); signed out, the sign-in form", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    await direct(alice, bob);
    const a = await pageFor(alice, "/c/nope/extra");
    await a.getByRole("alert").getByText("There is no page at /c/nope/extra: here are your conversations.").waitFor();
    expect(new URL(a.url()).pathname).toBe("/");
    await convLink(a, bob.user.display_name).waitFor();
    const context = await browser!.newContext();
    contexts.push(context);
    const out = await context.newPage();
    out.on("pageerror", (e) => pageErrors.push(e.message));
    await out.goto(s.base + "/foo");
    await out.getByRole("textbox", { name: "Username" }).waitFor();
    expect(new URL(out.url()).pathname).toBe("/");
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
    // A touch screen (no hover): a message touched last is not left shaded as if hovered (it
    // was, until another was touched); a mouse's hover shades it.
    const shaded = async (p: Page) => {
      const message = log(p).locator(".msg").filter({ hasText: "on the phone" });
      await message.hover();
      return message.evaluate((el) => getComputedStyle(el).backgroundColor !== "rgba(0, 0, 0, 0)");
    };
    const touch = await pageFor(alice, "/", s, { width: 390, height: 780 }, undefined, true);
    await convLink(touch, bob.user.display_name).click();
    expect(await shaded(touch)).toBe(false);
    expect(await shaded(a)).toBe(true);
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

  // From an acceptance pass (2026-12-04): the log was live, so a screen reader read out a whole
  // page of history on opening, every page scrolled back to, and "Seen by" moving on.
  clientTest("what a screen reader is told: messages from others as they come, not history loaded, own sends or Seen by", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 60; i++) await say(bob, conv, `old ${i}`);
    const sent = await say(alice, conv, "read me");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("read me").waitFor();
    expect(await log(a).getAttribute("aria-live")).toBe("off");
    const told = a.locator('[aria-live="polite"].visually-hidden');
    // Scrolled back: an older page loads; nothing of it is said.
    await log(a).evaluate((el) => (el.scrollTop = 0));
    await log(a).getByText("old 5", { exact: true }).waitFor();
    await s.api("POST", `/api/conversations/${conv}/read`, { token: bob.token, body: { message_id: sent.id } });
    await log(a).getByText(`Seen by ${bob.user.display_name}`).waitFor();
    await a.getByRole("textbox", { name: "Message" }).fill("mine");
    await a.keyboard.press("Enter");
    await log(a).getByText("mine").waitFor();
    expect(await told.textContent()).toBe("");
    await say(bob, conv, "hello there");
    await told.getByText(`${bob.user.display_name}: hello there`).waitFor();
    // The same words again are said again: a new node (the same text in place is not news to a screen reader).
    await told.evaluate((el) => {
      (window as any).added = 0;
      new MutationObserver((changes: any[]) => ((window as any).added += changes.reduce((n: number, c: any) => n + c.addedNodes.length, 0))).observe(el, { childList: true });
    });
    await say(bob, conv, "hello there");
    await a.waitForFunction(() => (window as any).added > 0);
    expect(await told.textContent()).toBe(`${bob.user.display_name}: hello there`);
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
    // Asked first (it took them out at once): declined, nothing changes; accepted, they go.
    const asked: string[] = [];
    a.once("dialog", (d) => void (asked.push(d.message()), d.dismiss()));
    await a.getByRole("button", { name: `Remove ${bob.user.display_name}` }).click();
    await waitFor(() => asked.length === 1);
    expect(asked).toEqual([`Remove ${bob.user.display_name} from “Planning Q1”?`]);
    await settled(a);
    expect(await a.getByRole("button", { name: `Remove ${bob.user.display_name}` }).count()).toBe(1);
    a.once("dialog", (d) => void d.accept());
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
    expect(headings).toEqual(["Group name", "Add friends", "Members (11)"]);
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
  clientTest("files past the 10 a message carries are not uploaded, said so on their chips; the message goes with the 10, and they go in the next (uploaded once there is room)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    let uploads = 0;
    a.on("request", (r) => void (r.url().includes("/api/uploads") && uploads++));
    await a.locator("input[type=file]").setInputFiles(Array.from({ length: 12 }, (_, i) => ({ name: `f${i + 1}.txt`, mimeType: "text/plain", buffer: Buffer.from(`file ${i + 1}`) })));
    const picks = a.getByRole("list", { name: "Files to send" });
    await picks.getByRole("listitem").nth(11).waitFor();
    const later = picks.getByText("A message carries at most 10 files: this one goes in the next.");
    expect(await later.count()).toBe(2);
    await a.waitForFunction(() => !document.querySelector(".picks progress"));
    expect(uploads).toBe(10);
    // One of the ten removed: the first waiting goes up in its place.
    await picks.getByRole("button", { name: "Remove f1.txt" }).click();
    await waitFor(async () => (await later.count()) === 1, 5000);
    await a.waitForFunction(() => !document.querySelector(".picks progress"));
    expect(uploads).toBe(11);
    const box = a.getByRole("textbox", { name: "Message" });
    await box.fill("ten files");
    await box.press("Enter");
    await waitFor(async () => (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items.length === 1, 5000);
    const sent = (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items[0];
    expect([sent.content, sent.attachments.map((x: { filename: string }) => x.filename)]).toEqual(["ten files", Array.from({ length: 10 }, (_, i) => `f${i + 2}.txt`)]);
    // The one left over is the next message's (it was thrown away with the send).
    await picks.getByRole("button", { name: "Remove f12.txt" }).waitFor();
    await a.waitForFunction(() => !document.querySelector(".picks progress"));
    expect(await later.count()).toBe(0);
    await box.fill("the twelfth");
    await box.press("Enter");
    await waitFor(async () => (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items.length === 2, 5000);
    const next = (await s.api("GET", `/api/conversations/${conv}/messages?limit=5`, { token: alice.token })).body.items[0];
    expect([next.content, next.attachments.map((x: { filename: string }) => x.filename)]).toEqual(["the twelfth", ["f12.txt"]]);
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
      // The limit is known now: a second file over it is refused without a request (over a slow
      // uplink a browser sends much of the body before it reads the early 413).
      const asked: string[] = [];
      a.on("request", (r) => r.url().includes("/api/uploads") && asked.push(r.url()));
      await a.locator("input[type=file]").setInputFiles({ name: "second.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(2 * 1024 * 1024) });
      await expect(chips.getByRole("alert").filter({ hasText: /^Too large: a file may have at most 1 MB$/ }).count()).resolves.toBeGreaterThanOrEqual(1);
      await chips.getByRole("listitem").filter({ hasText: "second.bin" }).getByRole("alert").waitFor();
      expect(asked).toEqual([]);
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

  clientTest("a search result far back in an unread conversation keeps its unread count until the newest are read, with the divider over its first unread (the count went at once, and no read was sent)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 120; i++) await say(bob, conv, i === 5 ? "message 5 mango" : `message ${i}`);
    const a = await pageFor(alice);
    const unread = (n: number) => a.getByRole("link", { name: new RegExp(`^${bob.user.display_name}.*, ${n} unread$`) });
    await unread(120).waitFor();
    await searchFor(a, "mango");
    await searchDialog(a).locator("button.result").filter({ hasText: "mango" }).click();
    await log(a).locator(".msg.flash").filter({ hasText: "message 5 mango" }).waitFor();
    await log(a).getByText("New messages").waitFor();
    await settled(a);
    await unread(120).waitFor();
    const server = async () => (await s.api("GET", `/api/conversations/${conv}`, { token: alice.token })).body.unread_count;
    expect(await server()).toBe(120);
    await a.getByRole("button", { name: "Jump to latest" }).click();
    await log(a).getByText("message 119", { exact: true }).waitFor();
    await waitFor(async () => (await server()) === 0, 5000);
    expect(await unread(120).count()).toBe(0);
  });

  clientTest("a reply to a message far back shows its quote, to its sender and to the others (both saw 'Reply to an earlier message')", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 120; i++) await say(bob, conv, i === 5 ? "message 5 papaya" : `message ${i}`);
    const b = await pageFor(bob, `/c/${conv}`);
    await log(b).getByText("message 119", { exact: true }).waitFor();
    const a = await pageFor(alice);
    await searchFor(a, "papaya");
    await searchDialog(a).locator("button.result").filter({ hasText: "papaya" }).click();
    const old = log(a).locator(".msg").filter({ hasText: "message 5 papaya" });
    await old.hover();
    await old.getByRole("button", { name: "Reply" }).click();
    await a.getByRole("textbox", { name: "Message" }).fill("answering an old one");
    await a.keyboard.press("Enter");
    for (const p of [a, b]) {
      const reply = log(p).locator(".msg").filter({ hasText: "answering an old one" });
      await reply.locator(".quote").filter({ hasText: `${bob.user.display_name}: message 5 papaya` }).waitFor();
    }
    // An edit of the message replied to reaches its quote (read for it, not loaded in the thread).
    const found = await s.api("GET", `/api/search/messages?q=papaya`, { token: bob.token });
    expect((await s.api("PATCH", `/api/messages/${found.body.items[0].message.id}`, { token: bob.token, body: { content: "message 5 papaya, ripe" } })).status).toBe(200);
    for (const p of [a, b]) await log(p).locator(".quote").filter({ hasText: `${bob.user.display_name}: message 5 papaya, ripe` }).waitFor();
  });

  clientTest("a quote the server will not give is asked for once, not at every render (from a review)", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const first = await say(bob, conv, "the very first");
    for (let i = 0; i < 80; i++) await say(bob, conv, `filler ${i}`);
    const reply = await s.api("POST", `/api/conversations/${conv}/messages`, { token: bob.token, body: { content: "replying to the first", reply_to_id: first.id } });
    expect(reply.status).toBe(201);
    // Read: the thread opens at its newest page, which does not hold the first message.
    expect((await s.api("POST", `/api/conversations/${conv}/read`, { token: alice.token, body: { message_id: reply.body.id } })).status).toBe(200);
    let asked = 0;
    const a = await pageFor(alice, "/", s, undefined, (p) =>
      p.route(/\/messages\?before=[^&]+&limit=1$/, (route) => (asked++, route.fulfill({ status: 500, contentType: "application/json", body: '{"error":{"code":"internal","message":"internal error"}}' }))));
    await convLink(a, bob.user.display_name).click();
    const quote = log(a).locator(".msg").filter({ hasText: "replying to the first" }).locator(".quote");
    await quote.waitFor();
    await waitFor(() => asked === 1, 5000);
    for (let i = 0; i < 3; i++) await say(bob, conv, `renders again ${i}`);
    await log(a).getByText("renders again 2").waitFor();
    await settled(a);
    expect(asked).toBe(1);
    expect(await quote.textContent()).toBe("Reply to an earlier message");
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
    // Not in red (it goes by itself: red is for a message the server refused).
    const state = log(a).locator(".state");
    expect(await state.textContent()).toBe("Not sent: offline. It goes when you are back online. Retry Discard");
    expect(await state.getAttribute("class")).toBe("state waiting");
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
      // When each socket is made, by the page's own clock (the test's view of it came late on a busy machine: a flake).
      const a = await pageFor(alice, "/", server, undefined, (p) =>
        p.addInitScript(() => {
          const Native = window.WebSocket;
          window.__made = [];
          window.WebSocket = class extends Native {
            constructor(...args: [string, string[]?]) {
              super(...args);
              window.__made.push(performance.now());
            }
          };
        }),
      );
      await server.stop(false);
      const away = a.getByRole("status").filter({ hasText: "Reconnecting…" });
      await away.waitFor();
      await Bun.sleep(12_000); // the backoff at its cap
      server = await startServer({}, dir, port);
      // A new socket within a second of the focus (its backoff would wait up to 10 s, full
      // jitter: a chance of some 10 % that it tried in that second anyway).
      const focusAt: number = await a.evaluate(() => {
        const at = performance.now();
        window.dispatchEvent(new Event("focus"));
        return at;
      });
      await a.waitForFunction((t: number) => window.__made.some((x: number) => x >= t), focusAt, { timeout: 10_000 });
      const made: number = await a.evaluate((t: number) => Math.min(...window.__made.filter((x: number) => x >= t)), focusAt);
      expect(made - focusAt).toBeLessThan(1000);
      await away.waitFor({ state: "hidden", timeout: 5000 });
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
    // Back online: a reconnect, the replay and the notice; past 10 s once in CI under load (7.7 s in all alone).
    await unsent.waitFor({ timeout: 20_000 });
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
