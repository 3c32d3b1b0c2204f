/**
 * The realtime hub against a real server with real WebSocket clients. The first four
 * tests are named after the defects of the original system (seed analysis, ปัญหาที่ 1–4).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { membersOf, startServer, TEST_BACKEND, waitFor, type Account, type TestServer } from "./helpers";
import { SQL } from "bun";
import { TURN_WAIT_MS } from "../src/realtime/ws";
import { TestSocket } from "./ws-client";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ presenceGraceMs: 0, typingTtlMs: 300, wsFramesPerMinute: 10_000 });
});
afterAll(() => s.stop());

const sockets: TestSocket[] = [];
const connect = async (who: Account, query = "") => {
  const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${who.token}${query}`);
  sockets.push(ws);
  return ws;
};
afterAll(() => sockets.forEach((w) => w.close()));

const users = async (n: number) => Promise.all(Array.from({ length: n }, () => s.register()));
const group = async (owner: Account, others: Account[], title = "G") =>
  (await s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title, member_ids: others.map((o) => o.user.id) } })).body.id as string;
const befriend = async (a: Account, b: Account) => {
  const { body } = await s.api("POST", "/api/friendships", { token: a.token, body: { friend_id: b.user.id } });
  await s.api("PATCH", `/api/friendships/${body.id}/accept`, { token: b.token });
  return body.id as string;
};
const isMsg = (content: string) => (f: { type: string; data: any }) => f.type === "message.receive" && f.data.content === content;

describe("the seed's defects cannot happen", () => {
  test("ปัญหาที่ 1: two users in one room both see each other's messages, sent by REST and by WebSocket, and they are persisted", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];

    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "rest from a" } });
    wb.send("message.send", { conversation_id: conv, content: "ws from b" });
    for (const w of [wa, wb]) {
      const viaRest = await w.waitFor(isMsg("rest from a"));
      const viaWs = await w.waitFor(isMsg("ws from b"));
      expect(viaRest.seq).toBeNumber();
      expect(viaWs.seq).toBeGreaterThan(viaRest.seq!);
    }
    const history = await s.api("GET", `/api/conversations/${conv}/messages`, { token: a!.token });
    expect(history.body.items.map((m: any) => m.content)).toEqual(["ws from b", "rest from a"]);

    // Edits and deletes over WebSocket are persisted too.
    const sent = wb.frames.find(isMsg("ws from b"))!.data;
    wb.send("message.edit", { message_id: sent.id, content: "edited over ws" });
    expect((await wa.next("message.edit")).data.content).toBe("edited over ws");
    wb.send("message.delete", { message_id: sent.id });
    expect((await wa.next("message.delete")).data.message_id).toBe(sent.id);
    const after = await s.api("GET", `/api/conversations/${conv}/messages`, { token: a!.token });
    expect(after.body.items[0]).toMatchObject({ id: sent.id, content: "", deleted_at: expect.any(String) });
  });

  test("ปัญหาที่ 2: a friend request and its acceptance arrive live, without a reload", async () => {
    const [a, b] = await users(2);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    const request = wb.next("friend.request");
    const { body: f } = await s.api("POST", "/api/friendships", { token: a!.token, body: { friend_id: b!.user.id } });
    expect((await request).data).toMatchObject({ request_id: f.id, user_id: a!.user.id, sender: { id: a!.user.id } });
    const accepted = wa.next("friend.accept");
    await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: b!.token });
    expect((await accepted).data).toMatchObject({ friendship_id: f.id, acceptor: { id: b!.user.id } });
  });

  test("ปัญหาที่ 3: presence updates live after subscribing", async () => {
    const [a, b] = await users(2);
    await befriend(a!, b!);
    const wa = await connect(a!);
    const reply = await wa.request("user.status.subscribe", { user_id: b!.user.id });
    expect(reply.type).toBe("user.offline");
    expect(reply.data).toMatchObject({ user_id: b!.user.id, online: false });
    const online = wa.next("user.online");
    const wb = await connect(b!);
    expect((await online).data).toMatchObject({ user_id: b!.user.id, online: true });
    const offline = wa.next("user.offline");
    wb.close();
    expect((await offline).data).toMatchObject({ user_id: b!.user.id, online: false, last_active_at: expect.any(String) });
  });

  test("ปัญหาที่ 4: a new conversation appears live, and its messages arrive without a join", async () => {
    const [a, b] = await users(2);
    const wb = await connect(b!);
    const created = wb.next("conversation.create");
    const conv = await group(a!, [b!], "Brand new");
    const c = await created;
    expect(c.data).toMatchObject({ id: conv, title: "Brand new", is_subscribed: true, unread_count: 0 });
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "first!" } });
    await wb.waitFor(isMsg("first!"));
  });
});

describe("connecting", () => {
  test("a bad, expired or tampered token, or a deleted user, is refused with 401 and the error body before the upgrade", async () => {
    const [a, gone] = await users(2);
    await s.rows("DELETE FROM users WHERE id = ?", gone!.user.id);
    const { sign } = s.app.ctx.tokens.plugin.decorator.jwt;
    const expired = await sign({ sub: a!.user.id, exp: Math.floor(Date.now() / 1000) - 5 });
    const upgrade = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" };
    for (const q of ["", "?token=", "?token=junk", `?token=${expired}`, `?token=${a!.token}x`, `?token=${gone!.token}`]) {
      const res = await fetch(`${s.base}/ws/user${q}`, { headers: upgrade });
      expect(res.status).toBe(401);
      expect(((await res.json()) as any).error.code).toBe("unauthorized");
    }
    // The Authorization header works too.
    const viaHeader = await TestSocket.connect(`${s.wsBase}/ws/user`, { headers: { authorization: `Bearer ${a!.token}` } });
    expect(viaHeader.frames[0]!.data.user_id).toBe(a!.user.id);
    viaHeader.close();
  });

  test("on open: connect, then conversation.list (every one subscribed), then user.online to status subscribers", async () => {
    const [a, b] = await users(2);
    await befriend(a!, b!);
    await group(a!, [b!]);
    const wb = await connect(b!);
    await wb.request("user.status.subscribe", { user_id: a!.user.id });
    const online = wb.next("user.online");
    const wa = await connect(a!);
    expect(wa.frames.slice(0, 2).map((f) => f.type)).toEqual(["connect", "conversation.list"]);
    expect(wa.frames[0]!.data).toEqual({ message: "Connected successfully", client_id: expect.any(String), user_id: a!.user.id, last_seq: expect.any(Number), epoch: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const list = wa.frames[1]!.data;
    expect(list.items).toHaveLength(1);
    expect(list.items.every((c: any) => c.is_subscribed)).toBe(true);
    expect((await online).data.user_id).toBe(a!.user.id);
  });

  test("each new socket's conversation.list shows member count, role, read position and peer as they are now", async () => {
    const [a, b, c] = await users(3);
    const conv = await group(a!, [b!, c!]);
    const direct = (await s.api("POST", "/api/conversations", { token: b!.token, body: { type: "direct", user_id: a!.user.id } })).body.id;
    const listOf = (w: TestSocket, id = conv) => w.frames.find((f) => f.type === "conversation.list")!.data.items.find((x: any) => x.id === id);
    expect(listOf(await connect(a!)).member_count).toBe(3);

    const { body: m } = await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "read me" } });
    await s.api("POST", `/api/conversations/${conv}/read`, { token: b!.token, body: { message_id: m.id } });
    await s.api("PATCH", `/api/conversations/${conv}/members/${b!.user.id}`, { token: a!.token, body: { role: "admin" } });
    await s.api("PATCH", "/api/users/me", { token: b!.token, body: { display_name: "Renamed B" } });
    await s.api("DELETE", `/api/conversations/${conv}/members/${c!.user.id}`, { token: a!.token });

    expect(listOf(await connect(a!)).member_count).toBe(2);
    const seenByB = await connect(b!);
    expect(listOf(seenByB)).toMatchObject({ member_count: 2, my_role: "admin", my_last_read_message_id: m.id, peer: null });
    expect(listOf(await connect(a!), direct)).toMatchObject({ title: "Renamed B", peer: { id: b!.user.id, display_name: "Renamed B" } });
    expect((await membersOf(s, a!.token, conv)).find((x: any) => x.user.id === b!.user.id)).toMatchObject({ role: "admin", last_read_message_id: m.id, user: { display_name: "Renamed B" } });
  });

  test("a socket is subscribed to every conversation of its user, not just the first five", async () => {
    const [a, b] = await users(2);
    const convs: string[] = [];
    for (let i = 0; i < 8; i++) convs.push(await group(a!, [b!], `g${i}`));
    const wb = await connect(b!);
    for (const [i, conv] of convs.entries()) await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: `in ${i}` } });
    for (let i = 0; i < convs.length; i++) await wb.waitFor(isMsg(`in ${i}`));
  });
});

describe("membership changes reach live sockets at once", () => {
  test("an added member's existing socket receives the next message", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, []);
    const wb = await connect(b!);
    await s.api("POST", `/api/conversations/${conv}/members`, { token: a!.token, body: { user_ids: [b!.user.id] } });
    await wb.waitFor((f) => f.type === "conversation.create" && f.data.id === conv);
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "welcome" } });
    await wb.waitFor(isMsg("welcome"));
  });

  test("a removed member gets conversation.delete and nothing more from the conversation", async () => {
    const [a, b, c] = await users(3);
    const conv = await group(a!, [b!, c!]);
    const [wb, wc] = [await connect(b!), await connect(c!)];
    await s.api("DELETE", `/api/conversations/${conv}/members/${b!.user.id}`, { token: a!.token });
    expect((await wb.waitFor((f) => f.type === "conversation.delete")).data).toEqual({ conversation_id: conv });
    await wc.waitFor((f) => f.type === "conversation.member_remove");
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "after removal" } });
    await wc.waitFor(isMsg("after removal"));
    expect(wb.frames.some((f) => f.type === "conversation.member_remove" || isMsg("after removal")(f))).toBe(false);
    // Typing into it is refused too.
    const refused = await wb.request("message.typing", { conversation_id: conv, is_typing: true });
    expect(refused.error.code).toBe("not_found");
  });

  test("deleting a conversation delivers conversation.delete to everyone, then nothing more", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    await s.api("DELETE", `/api/conversations/${conv}`, { token: a!.token });
    for (const w of [wa, wb]) expect((await w.waitFor((f) => f.type === "conversation.delete")).data.conversation_id).toBe(conv);
    expect(s.app.app.server!.subscriberCount(`conv:${conv}`)).toBe(0);
  });

  test("a conversation created over WebSocket subscribes every socket of both users", async () => {
    const [a, b] = await users(2);
    const [wa, wa2, wb] = [await connect(a!), await connect(a!), await connect(b!)];
    const ack = await wa.request("conversation.create", { type: "direct", user_id: b!.user.id });
    expect(ack.type).toBe("ack");
    const conv = ack.data.result.id;
    for (const w of [wa, wa2, wb]) await w.waitFor((f) => f.type === "conversation.create" && f.data.id === conv);
    wb.send("message.send", { conversation_id: conv, content: "direct hello" });
    for (const w of [wa, wa2, wb]) await w.waitFor(isMsg("direct hello"));
  });
});

describe("devices and presence", () => {
  test("two devices of one user both receive; presence flips once on the way up and once on the way down", async () => {
    const [a, b] = await users(2);
    await befriend(a!, b!);
    const conv = await group(b!, [a!]);
    const wb = await connect(b!);
    await wb.request("user.status.subscribe", { user_id: a!.user.id });
    const [d1, d2] = [await connect(a!), await connect(a!)];
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: b!.token, body: { content: "to both devices" } });
    await d1.waitFor(isMsg("to both devices"));
    await d2.waitFor(isMsg("to both devices"));
    d1.close();
    await d1.waitClosed();
    await Bun.sleep(100);
    d2.close();
    await wb.waitFor((f) => f.type === "user.offline" && f.data.user_id === a!.user.id);
    await Bun.sleep(100);
    // Broadcasts only (the subscribe reply, with its request id, said "offline" before).
    const flips = (type: string) => wb.all(type).filter((f) => f.data.user_id === a!.user.id && f.request_id === undefined);
    expect(flips("user.online")).toHaveLength(1);
    expect(flips("user.offline")).toHaveLength(1);
  });

  // In cluster mode the time of a user.online is read from PostgreSQL; a failed read was an
  // unhandled rejection (seen once in CI, a node stopping mid-read), and nobody was told.
  test("a failed read of last_active_at does not keep followers from hearing user.online; it is logged", async () => {
    const [a, b] = await users(2);
    await befriend(a!, b!);
    const wb = await connect(b!);
    await wb.request("user.status.subscribe", { user_id: a!.user.id });
    const { hub } = s.app;
    const store = s.app.ctx.store.users as { row: unknown };
    const row = store.row;
    (hub as unknown as { lastActive: { flush(): void } }).lastActive.flush(); // nothing pending: the time is read
    store.row = () => Promise.reject(new Error("connection closed"));
    try {
      hub.announceOnline(a!.user.id);
      const online = await wb.waitFor((f) => f.type === "user.online" && f.data.user_id === a!.user.id);
      expect(online.data.last_active_at).toEqual(expect.any(String));
    } finally {
      store.row = row;
    }
    expect(await waitFor(() => s.logs.find((l) => l.user_id === a!.user.id && String(l.msg).startsWith("could not read last_active_at")))).toBeTruthy();
  });

  test("within PRESENCE_GRACE_MS a reconnect does not flap presence", async () => {
    const own = await startServer({ presenceGraceMs: 400 });
    try {
      const [a, b] = [await own.register(), await own.register()];
      const { body: f } = await own.api("POST", "/api/friendships", { token: a.token, body: { friend_id: b.user.id } });
      await own.api("PATCH", `/api/friendships/${f.id}/accept`, { token: b.token });
      const wb = await TestSocket.connect(`${own.wsBase}/ws/user?token=${b.token}`);
      await wb.request("user.status.subscribe", { user_id: a.user.id });
      const first = await TestSocket.connect(`${own.wsBase}/ws/user?token=${a.token}`);
      await wb.waitFor((x) => x.type === "user.online");
      first.close();
      await first.waitClosed();
      const again = await TestSocket.connect(`${own.wsBase}/ws/user?token=${a.token}`);
      expect(await wb.none((x) => x.type === "user.offline" || x.type === "user.online", 700)).toBe(true);
      again.close();
      await wb.waitFor((x) => x.type === "user.offline", 2000);
      wb.close();
    } finally {
      await own.stop();
    }
  });

  test("status: a list subscription answers user.status; strangers are forbidden; unfriending drops the subscription", async () => {
    const [me, friend, partner, stranger] = await users(4);
    const friendship = await befriend(me!, friend!);
    await group(partner!, [me!]);
    const wm = await connect(me!);
    const wf = await connect(friend!);
    const list = await wm.request("user.status.subscribe", { user_ids: [friend!.user.id, partner!.user.id] });
    expect(list.type).toBe("user.status");
    expect(list.data.statuses).toEqual([
      { user_id: friend!.user.id, online: true, last_active_at: expect.any(String) },
      { user_id: partner!.user.id, online: false, last_active_at: expect.any(String) },
    ]);
    const denied = await wm.request("user.status.subscribe", { user_ids: [friend!.user.id, stranger!.user.id] });
    expect(denied.type).toBe("error");
    expect(denied.error).toMatchObject({ code: "forbidden", details: { user_ids: [stranger!.user.id] } });
    expect((await wm.request("user.status.subscribe", { user_ids: [] })).error.code).toBe("validation_failed");
    expect((await wm.request("user.status.subscribe", { user_ids: Array.from({ length: 501 }, (_, i) => `u${i}`) })).error.code).toBe("validation_failed");

    await s.api("DELETE", `/api/friendships/${friendship}`, { token: friend!.token });
    await wm.waitFor((f) => f.type === "friend.remove");
    const off = wm.none((f) => f.type === "user.offline" && f.data.user_id === friend!.user.id, 300);
    wf.close();
    expect(await off).toBe(true);
  });

  test("unfriending someone who still shares a conversation keeps their presence followed", async () => {
    const [me, friend] = await users(2);
    const friendship = await befriend(me!, friend!);
    await group(friend!, [me!]);
    const wm = await connect(me!);
    const wf = await connect(friend!);
    expect((await wm.request("user.status.subscribe", { user_id: friend!.user.id })).type).toBe("user.online");
    await s.api("DELETE", `/api/friendships/${friendship}`, { token: me!.token });
    // The sender of the removal gets no friend.remove: wait for the other side's, then for
    // the re-check (cluster mode asks PostgreSQL after the event; one query).
    await wf.waitFor((f) => f.type === "friend.remove");
    await Bun.sleep(300);
    wf.close();
    expect((await wm.waitFor((f) => f.type === "user.offline" && f.request_id === undefined)).data.user_id).toBe(friend!.user.id);
  });
});

describe("typing and active conversations", () => {
  test("typing reaches the others, is not echoed, and expires on the server", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    const seen = wb.next("message.typing");
    wa.send("message.typing", { conversation_id: conv, is_typing: true });
    expect((await seen).data).toEqual({ conversation_id: conv, user_id: a!.user.id, is_typing: true });
    const expired = await wb.next("message.typing", 2000);
    expect(expired.data.is_typing).toBe(false);
    expect(wa.all("message.typing")).toHaveLength(0);
  });

  test("typing ends when the typing socket closes", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    wa.send("message.typing", { conversation_id: conv, is_typing: true });
    await wb.next("message.typing");
    const stop = wb.next("message.typing");
    wa.close();
    expect((await stop).data.is_typing).toBe(false);
  });

  test("join, leave and active: user_active / user_inactive to the others, joined / left replies", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    const active = wb.next("conversation.user_active");
    const joined = await wa.request("conversation.join", { conversation_id: conv });
    expect(joined).toMatchObject({ type: "conversation.joined", data: { conversation_id: conv, success: true } });
    expect((await active).data).toEqual({ conversation_id: conv, user_id: a!.user.id });
    const inactive = wb.next("conversation.user_inactive");
    const left = await wa.request("conversation.leave", { conversation_id: conv });
    expect(left.type).toBe("conversation.left");
    expect((await inactive).data).toEqual({ conversation_id: conv, user_id: a!.user.id });
    // `active` has no reply, only the broadcast.
    const again = wb.next("conversation.user_active");
    wa.send("conversation.active", { conversation_id: conv });
    await again;
    const closing = wb.next("conversation.user_inactive");
    wa.send("conversation.active", { conversation_id: null });
    await closing;
    // Still a member and subscribed after leaving.
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: b!.token, body: { content: "still here" } });
    await wa.waitFor(isMsg("still here"));
  });

  test("a socket made active in a conversation its user was just removed from (a frame checked before the removal) neither hears it nor is announced in it", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    expect((await s.api("DELETE", `/api/conversations/${conv}/members/${b!.user.id}`, { token: a!.token })).status).toBe(204);
    await wb.waitFor((f) => f.type === "conversation.delete");
    // What a conversation.join whose membership check passed just before the removal then does.
    const state = [...s.app.hub.allSockets()].find((st) => st.userId === b!.user.id)!;
    s.app.hub.setActive(state, conv);
    expect([state.ws.isSubscribed(`conv:${conv}`), state.active]).toEqual([false, null]);
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "not for b" } });
    await wa.waitFor(isMsg("not for b"));
    await Bun.sleep(100);
    expect([wb.all("message.receive"), wa.all("conversation.user_active")]).toEqual([[], []]);
  });

  test("a socket whose user was just removed (a typing frame checked before the removal) is not shown typing", async () => {
    const [a, b, c] = await users(3);
    const conv = await group(a!, [b!, c!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    expect((await s.api("DELETE", `/api/conversations/${conv}/members/${b!.user.id}`, { token: a!.token })).status).toBe(204);
    await wb.waitFor((f) => f.type === "conversation.delete");
    // What a message.typing whose membership check passed just before the removal then does.
    const state = [...s.app.hub.allSockets()].find((st) => st.userId === b!.user.id)!;
    s.app.hub.typing(state, conv, true);
    // Later typing frames of b are refused by their own check; a member's still arrives, and is the only one.
    wb.send("message.typing", { conversation_id: conv, is_typing: true });
    expect(((await wb.waitFor((f) => f.type === "error")) as unknown as { error: { code: string } }).error.code).toBe("not_found");
    const wc = await connect(c!);
    wc.send("message.typing", { conversation_id: conv, is_typing: true });
    await wa.waitFor((f) => f.type === "message.typing" && f.data.user_id === c!.user.id);
    await Bun.sleep(50);
    expect(wa.all("message.typing").map((f) => f.data.user_id)).toEqual([c!.user.id]);
    expect(state.typing.size).toBe(0);
  });

  test("user_inactive when the user's last socket on the conversation leaves it, not while another still has it on screen", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const other = await group(a!, [b!], "other");
    const [wa, b0, b1, b2] = [await connect(a!), await connect(b!), await connect(b!), await connect(b!)];
    for (const w of [b0, b1, b2]) await w.request("conversation.join", { conversation_id: conv });
    await wa.waitFor(() => wa.all("conversation.user_active").length === 3);
    const inactive = () => wa.all("conversation.user_inactive").filter((f) => f.data.conversation_id === conv);
    b2.close(); // a tab closed
    await b1.request("conversation.join", { conversation_id: other }); // a tab switched away
    await b0.request("message.read", { conversation_id: conv, message_id: (await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "m" } })).body.id });
    await wa.waitFor(isMsg("m"));
    await Bun.sleep(50);
    expect(inactive()).toEqual([]);
    // The last one leaves: now the others hear it, once.
    const last = wa.next("conversation.user_inactive");
    await b0.request("conversation.leave", { conversation_id: conv });
    expect((await last).data).toEqual({ conversation_id: conv, user_id: b!.user.id });
    // Removed while two sockets are active: once.
    await b0.request("conversation.join", { conversation_id: other });
    await wa.waitFor(() => wa.all("conversation.user_active").filter((f) => f.data.conversation_id === other).length === 2);
    await s.api("DELETE", `/api/conversations/${other}/members/${b!.user.id}`, { token: a!.token });
    await wa.waitFor((f) => f.type === "conversation.member_remove" && f.data.conversation_id === other);
    await Bun.sleep(50);
    expect(wa.all("conversation.user_inactive").filter((f) => f.data.conversation_id === other)).toHaveLength(1);
    // A single socket closing is still announced.
    const lone = await connect(b!);
    await lone.request("conversation.join", { conversation_id: conv });
    const closed = wa.next("conversation.user_inactive");
    lone.close();
    expect((await closed).data).toEqual({ conversation_id: conv, user_id: b!.user.id });
  });

  test("a member removed while active is announced inactive to the others", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    await wb.request("conversation.join", { conversation_id: conv });
    await wa.waitFor((f) => f.type === "conversation.user_active");
    const inactive = wa.next("conversation.user_inactive");
    await s.api("DELETE", `/api/conversations/${conv}/members/${b!.user.id}`, { token: a!.token });
    expect((await inactive).data).toEqual({ conversation_id: conv, user_id: b!.user.id });
  });

  test("conversation.load pages the conversation list", async () => {
    const [a, b] = await users(2);
    for (let i = 0; i < 3; i++) await group(a!, [b!], `load${i}`);
    const wa = await connect(a!);
    const first = await wa.request("conversation.load", { limit: 2 });
    expect(first.type).toBe("conversation.list");
    expect(first.data.items).toHaveLength(2);
    const second = await wa.request("conversation.load", { limit: 2, cursor: first.data.next_cursor });
    expect(second.data.items).toHaveLength(1);
    expect(second.data.next_cursor).toBeNull();
    // Both fields are optional (§4.2): data may be left out, or null, as {} (the first page).
    for (const data of [undefined, null]) {
      const all = await wa.request("conversation.load", data);
      expect(all.type).toBe("conversation.list");
      expect(all.data.items).toHaveLength(3);
    }
  });
});

describe("the upgrade request", () => {
  // A request that asks for an upgrade Bun cannot make is refused before the ticket is
  // redeemed: a broken client's attempt does not cost it the ticket.
  test("without a Sec-WebSocket-Key or version 13: 400, and the ticket stays good", async () => {
    const [a] = await users(1);
    const { body } = await s.api("POST", "/api/ws/ticket", { token: a!.token });
    for (const headers of [{ upgrade: "websocket" }, { upgrade: "websocket", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "8" }] as Record<string, string>[]) {
      const res = await fetch(`${s.base}/ws/user?ticket=${body.ticket}`, { headers });
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).error).toMatchObject({ code: "bad_request", message: expect.stringContaining("Sec-WebSocket-Key") });
    }
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?ticket=${body.ticket}`);
    sockets.push(ws);
    expect((await ws.waitFor((f) => f.type === "connect")).data.user_id).toBe(a!.user.id);
  });
});

describe("bad frames", () => {
  test("each gets an error frame with the contract's code; the socket stays open and nothing is written", async () => {
    const [a, b, outsider] = await users(3);
    const conv = await group(a!, [b!]);
    const other = await group(outsider!, []);
    const wa = await connect(a!);
    const { body: bMsg } = await s.api("POST", `/api/conversations/${conv}/messages`, { token: b!.token, body: { content: "b's" } });

    wa.ws.send("not json at all");
    expect((await wa.next("error")).error.code).toBe("bad_request");
    wa.ws.send("[1,2]");
    expect((await wa.next("error")).error.code).toBe("bad_request");
    // JSON led by whitespace is JSON (it was refused as not one JSON object).
    wa.ws.send(' \n\t{"type":"ping","request_id":"spaced"}');
    expect(await wa.next("pong")).toMatchObject({ type: "pong", request_id: "spaced" });
    wa.ws.send(new TextEncoder().encode('{"type":"ping"}'));
    const binary = await wa.next("error");
    expect(binary.error).toMatchObject({ code: "bad_request", message: expect.stringContaining("binary frames") });
    // A plain GET (no upgrade) is told what the endpoint is for.
    const plain = await s.api("GET", `/ws/user?token=${a!.token}`);
    expect(plain.status).toBe(400);
    expect(plain.body.error.message).toContain("WebSocket upgrades only");
    const cases: [string, unknown, string][] = [
      ["no.such.type", {}, "bad_request"],
      ["message.send", { conversation_id: conv }, "validation_failed"],
      ["message.send", { conversation_id: conv, content: "   " }, "validation_failed"],
      ["message.send", { conversation_id: conv, content: "x", message_type: "system" }, "validation_failed"],
      ["message.send", { conversation_id: other, content: "intrude" }, "not_found"],
      ["message.edit", { message_id: bMsg.id, content: "not mine" }, "forbidden"],
      ["message.read", { conversation_id: other, message_id: bMsg.id }, "not_found"],
      ["message.typing", { conversation_id: other, is_typing: true }, "not_found"],
      ["message.typing", { conversation_id: conv, is_typing: "yes" }, "validation_failed"],
      ["conversation.join", { conversation_id: other }, "not_found"],
      ["conversation.create", { type: "group" }, "validation_failed"],
      ["user.status.subscribe", { user_id: outsider!.user.id }, "forbidden"],
    ];
    for (const [type, data, code] of cases) {
      const res = await wa.request(type, data);
      expect({ type, code: res.error?.code }).toEqual({ type, code });
      expect(res).toMatchObject({ type: "error", success: false, data: { request_type: type } });
    }
    // A request id over 128 characters is refused, and echoed whole so the client can match it.
    const longId = "r".repeat(200);
    wa.ws.send(JSON.stringify({ type: "ping", request_id: longId }));
    expect((await wa.waitFor((f) => f.type === "error" && f.request_id?.startsWith("rrr") === true)).request_id).toBe(longId);
    const video = await wa.request("message.send", { conversation_id: conv, content: "x", message_type: "video" });
    expect(video.error.details).toContainEqual({ field: "data.message_type", message: "must be one of: text, image, file, system, null" });
    // Fields are named as over REST (member_ids[1]), each once.
    const badMember = await wa.request("conversation.create", { type: "group", title: "t", member_ids: ["x", 5] });
    const fields = badMember.error.details.map((d: { field: string }) => d.field);
    expect(fields).toContain("data.member_ids[1]");
    expect(new Set(fields).size).toBe(fields.length);
    expect((await wa.request("ping")).type).toBe("pong");
    const history = await s.api("GET", `/api/conversations/${other}/messages`, { token: outsider!.token });
    expect(history.body.items).toEqual([]);
    expect((await s.api("GET", `/api/conversations/${conv}/messages`, { token: a!.token })).body.items.map((m: any) => m.content)).toEqual(["b's"]);
  });

  test("ping echoes the request id; disconnect closes with 1000", async () => {
    const [a] = await users(1);
    const wa = await connect(a!);
    const pong = await wa.request("ping");
    expect(pong).toMatchObject({ type: "pong", success: true, request_id: expect.any(String) });
    expect(pong.seq).toBeUndefined();
    wa.send("disconnect");
    expect((await wa.waitClosed()).code).toBe(1000);
  });

  test("a mutating frame's event reaches the asking socket with its request_id, once; everyone else gets it without (§4)", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wa2, wb] = [await connect(a!), await connect(a!), await connect(b!)];
    const events = (w: TestSocket, type: string) => w.all(type).map((f) => ({ id: f.data.message_id ?? f.data.id, request_id: f.request_id, seq: typeof f.seq }));
    wa.send("message.send", { conversation_id: conv, content: "asked" }, "send-1");
    const ack = await wa.waitFor((f) => f.type === "ack" && f.request_id === "send-1");
    const id = ack.data.result.id as string;
    await wb.waitFor(isMsg("asked"));
    await wa2.waitFor(isMsg("asked"));
    expect(events(wa, "message.receive")).toEqual([{ id, request_id: "send-1", seq: "number" }]);
    // The event came first, then the ack; the envelope as in §4 (seq, then request_id).
    const answer = wa.all("message.receive")[0]!;
    expect(wa.frames.indexOf(answer)).toBeLessThan(wa.frames.indexOf(ack));
    expect(Object.keys(answer)).toEqual(["type", "data", "timestamp", "success", "seq", "request_id"]);
    for (const w of [wa2, wb]) expect(events(w, "message.receive")).toEqual([{ id, request_id: undefined, seq: "number" }]);
    // Edit, read and delete alike; the reader's own socket gets the read with its id.
    wa.send("message.edit", { message_id: id, content: "asked again" }, "edit-1");
    wb.send("message.read", { conversation_id: conv, message_id: id }, "read-1");
    await wa.waitFor((f) => f.type === "ack" && f.request_id === "edit-1");
    await wb.waitFor((f) => f.type === "ack" && f.request_id === "read-1");
    wa.send("message.delete", { message_id: id }, "delete-1");
    await wa.waitFor((f) => f.type === "ack" && f.request_id === "delete-1");
    await wb.waitFor((f) => f.type === "message.delete");
    await wa2.waitFor((f) => f.type === "message.delete");
    expect([events(wa, "message.edit"), events(wa, "message.delete"), events(wb, "message.read")]).toEqual([
      [{ id, request_id: "edit-1", seq: "number" }],
      [{ id, request_id: "delete-1", seq: "number" }],
      [{ id, request_id: "read-1", seq: "number" }],
    ]);
    await wa.waitFor((f) => f.type === "message.read");
    expect([events(wb, "message.edit"), events(wb, "message.delete"), events(wa, "message.read"), events(wa2, "message.edit")]).toEqual([
      [{ id, request_id: undefined, seq: "number" }],
      [{ id, request_id: undefined, seq: "number" }],
      [{ id, request_id: undefined, seq: "number" }],
      [{ id, request_id: undefined, seq: "number" }],
    ]);
    // Without a request_id nothing carries one.
    wa.send("message.send", { conversation_id: conv, content: "unasked" });
    await wb.waitFor(isMsg("unasked"));
    expect((await wa.waitFor(isMsg("unasked"))).request_id).toBeUndefined();
  });

  test("conversation.create: the asker's own conversation.create carries its request_id (not another member's, nor the asker's other socket's), then the ack", async () => {
    const [a, b, c] = await users(3);
    const [wa, wa2, wb] = [await connect(a!), await connect(a!), await connect(b!)];
    for (const [body, rid] of [[{ type: "group", title: "asked", member_ids: [b!.user.id] }, "create-g"], [{ type: "direct", user_id: c!.user.id }, "create-d"]] as const) {
      wa.send("conversation.create", body, rid);
      const ack = await wa.waitFor((f) => f.type === "ack" && f.request_id === rid);
      const id = ack.data.result.id as string;
      const answer = wa.all("conversation.create").filter((f) => f.data.id === id);
      expect(answer.map((f) => f.request_id)).toEqual([rid]);
      expect(wa.frames.indexOf(answer[0]!)).toBeLessThan(wa.frames.indexOf(ack));
      expect((await wa2.waitFor((f) => f.type === "conversation.create" && f.data.id === id)).request_id).toBeUndefined();
    }
    expect(wb.all("conversation.create").map((f) => f.request_id)).toEqual([undefined]);
  });

  test("with attachments (links signed for each viewer) the asking socket's copy carries its request_id too", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    const up = await fetch(`${s.base}/api/uploads?filename=note.txt`, { method: "POST", headers: { authorization: `Bearer ${a!.token}`, "content-type": "text/plain" }, body: "hello" });
    expect(up.status).toBe(201);
    const attachment = (await up.json()) as { id: string };
    wa.send("message.send", { conversation_id: conv, content: "", attachment_ids: [attachment.id] }, "file-1");
    const mine = await wa.waitFor((f) => f.type === "message.receive" && f.data.attachments?.length === 1);
    const theirs = await wb.waitFor((f) => f.type === "message.receive" && f.data.attachments?.length === 1);
    expect([mine.request_id, theirs.request_id]).toEqual(["file-1", undefined]);
    expect(new URL(mine.data.attachments[0].url, s.base).searchParams.get("v")).toBe(a!.user.id);
    expect(new URL(theirs.data.attachments[0].url, s.base).searchParams.get("v")).toBe(b!.user.id);
  });

  test("a retried message.send publishes nothing, not even to the sender, but its ack carries the stored message", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    const first = await wa.request("message.send", { conversation_id: conv, content: "once", client_msg_id: "dup" });
    expect(first).toMatchObject({ type: "ack", data: { request_type: "message.send", result: { content: "once" } } });
    const retry = await wa.request("message.send", { conversation_id: conv, content: "once", client_msg_id: "dup" });
    expect(retry).toMatchObject({ type: "ack", data: { request_type: "message.send", result: { id: first.data.result.id } } });
    await Bun.sleep(100);
    expect(wb.all("message.receive")).toHaveLength(1);
    expect(wa.all("message.receive")).toHaveLength(1);
    // A new message's ack is made from its event's stored text, a retry's from the stored
    // message: the same frame either way, whose result is the message as delivered.
    expect(first.data.result).toEqual(wa.all("message.receive")[0]!.data);
    expect(Object.keys(first)).toEqual(["type", "data", "timestamp", "success", "request_id"]);
    expect(Object.keys(retry)).toEqual(Object.keys(first));
    expect(retry.data.result).toEqual(first.data.result);
  });
});

describe("ordering under concurrency", () => {
  test("a message with files reaches each socket of each member once, links signed for its user, in order among plain ones; others hear nothing", async () => {
    const [a, b, c, d, e] = await users(5);
    const [wa, wa2, wb, wb2, wc, wd, we] = [await connect(a!), await connect(a!), await connect(b!), await connect(b!), await connect(c!), await connect(d!), await connect(e!)];
    // Made, and e added, while everyone is connected: their sockets hear it from its conversation.create on.
    const conv = await group(a!, [b!, c!]);
    for (const w of [wa, wa2, wb, wb2, wc]) await w.waitFor((f) => f.type === "conversation.create" && f.data.id === conv);
    expect((await s.api("POST", `/api/conversations/${conv}/members`, { token: a!.token, body: { user_ids: [e!.user.id] } })).status).toBe(200);
    await we.waitFor((f) => f.type === "conversation.create" && f.data.id === conv);
    // c leaves: their socket stops hearing the conversation; d was never in it.
    expect((await s.api("DELETE", `/api/conversations/${conv}/members/${c!.user.id}`, { token: c!.token })).status).toBe(204);
    await wc.waitFor((f) => f.type === "conversation.delete");
    expect(s.app.hub.listenersOf(conv).sort()).toEqual([a!.user.id, b!.user.id, e!.user.id].sort());
    const ids: string[] = [];
    for (const name of ["one.txt", "two.txt"]) {
      const up = await fetch(`${s.base}/api/uploads?filename=${name}`, { method: "POST", headers: { authorization: `Bearer ${a!.token}`, "content-type": "text/plain" }, body: name });
      expect(up.status).toBe(201);
      ids.push(((await up.json()) as { id: string }).id);
    }
    // Sent back to back from one socket: on SQLite one group commit, plain and signed frames interleaved.
    wa.send("message.send", { conversation_id: conv, content: "p1" });
    wa.send("message.send", { conversation_id: conv, content: "f1", attachment_ids: [ids[0]] }, "ask-f1");
    wa.send("message.send", { conversation_id: conv, content: "p2" });
    wa.send("message.send", { conversation_id: conv, content: "f2", attachment_ids: [ids[1]] });
    wa.send("message.send", { conversation_id: conv, content: "p3" });
    const order = ["p1", "f1", "p2", "f2", "p3"];
    for (const w of [wa, wa2, wb, wb2, we]) await waitFor(() => w.all("message.receive").length >= order.length || undefined);
    await Bun.sleep(100);
    /** A socket's messages in the order it got them, which must be the order of their seqs. */
    const inSeqOrder = (w: TestSocket) => {
      const got = w.all("message.receive");
      expect(got.map((f) => f.seq)).toEqual(got.map((f) => f.seq).sort((x, y) => x! - y!));
      return got.map((f) => f.data.content as string);
    };
    const viewerOf = (f: { data: any }) => (f.data.attachments.length ? new URL(f.data.attachments[0].url, s.base).searchParams.get("v") : null);
    const seen = (w: TestSocket) => w.all("message.receive").map((f) => [f.data.content, viewerOf(f), f.request_id ?? null]);
    // The log's order is the socket's, on either engine (one socket's frames take effect in turn).
    const logged = inSeqOrder(wa2);
    expect(logged).toEqual(order);
    for (const w of [wa, wb, wb2, we]) expect(inSeqOrder(w)).toEqual(logged);
    expect(seen(wa)).toEqual(logged.map((m) => [m, m.startsWith("f") ? a!.user.id : null, m === "f1" ? "ask-f1" : null]));
    expect(seen(wa2)).toEqual(logged.map((m) => [m, m.startsWith("f") ? a!.user.id : null, null]));
    for (const w of [wb, wb2]) expect(seen(w)).toEqual(logged.map((m) => [m, m.startsWith("f") ? b!.user.id : null, null]));
    expect(seen(we)).toEqual(logged.map((m) => [m, m.startsWith("f") ? e!.user.id : null, null]));
    expect([wc.all("message.receive"), wd.all("message.receive")]).toEqual([[], []]);
    // What the hub keeps to find them goes with each user's last socket, at its next sweep.
    for (const w of [wa, wa2, wb, we]) w.close();
    await waitFor(() => (s.app.hub.sweepListeners(), s.app.hub.listenersOf(conv).length === 1) || undefined);
    expect(s.app.hub.listenersOf(conv)).toEqual([b!.user.id]);
    wb2.close();
    await waitFor(() => (s.app.hub.sweepListeners(), s.app.hub.listenersOf(conv).length === 0) || undefined);
  });

  test("a message with files reaches only those of a user's sockets that hear the conversation", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wa2, wb] = [await connect(a!), await connect(a!), await connect(b!)];
    // One of a's sockets stops hearing it (as a socket can, alone, between two frames): a is
    // still its listener, but their copy must not go to both sockets by a's own topic.
    const [deaf, hearing] = [...s.app.hub.allSockets()].filter((st) => st.userId === a!.user.id);
    deaf!.ws.unsubscribe(`conv:${conv}`);
    const up = await fetch(`${s.base}/api/uploads?filename=x.txt`, { method: "POST", headers: { authorization: `Bearer ${b!.token}`, "content-type": "text/plain" }, body: "x" });
    const file = ((await up.json()) as { id: string }).id;
    expect((await s.api("POST", `/api/conversations/${conv}/messages`, { token: b!.token, body: { content: "with a file", attachment_ids: [file] } })).status).toBe(201);
    await wb.waitFor(isMsg("with a file"));
    await waitFor(() => [wa, wa2].some((w) => w.all("message.receive").length > 0) || undefined);
    await Bun.sleep(100);
    const got = [wa, wa2].map((w) => w.all("message.receive").map((f) => new URL(f.data.attachments[0].url, s.base).searchParams.get("v")));
    expect(got.flat()).toEqual([a!.user.id]);
    expect(hearing!.ws.isSubscribed(`conv:${conv}`)).toBe(true);
  });

  test("40 concurrent sends from 4 users arrive at every socket once, in the same order as history", async () => {
    const members = await users(4);
    const conv = await group(members[0]!, members.slice(1));
    const ws = await Promise.all(members.map((m) => connect(m)));
    // Every send answered (REST 201, WebSocket ack) before history is read.
    const answers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) =>
        i % 2
          ? (await s.api("POST", `/api/conversations/${conv}/messages`, { token: members[i % 4]!.token, body: { content: `c${i}` } })).status
          : (await ws[i % 4]!.request("message.send", { conversation_id: conv, content: `c${i}` })).type,
      ),
    );
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => (i % 2 ? 201 : "ack")));
    const history = (await s.api("GET", `/api/conversations/${conv}/messages?after=&limit=100`, { token: members[0]!.token })).body.items.map((m: any) => m.id);
    expect(history).toHaveLength(40);
    for (const w of ws) {
      await w.waitFor(() => w.all("message.receive").length >= 40, 5000).catch(() => {});
      const got = w.all("message.receive");
      expect(got.map((f) => f.data.id)).toEqual(history);
      const seqs = got.map((f) => f.seq!);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    }
  });
  test("one socket's frames take effect in the order sent, on either engine: sends stored and delivered in order, the last of three edits wins, a leave after a join leaves", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const [wa, wb] = [await connect(a!), await connect(b!)];
    // Back to back, as a client that queued them while offline sends them (in cluster mode
    // each frame's steps are round trips: they used to overtake each other).
    const sent = Array.from({ length: 12 }, (_, i) => `in order ${i}`);
    for (const content of sent) wa.send("message.send", { conversation_id: conv, content });
    await wb.waitFor(() => wb.all("message.receive").length >= sent.length, 10_000);
    expect(wb.all("message.receive").map((f) => f.data.content)).toEqual(sent);
    const history = (await s.api("GET", `/api/conversations/${conv}/messages?after=&limit=100`, { token: b!.token })).body.items.map((m: any) => m.content);
    expect(history).toEqual(sent);
    const first = wb.all("message.receive")[0]!.data.id as string;
    for (const content of ["edit 1", "edit 2", "edit 3"]) wa.send("message.edit", { message_id: first, content }, content);
    await wa.waitFor((f) => f.type === "ack" && f.request_id === "edit 3", 10_000);
    expect(wa.all("ack").map((f) => f.request_id)).toEqual(["edit 1", "edit 2", "edit 3"]);
    const stored = (await s.api("GET", `/api/conversations/${conv}/messages?after=&limit=1`, { token: b!.token })).body.items[0];
    expect(stored.content).toBe("edit 3");
    await wb.waitFor((f) => f.type === "message.edit" && f.data.content === "edit 3");
    expect(wb.all("message.edit").map((f) => f.data.content)).toEqual(["edit 1", "edit 2", "edit 3"]);
    for (let round = 0; round < 3; round++) {
      wa.send("conversation.join", { conversation_id: conv }, `join ${round}`);
      wa.send("conversation.leave", { conversation_id: conv }, `leave ${round}`);
      await wa.waitFor((f) => f.request_id === `leave ${round}`, 10_000);
    }
    expect(wa.frames.filter((f) => f.type === "conversation.joined" || f.type === "conversation.left").map((f) => f.request_id)).toEqual(["join 0", "leave 0", "join 1", "leave 1", "join 2", "leave 2"]);
    await wb.waitFor(() => wb.all("conversation.user_inactive").length >= 3);
    expect(wb.frames.filter((f) => f.type.startsWith("conversation.user_")).map((f) => f.type.slice(18))).toEqual(["active", "inactive", "active", "inactive", "active", "inactive"]);
    expect([...s.app.hub.allSockets()].find((st) => st.userId === a!.user.id)!.active).toBeNull();
  });
});

describe("a socket's frames in turn, in cluster mode", () => {
  // A frame stuck on PostgreSQL (here a row lock another session holds) waits its turn's
  // while; the socket's later frames go after TURN_WAIT_MS, not after the lock.
  test.skipIf(TEST_BACKEND !== "postgres")("a stuck frame holds the later ones TURN_WAIT_MS at most; a goodbye closes at once, and what waited then neither follows anyone nor runs after it [PostgreSQL only: a row lock holds a frame]", async () => {
    const [a, b] = await users(2);
    const [stuck, free] = [await group(a!, [b!], "stuck"), await group(a!, [b!], "free")];
    const [wa, wb] = [await connect(a!), await connect(b!)];
    const other = new SQL({ url: s.app.ctx.config.databaseUrl!, max: 1 });
    const lock = await other.reserve();
    try {
      await lock`BEGIN`;
      await lock`SELECT 1 FROM conversations WHERE id = ${stuck} FOR UPDATE`;
      const t0 = performance.now();
      wa.send("message.send", { conversation_id: stuck, content: "to the stuck one" }, "stuck");
      wa.send("message.send", { conversation_id: free, content: "to the free one" }, "free");
      wa.send("message.typing", { conversation_id: free, is_typing: true });
      await wa.waitFor((f) => f.type === "ack" && f.request_id === "free", TURN_WAIT_MS + 3000);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(TURN_WAIT_MS - 50);
      await wb.waitFor((f) => f.type === "message.typing" && f.data.conversation_id === free, 2000);
      // Queued behind the stuck send again: a subscription, then a goodbye and a late send.
      wa.send("message.send", { conversation_id: stuck, content: "stuck again" }, "stuck2");
      wa.send("user.status.subscribe", { user_id: b!.user.id }, "follow");
      const closing = performance.now();
      wa.send("disconnect", {});
      wa.send("message.send", { conversation_id: free, content: "after goodbye" }, "late");
      expect((await wa.waitClosed(2000)).code).toBe(1000);
      expect(performance.now() - closing).toBeLessThan(1500);
      await Bun.sleep(TURN_WAIT_MS + 500);
    } finally {
      await lock`COMMIT`;
      lock.release();
      await other.close();
    }
    // The sends made before the goodbye are kept (the client may not know); the one after it is not.
    const contents = async (conv: string) => (await s.api("GET", `/api/conversations/${conv}/messages?limit=10`, { token: b!.token })).body.items.map((m: any) => m.content).sort();
    for (let i = 0; i < 50 && (await contents(stuck)).length < 2; i++) await Bun.sleep(100);
    expect(await contents(stuck)).toEqual(["stuck again", "to the stuck one"]);
    expect(await contents(free)).toEqual(["to the free one"]);
    // The subscription that ran after the close left nothing behind.
    expect([...((s.app.hub as any).followers.get(b!.user.id) ?? [])].filter((st: any) => st.userId === a!.user.id)).toEqual([]);
    expect([...s.app.hub.allSockets()].filter((st) => st.userId === a!.user.id)).toEqual([]);
  }, 30_000);
});

describe("metrics", () => {
  test("/metrics shows sockets, online users, frames and published events", async () => {
    const [a] = await users(1);
    const wa = await connect(a!);
    await wa.request("ping");
    const text = await (await fetch(`${s.base}/metrics`)).text();
    expect(text).toMatch(/parley_ws_connections [1-9]/);
    expect(text).toMatch(/parley_online_users [1-9]/);
    expect(text).toMatch(/parley_ws_frames_in_total\{type="ping"\} [1-9]/);
    expect(text).toMatch(/parley_events_published_total\{type="message.receive"\} [1-9]/);
    expect(text).toContain("parley_publish_after_commit_seconds_bucket");
  });
});
