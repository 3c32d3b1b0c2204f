/**
 * The web client in a real Chromium, as a user uses it (the flows found by acceptance passes
 * and reviews: reading and writing, drafts and kept messages, dialogs, phones, tabs). The
 * harness: web-harness.ts; the rest of the browser suite: web-browser.test.ts.
 */
import { describe, expect } from "bun:test";
import type { Locator, Page } from "playwright-core";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { startServer, uniqueName, waitFor, type Account } from "./helpers";
import { png } from "./files-fixtures";
import { shots, browser, s, contexts, pageErrors, clientTest, socketLive, pageFor, friends, direct, aliceWithFriendsInAGroup, aliceAwayFromDirect, say, log, longHistory, settled, holdUploads, signInWithForm, convLink, useBrowserSuite } from "./web-harness";

// The functions given to page.evaluate run in the page; the test program has no DOM types.
declare const document: any, window: any, getComputedStyle: any, MutationObserver: any, history: any, location: any;
type HTMLElement = any;

useBrowserSuite();

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
    a.once("dialog", (d) => void d.accept());
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
    // Not loaded (two pages back): its quote read for it (it said only "Reply to an earlier message"), and the history around it.
    const far = log(a).locator(".msg").filter({ hasText: "about line 3" }).locator(".quote");
    await far.filter({ hasText: `${alice.user.display_name}: line 3` }).waitFor();
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
  clientTest("on a phone, a notice leaves the list's buttons and the message box free, whatever the box holds", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "reply to this");
    const a = await pageFor(alice, "/c/00000000-0000-4000-8000-000000000000", s, { width: 390, height: 760 });
    const notice = a.getByRole("alert").filter({ hasText: "That conversation does not exist, or you are not a member." });
    await notice.waitFor({ timeout: 5000 });
    const clear = async (n: Locator, other: Locator) => {
      const [nb, o] = [(await n.boundingBox())!, (await other.boundingBox())!];
      expect(nb.y >= o.y + o.height || nb.y + nb.height <= o.y).toBe(true);
    };
    for (const name of ["New conversation", "Friends", "Search"]) await clear(notice, a.getByRole("button", { name, exact: true }));
    await a.getByRole("button", { name: "Dismiss" }).click();
    await convLink(a, bob.user.display_name).click();
    // A reply and several lines make the box taller (at a fixed height, the notice covered them).
    const quoted = log(a).locator(".msg").filter({ hasText: "reply to this" });
    await quoted.click();
    await quoted.getByRole("button", { name: "Reply" }).click();
    await a.getByText(/^Replying to/).waitFor();
    const box = a.getByRole("textbox", { name: "Message" });
    await box.fill("one\ntwo\nthree\nfour\nfive");
    await a.context().setOffline(true);
    await quoted.click();
    await quoted.getByRole("button", { name: "React", exact: true }).click();
    await quoted.getByRole("button", { name: "React 👍" }).click();
    const failed = a.getByRole("alert").filter({ hasText: "The reaction did not change. You are offline." });
    await failed.waitFor();
    await clear(failed, a.locator("form.composer"));
    await a.context().setOffline(false);
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
    expect(await settings.getByRole("heading", { level: 3 }).allTextContents()).toEqual(["Group name", "Add people", "Members (3)"]);
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
    // One still uploading at the reload cannot outlive the page: the next page says so on its chip (it went without a word), once.
    await holdUploads(b);
    await b.locator("input[type=file]").setInputFiles([{ name: "in-flight.txt", mimeType: "text/plain", buffer: Buffer.from("x") }]);
    await files(b).getByText("in-flight.txt").waitFor();
    await box.fill("with what was kept");
    // Put away (a phone's browser may end it from there without another event): kept as cut; shown again: not.
    const stored = () => b.evaluate((id) => localStorage.getItem(`parley.compose.${id}`) ?? "", bob.user.id);
    const shown = (state: "hidden" | "visible") =>
      b.evaluate((state) => {
        Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
        // Shown again: the browser's own state from here (the reload's going makes it "hidden").
        if (state === "visible") delete (document as { visibilityState?: string }).visibilityState;
      }, state);
    await shown("hidden");
    expect(await stored()).toContain("in-flight.txt");
    await shown("visible");
    expect(await stored()).not.toContain("in-flight.txt");
    // Reloaded while it is held (let go first, it could finish before the reload and be kept).
    await b.reload();
    await b.unrouteAll({ behavior: "ignoreErrors" });
    await log(b).waitFor();
    await files(b).getByRole("button", { name: "Remove kept.txt" }).waitFor();
    await files(b).getByRole("img", { name: "dot.png" }).waitFor();
    const cut = files(b).locator("li").filter({ hasText: "in-flight.txt" });
    await cut.getByText("Still uploading when the page closed: pick it again.").waitFor();
    await b.getByText(/^Replying to .*: reply to me$/).waitFor();
    expect(await box.inputValue()).toBe("with what was kept");
    expect(await b.evaluate((id) => localStorage.getItem(`parley.compose.${id}`), bob.user.id)).not.toContain("in-flight.txt");
    await cut.getByRole("button", { name: "Remove in-flight.txt" }).click();

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

  // From a review: storage of another shape stopped the page's start (an effect's first run threw), and a kept upload swept by the server failed the whole send.
  clientTest("what is kept for the next message and can no longer be used: an expired picture link shows as a file, an upload the server swept says so, entries of another shape are left out", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const up = await fetch(`${s.base}/api/uploads?filename=old.png`, { method: "POST", headers: { authorization: `Bearer ${bob.token}`, "content-type": "image/png" }, body: await png(32, 32) });
    const attachment = (await up.json()) as { id: string; url: string; thumbnail_url: string };
    expect(attachment.thumbnail_url).toContain("e=");
    const expired = { ...attachment, thumbnail_url: attachment.thumbnail_url.replace(/([?&])e=\d+/, "$1e=1") };
    const swept = { ...attachment, id: crypto.randomUUID(), thumbnail_url: null };
    const kept = JSON.stringify({
      [conv]: { files: [{ key: "k1", name: "old.png", size: 100, attachment: expired }, { key: "k2", name: "swept.txt", size: 5, attachment: swept }, null, { key: "k3" }], replyTo: { id: 5 } },
      other: { files: {} },
      more: [1, 2],
    });
    const b = await pageFor(bob, `/c/${conv}`, s, undefined, (p) => p.context().addInitScript(({ k, v }) => localStorage.getItem(k) ?? localStorage.setItem(k, v), { k: `parley.compose.${bob.user.id}`, v: kept }));
    const files = b.getByRole("list", { name: "Files to send" });
    await files.getByRole("button", { name: "Remove old.png" }).waitFor();
    expect(await files.getByRole("img").count()).toBe(0);
    await files.getByText("No longer on the server (kept too long): pick it again.").waitFor();
    expect(await files.getByRole("listitem").count()).toBe(2);
    expect(await b.getByText(/^Replying to/).count()).toBe(0);
    // What can go, goes: the text with the file still there.
    const box = b.getByRole("textbox", { name: "Message" });
    await box.fill("with the old picture");
    await box.press("Enter");
    await log(b).getByText("with the old picture").waitFor();
    await settled(b);
    const last = (await s.api("GET", `/api/conversations/${conv}/messages?limit=1`, { token: bob.token })).body.items[0];
    expect([last.content, last.attachments.map((x: { id: string }) => x.id)]).toEqual(["with the old picture", [attachment.id]]);
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

  // Found by an acceptance pass: the text typed into an edit went without a word at a switch to another conversation, or a reload.
  clientTest("an edit under way is kept while another conversation is open and across a reload, then saved", async () => {
    const { alice, bob, group, a } = await aliceWithFriendsInAGroup("Edits kept");
    const conv = (await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "direct", user_id: bob.user.id } })).body.id;
    const mine = await say(alice, group.body.id, "first words");
    await log(a).getByText("first words").waitFor();
    const box = a.getByRole("textbox", { name: "Message" });
    await box.press("ArrowUp");
    await a.getByText("Editing your message").waitFor();
    await box.fill("better words, not saved yet");
    await convLink(a, bob.user.display_name).click();
    await a.getByRole("region", { name: bob.user.display_name }).waitFor();
    expect(await a.getByText("Editing your message").count()).toBe(0);
    expect(await box.inputValue()).toBe("");
    await convLink(a, "Edits kept").click();
    await a.getByText("Editing your message").waitFor();
    expect(await box.inputValue()).toBe("better words, not saved yet");
    await box.fill("better words, across a reload");
    await a.reload();
    await a.getByText("Editing your message").waitFor();
    expect(await box.inputValue()).toBe("better words, across a reload");
    await box.press("Enter");
    await a.getByText("Editing your message").waitFor({ state: "detached" });
    await log(a).getByText("better words, across a reload").waitFor();
    const page = await s.api("GET", `/api/conversations/${group.body.id}/messages?limit=5`, { token: alice.token });
    expect(page.body.items.find((m: { id: string }) => m.id === mine.id).content).toBe("better words, across a reload");
    await a.reload();
    await log(a).getByText("better words, across a reload").waitFor();
    expect(await a.getByText("Editing your message").count()).toBe(0);
    expect(conv).toBeTruthy();
  });

  // Found by an acceptance pass: of 30 matches the switcher offered 20, and said nothing of the rest.
  clientTest("the quick switcher says how many more conversations match than it shows", async () => {
    const alice = await s.register(uniqueName("alice"));
    for (let i = 1; i <= 23; i++) expect((await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: `Proj ${String(i).padStart(2, "0")}`, member_ids: [] } })).status).toBe(201);
    const a = await pageFor(alice);
    await convLink(a, "Proj 23").waitFor();
    await a.keyboard.press("Control+k");
    const dialog = a.getByRole("dialog", { name: "Switch conversation" });
    await dialog.getByRole("combobox", { name: "Conversation name" }).fill("proj");
    await dialog.getByText("3 more conversations match: type more of the name.").waitFor();
    expect(await dialog.getByRole("option").count()).toBe(20);
    await dialog.getByRole("combobox", { name: "Conversation name" }).fill("proj 2");
    await dialog.getByRole("option", { name: "Proj 23" }).waitFor();
    expect(await dialog.getByText(/more conversations? match/).count()).toBe(0);
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

// From an acceptance pass with the keyboard, a screen reader's view and a touch screen (2026-12-04).
describe("keyboard, screen reader and touch (an acceptance pass)", () => {
  /** Alice's page open on her conversation with Carol; Bob's direct conversation with her in the list. */
  async function readingCarol() {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    const withBob = await direct(alice, bob);
    const withCarol = await direct(alice, carol);
    await say(carol, withCarol, "hello");
    const a = await pageFor(alice, `/c/${withCarol}`);
    await log(a).getByText("hello").waitFor();
    return { bob, withBob, a };
  }
  /** The focused element's name, near enough: its aria-label, else its label's text, else its own. */
  const focused = (p: Page) =>
    p.evaluate(() => {
      const el = document.activeElement;
      return el?.getAttribute("aria-label") ?? el?.labels?.[0]?.textContent?.trim() ?? el?.textContent ?? el?.tagName;
    });
  const told = (p: Page) => p.locator('.visually-hidden[aria-live="polite"]');

  clientTest("the keyboard goes on where a control goes away: Jump to latest, Leave group, Delete group (said), Accept, Add friend", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    await say(alice, conv, "read 0");
    for (let i = 0; i < 30; i++) await say(bob, conv, `unread ${i}`);
    const a = await pageFor(alice, `/c/${conv}`);
    // The divider is named, as the days are (a separator's text is not read out).
    await log(a).getByRole("separator", { name: "New messages" }).waitFor();
    await log(a).evaluate((el: HTMLElement) => (el.scrollTop = 0));
    const jump = a.getByRole("button", { name: "Jump to latest" });
    await jump.focus();
    await a.keyboard.press("Enter");
    await jump.waitFor({ state: "detached" });
    await waitFor(async () => (await focused(a)) === "Message");

    // A group left, then one deleted, from its settings: the list's first action has the keyboard, and what happened is said.
    for (const [title, button, said] of [["Left soon", "Leave group", "You left “Left soon”."], ["Deleted soon", "Delete group", "“Deleted soon” was deleted."]] as const) {
      const g = await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title, member_ids: [bob.user.id] } });
      expect(g.status).toBe(201);
      await convLink(a, title).click();
      await a.getByRole("button", { name: "Conversation settings" }).click();
      a.once("dialog", (d) => void d.accept());
      await a.getByRole("button", { name: button }).focus();
      await a.keyboard.press("Enter");
      await convLink(a, title).waitFor({ state: "detached" });
      await waitFor(async () => (await focused(a)) === "New conversation");
      await told(a).getByText(said).waitFor();
      expect(await a.getByRole("alert").count()).toBe(0);
    }

    // Accept: the new friend's Message; Add friend: back to the search box (the whole dialog
    // took the focus). Under the default contact policy (friends: a person found offers no Message).
    const server = await startServer({ contactPolicy: "friends" });
    try {
      const [ann, cy, dee] = [await server.register(uniqueName("ann")), await server.register(uniqueName("cy")), await server.register(uniqueName("dee"))];
      expect((await server.api("POST", "/api/friendships", { token: cy.token, body: { friend_id: ann.user.id } })).status).toBe(201);
      const p = await pageFor(ann, "/", server);
      await p.getByRole("button", { name: "Friends", exact: true }).click();
      await p.getByRole("button", { name: `Accept ${cy.user.display_name}` }).focus();
      await p.keyboard.press("Enter");
      await waitFor(async () => (await focused(p)) === `Message ${cy.user.display_name}`);
      await p.getByRole("textbox", { name: "Find people" }).fill(dee.user.username);
      await p.keyboard.press("Enter");
      await p.getByRole("button", { name: `Add friend ${dee.user.display_name}` }).focus();
      await p.keyboard.press("Enter");
      await p.getByText("Requested").waitFor();
      await waitFor(async () => (await focused(p)) === "Find people");
    } finally {
      await server.stop();
    }
  });

  // The log's own silence (history, one's own sends, Seen by) is web-browser.test.ts's "what a screen reader is told".
  clientTest("messages from others are said as they come, one by one, also while one's own waits unsent; the next person signed in in the tab hears nothing of them", async () => {
    const [alice, bob, carol] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob")), await s.register(uniqueName("carol"))];
    const conv = await direct(alice, bob);
    await say(bob, conv, "earlier");
    const a = await pageFor(alice, `/c/${conv}`);
    await log(a).getByText("earlier").waitFor();
    // Everything the announcer says, in order (each is a new node).
    await told(a).evaluate((el: HTMLElement) => {
      (window as any).said = [];
      new MutationObserver(() => (window as any).said.push(el.textContent)).observe(el, { childList: true, subtree: true });
    });
    const said = () => a.evaluate(() => (window as any).said as string[]);
    const bobSays = async (text: string) => {
      await say(bob, conv, text);
      await waitFor(async () => (await said()).includes(`${bob.user.display_name}: ${text}`));
    };
    await bobSays("one");
    await bobSays("two");
    // One's own message refused stays at the end of the list, unsent: what comes is said all the same (it was not).
    await a.route(`**/api/conversations/${conv}/messages`, (route) =>
      route.request().method() === "POST" ? route.fulfill({ status: 422, contentType: "application/json", body: JSON.stringify({ error: { code: "validation_failed", message: "refused here" } }) }) : route.continue());
    await a.getByRole("textbox", { name: "Message" }).fill("not going anywhere");
    await a.keyboard.press("Enter");
    await log(a).locator(".msg").filter({ hasText: "not going anywhere" }).locator(".state").waitFor();
    await bobSays("three");
    expect((await said()).filter((x) => x.includes("not going anywhere"))).toEqual([]);
    await a.unroute(`**/api/conversations/${conv}/messages`);
    // Signed out, and someone else signed in in this tab: Bob's words are not on their page.
    await a.getByRole("button", { name: "Profile" }).click();
    a.once("dialog", (d) => void d.accept());
    await a.getByRole("button", { name: "Sign out" }).click();
    await signInWithForm(a, carol);
    await a.getByRole("button", { name: "New conversation" }).waitFor();
    expect(await told(a).textContent()).toBe("");
  });

  clientTest("a touch screen: opening a conversation leaves the on-screen keyboard down, Back returns to its link, tools and reactions are finger-sized, a member reads the group's whole name", async () => {
    const title = `A group whose name is long enough to be cut in the header of a phone ${Date.now()}`;
    const { alice, bob, group } = await aliceWithFriendsInAGroup(title);
    await say(alice, group.body.id, "hello from the owner");
    const b = await pageFor(bob, "/", s, { width: 390, height: 780 }, undefined, true);
    await convLink(b, title.slice(0, 20)).click();
    await log(b).getByText("hello from the owner").waitFor();
    // The messages have the focus, not the message box (which would bring up the keyboard).
    await waitFor(async () => (await focused(b)) === "Messages");
    const msg = log(b).locator(".msg").last();
    await msg.focus();
    for (const name of ["Reply", "React"]) {
      const box = (await msg.getByRole("button", { name }).boundingBox())!;
      expect(Math.min(box.width, box.height)).toBeGreaterThanOrEqual(40);
    }
    await b.screenshot({ path: join(shots, "phone-touch-tools.png") });
    await msg.getByRole("button", { name: "React" }).click();
    await b.screenshot({ path: join(shots, "phone-touch-picker.png") });
    for (const r of await b.getByRole("button", { name: /^React / }).all()) {
      const box = (await r.boundingBox())!;
      expect(Math.min(box.width, box.height)).toBeGreaterThanOrEqual(40);
    }
    await b.keyboard.press("Escape");
    await b.getByRole("button", { name: "Conversation settings" }).click();
    await b.getByRole("dialog", { name: "Conversation settings" }).getByText(title, { exact: true }).waitFor();
    await b.screenshot({ path: join(shots, "phone-member-settings.png") });
    await b.getByRole("button", { name: "Close" }).click();
    await b.getByRole("button", { name: "Back" }).click();
    await waitFor(async () => ((await focused(b)) ?? "").startsWith(title));
  });

  clientTest("sign-up: the field at fault says so (aria-invalid) and is described by the error", async () => {
    const taken = await s.register(uniqueName("taken"));
    const context = await browser!.newContext();
    contexts.push(context);
    const p = await context.newPage();
    await p.goto(s.base);
    const [user, pass] = [p.getByRole("textbox", { name: "Username" }), p.getByLabel("Password")];
    await user.fill(taken.user.username);
    await pass.fill("password123");
    await p.getByRole("button", { name: "Create account" }).click();
    await p.getByRole("alert").getByText("That username is taken.").waitFor();
    expect(await user.getAttribute("aria-invalid")).toBe("true");
    expect(await pass.getAttribute("aria-invalid")).toBeNull();
    await expect(user.evaluate((el: HTMLElement) => document.getElementById(el.getAttribute("aria-describedby"))?.textContent)).resolves.toBe("That username is taken.");
    await user.fill(uniqueName("fresh"));
    await pass.fill("short");
    await p.getByRole("button", { name: "Create account" }).click();
    await p.getByRole("alert").getByText("The password must have 8–128 characters.").waitFor();
    expect(await pass.getAttribute("aria-invalid")).toBe("true");
    expect(await user.getAttribute("aria-invalid")).toBeNull();
  });

  clientTest("New conversation: the friends to message are one Tab stop, arrows within; Friends lists them by name; a link in right-to-left text reads left to right", async () => {
    const alice = await s.register(uniqueName("alice"));
    const names = ["Zed", "Amy", "Mia"];
    const others: Account[] = [];
    for (const n of names) {
      const o = await s.register(uniqueName(n.toLowerCase()));
      expect((await s.api("PATCH", "/api/users/me", { token: o.token, body: { display_name: n } })).status).toBe(200);
      await friends(o, alice);
      others.push(o);
    }
    const conv = (await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "direct", user_id: others[0]!.user.id } })).body.id;
    await say(others[0]!, conv, "ראה https://example.org/שלום עכשיו");
    const a = await pageFor(alice, `/c/${conv}`);
    const link = log(a).getByRole("link", { name: "https://example.org/שלום" });
    await link.waitFor();
    expect(await link.getAttribute("dir")).toBe("ltr");
    // Left to right: the address's start is left of its Hebrew end.
    const [start, end] = await link.evaluate((el: HTMLElement) => {
      const range = document.createRange();
      const text = el.firstChild;
      range.setStart(text, 0), range.setEnd(text, 5);
      const first = range.getBoundingClientRect().left;
      range.setStart(text, text.length - 4), range.setEnd(text, text.length);
      return [first, range.getBoundingClientRect().left];
    });
    expect(start).toBeLessThan(end);
    await a.screenshot({ path: join(shots, "rtl-link.png") });

    await a.getByRole("button", { name: "New conversation" }).click();
    await a.getByRole("button", { name: "Message Amy" }).focus();
    await a.keyboard.press("ArrowDown");
    expect(await focused(a)).toBe("Message Mia");
    await a.keyboard.press("End");
    expect(await focused(a)).toBe("Message Zed");
    await a.keyboard.press("Tab");
    expect(await focused(a)).toBe("Group name");
    await a.keyboard.press("Shift+Tab");
    expect(await focused(a)).toBe("Message Zed");
    await a.keyboard.press("Shift+Tab");
    expect(await focused(a)).not.toStartWith("Message ");
    await a.keyboard.press("Escape");
    await a.getByRole("button", { name: "Friends", exact: true }).click();
    const listed = a.getByRole("list", { name: "Friends list" }).locator(".title");
    await waitFor(async () => (await listed.count()) === 3);
    expect(await listed.allTextContents()).toEqual(["Amy", "Mia", "Zed"]);
  });

  // From an acceptance pass (2026-12-04): a tab open past ATTACHMENT_URL_TTL had links that
  // answered "this link has expired" (an image opened a JSON page, a download was cancelled).
  clientTest("a file or image whose link has expired is read again at the click and opens (a tab open for hours)", async () => {
    const server = await startServer({ attachmentUrlTtlSeconds: 4 });
    try {
      const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, server);
      const ids: string[] = [];
      for (const [name, type, body] of [["notes.txt", "text/plain", Buffer.from("kept for later")], ["photo.png", "image/png", await png(120, 90)]] as const) {
        const up = await fetch(`${server.base}/api/uploads?filename=${name}`, { method: "POST", headers: { authorization: `Bearer ${bob.token}`, "content-type": type }, body });
        expect(up.status).toBe(201);
        ids.push(((await up.json()) as { id: string }).id);
      }
      expect((await server.api("POST", `/api/conversations/${conv}/messages`, { token: bob.token, body: { content: "two files", attachment_ids: ids } })).status).toBe(201);
      const a = await pageFor(alice, `/c/${conv}`, server);
      const file = log(a).getByRole("link", { name: /notes\.txt/ });
      await file.waitFor();
      const old = await file.getAttribute("href");
      await Bun.sleep(4500);
      const download = a.waitForEvent("download");
      await file.click();
      const got = await download;
      expect(await got.failure()).toBeNull();
      expect(readFileSync((await got.path())!, "utf8")).toBe("kept for later");
      expect(got.url()).not.toBe(new URL(old!, server.base).href);
      // The thread shows the fresh links now.
      expect(await file.getAttribute("href")).not.toBe(old);
      await Bun.sleep(4500);
      const popup = a.context().waitForEvent("page");
      await log(a).getByRole("link", { name: "photo.png" }).click();
      const opened = await popup;
      await opened.waitForURL(/\/api\/attachments\//);
      const res = await opened.request.get(opened.url());
      expect(res.status()).toBe(200);
      expect(res.headers()["content-type"]).toBe("image/png");
    } finally {
      await server.stop();
    }
  });

  clientTest("an unread message deleted is no longer counted; files picked give the keyboard to the message box; what is typed in a dialog's box reads as text, not as its label", async () => {
    const { bob, withBob, a } = await readingCarol();
    const sent = await say(bob, withBob, "oops, wrong person");
    const link = a.getByRole("navigation", { name: "Conversations" }).getByRole("link", { name: new RegExp(`^${bob.user.display_name}`) });
    await waitFor(async () => ((await link.getAttribute("aria-label")) ?? (await link.textContent()) ?? "").includes("1 unread"));
    expect((await s.api("DELETE", `/api/messages/${sent.id}`, { token: bob.token })).status).toBe(204);
    await waitFor(async () => !((await link.getAttribute("aria-label")) ?? (await link.textContent()) ?? "").includes("unread"));

    await a.getByRole("button", { name: "Attach files" }).focus();
    await a.locator("input[type=file]").setInputFiles({ name: "caption-me.txt", mimeType: "text/plain", buffer: Buffer.from("x") });
    await waitFor(async () => (await focused(a)) === "Message");

    await a.getByRole("button", { name: "Conversation settings" }).click();
    await a.getByRole("button", { name: "Close" }).click();
    await a.getByRole("button", { name: "New conversation" }).click();
    const box = a.getByRole("dialog", { name: "New conversation" }).getByLabel("Group name");
    await box.fill("Typed");
    const [boxColor, bodyColor, boxSize] = await box.evaluate((el: HTMLElement) => [getComputedStyle(el).color, getComputedStyle(document.body).color, getComputedStyle(el).fontSize]);
    expect(boxColor).toBe(bodyColor);
    expect(boxSize).toBe("15px");
  });

  clientTest("Search stands still: its box does not move as results come and go, and Close and the box stay in view after More results", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    for (let i = 0; i < 45; i++) await say(bob, conv, `zebracorn sighting ${i}`);
    const a = await pageFor(alice, `/c/${conv}`);
    await a.getByRole("button", { name: "Search", exact: true }).click();
    const box = a.getByRole("searchbox", { name: "Search messages" });
    const top = async () => (await box.boundingBox())!.y;
    await box.fill("nothingmatcheshere");
    await a.keyboard.press("Enter");
    await a.getByText("Nothing found.").waitFor();
    const empty = await top();
    await box.fill("zebracorn");
    await a.keyboard.press("Enter");
    await a.getByRole("button", { name: "More results" }).waitFor({ timeout: 15_000 });
    expect(Math.abs((await top()) - empty)).toBeLessThan(2);
    await a.getByRole("button", { name: "More results" }).click();
    await a.getByText(/^45 results/).waitFor({ timeout: 15_000 });
    await a.screenshot({ path: join(shots, "search-more.png") });
    // In view: what is at the middle of each is itself (not scrolled off, nor under the results).
    for (const el of [box, a.getByRole("dialog", { name: "Search" }).getByRole("button", { name: "Close" })]) {
      const b = (await el.boundingBox())!;
      expect(await el.evaluate((node: HTMLElement, [x, y]: number[]) => node.contains(document.elementFromPoint(x, y)), [b.x + b.width / 2, b.y + b.height / 2])).toBe(true);
    }
  });

  clientTest("an upload refused for too many uploads (429) offers Retry and goes by itself after the Retry-After", async () => {
    const [alice, bob] = [await s.register(uniqueName("alice")), await s.register(uniqueName("bob"))];
    const conv = await direct(alice, bob);
    const a = await pageFor(alice, `/c/${conv}`);
    let refused = 0;
    await a.route("**/api/uploads**", (route) =>
      refused++ === 0
        ? route.fulfill({ status: 429, headers: { "retry-after": "1" }, contentType: "application/json", body: JSON.stringify({ error: { code: "rate_limited", message: "too many uploads" } }) })
        : route.continue());
    await a.locator("input[type=file]").setInputFiles({ name: "later.txt", mimeType: "text/plain", buffer: Buffer.from("in a second") });
    const retry = a.getByRole("button", { name: "Retry upload of later.txt" });
    await retry.waitFor();
    await retry.waitFor({ state: "detached", timeout: 5000 });
    await a.getByRole("textbox", { name: "Message" }).fill("with the file");
    await a.keyboard.press("Enter");
    await waitFor(async () => (await s.api("GET", `/api/conversations/${conv}/messages?limit=1`, { token: bob.token })).body.items[0]?.attachments?.length === 1);
    expect(refused).toBe(2);
  });

  // From a review (2026-12-04): the count read again after a delete, landing after a newer
  // message, put back the older count ("Message deleted", no badge, over an unread message).
  clientTest("a count read again after a delete does not undo a message that came meanwhile", async () => {
    const { bob, withBob, a } = await readingCarol();
    const link = a.getByRole("navigation", { name: "Conversations" }).getByRole("link", { name: new RegExp(`^${bob.user.display_name}`) });
    const name = async () => (await link.getAttribute("aria-label")) ?? (await link.textContent()) ?? "";
    const first = await say(bob, withBob, "deleted soon");
    await waitFor(async () => (await name()).includes("1 unread"));
    let held = 0;
    await a.route(`**/api/conversations/${withBob}`, async (route) => {
      if (route.request().method() !== "GET") return route.continue();
      // Answered now, delivered late: the answer is older than what comes meanwhile.
      const answer = await route.fetch();
      held++;
      await Bun.sleep(1500);
      await route.fulfill({ response: answer });
    });
    expect((await s.api("DELETE", `/api/messages/${first.id}`, { token: bob.token })).status).toBe(204);
    await waitFor(async () => held > 0);
    await say(bob, withBob, "the one that counts");
    await Bun.sleep(2500);
    await waitFor(async () => (await name()).includes("1 unread"));
    expect(await link.textContent()).toContain("the one that counts");
  });

  clientTest("a quota says its size as a person reads it (20 KB, not 20480 bytes); a search result of today says Today", async () => {
    const server = await startServer({ uploadQuotaBytes: 20 * 1024 });
    try {
      const [alice, bob] = [await server.register(uniqueName("alice")), await server.register(uniqueName("bob"))];
      const conv = await direct(alice, bob, server);
      await say(bob, conv, "quokka spotted", server);
      const a = await pageFor(alice, `/c/${conv}`, server);
      await a.locator("input[type=file]").setInputFiles({ name: "big.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(30 * 1024) });
      await a.getByRole("list", { name: "Files to send" }).getByRole("alert").filter({ hasText: "your quota of 20 KB;" }).waitFor();
      await a.getByRole("button", { name: "Search", exact: true }).click();
      await a.getByRole("searchbox", { name: "Search messages" }).fill("quokka");
      await a.keyboard.press("Enter");
      await a.locator(".hit-meta time").filter({ hasText: /^Today, / }).waitFor();
    } finally {
      await server.stop();
    }
  });
});
