import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventsOf, lastSeq, membersOf, startServer, TEST_BACKEND, withSqliteBefore, type Account, type TestServer } from "./helpers";
import { migrate } from "../src/db/migrate";
import { TestSocket } from "./ws-client";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.stop());

const users = async (n: number) => Promise.all(Array.from({ length: n }, () => s.register()));
async function groupOf(owner: Account, others: Account[]) {
  const res = await s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title: "G", member_ids: others.map((o) => o.user.id) } });
  return res.body.id as string;
}
const send = (who: Account, conv: string, body: Record<string, unknown>) => s.api("POST", `/api/conversations/${conv}/messages`, { token: who.token, body });
const history = (who: Account, conv: string, q = "") => s.api("GET", `/api/conversations/${conv}/messages${q}`, { token: who.token });

describe("send", () => {
  test("201 with every Message field; message.receive on the conversation; the conversation's last message moves", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const sb = await lastSeq(s, b!.token);
    const res = await send(a!, conv, { content: "  Hello!  ", client_msg_id: "c-1" });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String), conversation_id: conv, sender_id: a!.user.id, sender_name: a!.user.display_name, sender_avatar: null,
      sender_info: { id: a!.user.id, username: a!.user.username, display_name: a!.user.display_name, profile_image_url: null },
      message_type: "text", content: "Hello!", client_msg_id: "c-1", reply_to_id: null,
      created_at: expect.any(String), edited_at: null, deleted_at: null, reactions: [], attachments: [], is_read: false, read_count: 0,
    });
    const evs = await eventsOf(s, b!.token, sb);
    expect(evs.map((e) => e.type)).toEqual(["message.receive"]);
    expect(evs[0]!.data).toEqual(res.body);
    const c = (await s.api("GET", `/api/conversations/${conv}`, { token: b!.token })).body;
    expect(c.last_message).toEqual(res.body);
    expect(c.last_message_at).toBe(res.body.created_at);
    expect(c.unread_count).toBe(1);
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: a!.token })).body.unread_count).toBe(0);
  });

  test("unread_count at each read position: past the last message none, before it the later ones (lists, sockets and one conversation agree)", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const unread = async () => {
      const one = (await s.api("GET", `/api/conversations/${conv}`, { token: b!.token })).body.unread_count;
      const listed = (await s.api("GET", "/api/conversations", { token: b!.token })).body.items.find((c: any) => c.id === conv).unread_count;
      const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}`);
      const opened = ws.frames.find((f) => f.type === "conversation.list")!.data.items.find((c: any) => c.id === conv).unread_count;
      ws.close();
      expect([listed, opened]).toEqual([one, one]);
      return one;
    };
    expect(await unread()).toBe(0); // no message yet
    const m1 = (await send(a!, conv, { content: "one" })).body;
    const m2 = (await send(a!, conv, { content: "two" })).body;
    await send(b!, conv, { content: "mine" }); // the reader's own: never unread
    expect(await unread()).toBe(2);
    await s.api("POST", `/api/conversations/${conv}/read`, { token: b!.token, body: { message_id: m1.id } });
    expect(await unread()).toBe(1);
    await s.api("POST", `/api/conversations/${conv}/read`, { token: b!.token, body: { message_id: m2.id } });
    expect(await unread()).toBe(0);
    await send(a!, conv, { content: "three" });
    expect(await unread()).toBe(1);
  });

  test("the conversation list is ordered by last activity and carries last_message and unread_count", async () => {
    const [a, b, c] = await users(3);
    const first = await groupOf(a!, [b!]);
    const second = await groupOf(a!, [c!]);
    await send(b!, first, { content: "bump" });
    const list = (await s.api("GET", "/api/conversations", { token: a!.token })).body.items;
    expect(list.map((x: any) => x.id)).toEqual([first, second]);
    expect(list[0].last_message.content).toBe("bump");
    expect(list[0].unread_count).toBe(1);
    expect(list[1].last_message).toBeNull();
  });

  test("the list (REST, and each new socket's conversation.list) shows every conversation exactly as GET /:id does", async () => {
    const [a, b, c] = await users(3);
    const group = await groupOf(a!, [b!, c!]);
    const direct = (await s.api("POST", "/api/conversations", { token: b!.token, body: { type: "direct", user_id: c!.user.id } })).body.id;
    const m1 = (await send(a!, group, { content: "one" })).body;
    const m2 = (await send(c!, group, { content: "two @" + b!.user.username })).body;
    await s.api("POST", `/api/messages/${m2.id}/reactions`, { token: a!.token, body: { emoji: "👍" } });
    await s.api("PATCH", `/api/messages/${m2.id}`, { token: c!.token, body: { content: "two, edited" } });
    await s.api("POST", `/api/conversations/${group}/read`, { token: b!.token, body: { message_id: m1.id } });
    await send(c!, direct, { content: "hi" });
    const check = async () => {
      const res = await s.api("GET", "/api/conversations", { token: b!.token });
      const items = res.body.items;
      expect(items.map((x: any) => x.id)).toEqual([direct, group]);
      const one = await s.api("GET", `/api/conversations/${group}`, { token: b!.token });
      expect(res.headers.get("content-type")).toBe(one.headers.get("content-type")!);
      // Presence times (last_active_at) may lag by up to a second in lists (README); the rest is exact.
      const settled = (x: any) => JSON.parse(JSON.stringify(x).replace(/"last_active_at":"[^"]*"/g, '"last_active_at":"…"'));
      for (const item of items) expect(settled(item)).toEqual(settled((await s.api("GET", `/api/conversations/${item.id}`, { token: b!.token })).body));
      const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}`);
      expect(settled(ws.frames.find((f) => f.type === "conversation.list")!.data)).toEqual(settled(res.body));
      ws.close();
      return items;
    };
    const [d, g] = await check();
    expect(d.title).toBe(c!.user.display_name);
    expect(g.unread_count).toBe(1);
    expect(g.last_message).toMatchObject({ content: "two, edited", reactions: [{ emoji: "👍", count: 1 }] });
    // Changes after the lists were served (and cached) show at once.
    await s.api("POST", `/api/conversations/${group}/read`, { token: b!.token, body: { message_id: m2.id } });
    await s.api("DELETE", `/api/messages/${m2.id}`, { token: c!.token });
    await s.api("PATCH", "/api/users/me", { token: c!.token, body: { display_name: "Renamed C" } });
    const [d2, g2] = await check();
    expect(d2.title).toBe("Renamed C");
    expect(g2.unread_count).toBe(0);
    expect(g2.last_message.deleted_at).not.toBeNull();
    expect(g2.my_last_read_message_id).toBe(m2.id);
    expect(d2.peer.display_name).toBe("Renamed C");
    expect((await membersOf(s, a!.token, group)).find((m: any) => m.user.id === b!.user.id).last_read_message_id).toBe(m2.id);
  });

  test.each([
    [{ content: "" }, "content"],
    [{ content: "   \n " }, "content"],
    [{ content: "x".repeat(4001) }, "content"],
    // Refused on both engines alike (PostgreSQL cannot store it: a cluster said 400, a single node stored it).
    [{ content: "a\u0000b" }, "content"],
    [{ content: "hi", client_msg_id: "k\u0000" }, "client_msg_id"],
    [{ content: "hi", reply_to_id: "m\u0000" }, "reply_to_id"],
    [{ content: "hi", attachment_ids: ["f\u0000"] }, "attachment_ids"],
    [{ content: "hi", message_type: "system" }, "message_type"],
    [{ content: "hi", message_type: "video" }, "message_type"],
    [{ content: "hi", reply_to_id: "nope" }, "reply_to_id"],
    [{ content: 5 }, "content"],
    [{}, "content"],
  ])("%j → 422 naming %s, nothing written", async (body, field) => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    const res = await send(a!, conv, body);
    expect(res.status).toBe(422);
    expect(res.body.error.details.map((d: any) => d.field)).toContain(field);
    expect((await history(a!, conv)).body.items).toEqual([]);
  });

  test("4000 characters (counted as characters, not UTF-16 units) are accepted; image and file types too", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    expect((await send(a!, conv, { content: "x".repeat(4000) })).status).toBe(201);
    expect((await send(a!, conv, { content: "😀".repeat(4000) })).status).toBe(201);
    expect((await send(a!, conv, { content: "https://cdn.example/p.png", message_type: "image" })).body.message_type).toBe("image");
    expect((await send(a!, conv, { content: "https://cdn.example/f.pdf", message_type: "file" })).status).toBe(201);
  });

  test("null for client_msg_id, reply_to_id and message_type means the same as leaving them out", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    const res = await send(a!, conv, { content: "nulls", client_msg_id: null, reply_to_id: null, message_type: null });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ content: "nulls", client_msg_id: null, reply_to_id: null, message_type: "text" });
    // Still an idempotency key when given: null is not a key shared by every send.
    expect((await send(a!, conv, { content: "nulls again", client_msg_id: null })).status).toBe(201);
  });

  test("a field that may be null, given a wrong value of its own kind, says what is wrong with it (not 'string or null')", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    const long = await send(a!, conv, { content: "x", client_msg_id: "k".repeat(65) });
    expect(long.status).toBe(422);
    expect(long.body.error.details).toEqual([{ field: "client_msg_id", message: "Expected string length less or equal to 64" }]);
    expect((await send(a!, conv, { content: "x", client_msg_id: "" })).body.error.details[0].message).toBe("Expected string length greater or equal to 1");
    // Of another kind altogether: both kinds are named.
    expect((await send(a!, conv, { content: "x", client_msg_id: 5 })).body.error.details[0].message).toMatch(/one of|string/);
    expect((await send(a!, conv, { content: "x", client_msg_id: "k".repeat(64) })).status).toBe(201);
    // The same over a frame.
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a!.token}`);
    try {
      const err = await ws.request("message.send", { conversation_id: conv, content: "x", client_msg_id: "k".repeat(65) });
      expect(err.error.details).toEqual([{ field: "data.client_msg_id", message: "Expected string length less or equal to 64" }]);
    } finally {
      ws.close();
    }
  });

  test("a lone UTF-16 surrogate is stored, echoed, published and read back as U+FFFD, over REST and WebSocket", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const wb = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}`);
    try {
      const res = await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, raw: '{"content":"a\\ud800b","client_msg_id":"k\\udc00"}' });
      expect(res.status).toBe(201);
      expect(res.body.content).toBe("a\ufffdb");
      expect(res.body.client_msg_id).toBe("k\ufffd");
      expect((await wb.waitFor((f) => f.type === "message.receive" && f.data.id === res.body.id)).data.content).toBe("a\ufffdb");
      // The frame path: JSON.stringify writes the lone surrogate as an escape.
      const ack = await wb.request("message.send", { conversation_id: conv, content: "c\udfffd" });
      expect(ack.type).toBe("ack");
      expect(ack.data.result.content).toBe("c\ufffdd");
      const stored = (await history(a!, conv)).body.items.map((m: { content: string }) => m.content);
      expect(stored).toEqual(["c\ufffdd", "a\ufffdb"]);
      // The idempotency key matches what was stored: a retry is recognised.
      const retry = await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, raw: '{"content":"a\\ud800b","client_msg_id":"k\\udc00"}' });
      expect(retry.status).toBe(200);
      expect(retry.body.id).toBe(res.body.id);
    } finally {
      wb.ws.close();
    }
  });

  test("reply_to_id must be a message of the same conversation", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    const other = await groupOf(a!, []);
    const { body: m } = await send(a!, other, { content: "elsewhere" });
    expect((await send(a!, conv, { content: "re", reply_to_id: m.id })).status).toBe(422);
    const { body: here } = await send(a!, conv, { content: "here" });
    const reply = await send(a!, conv, { content: "re", reply_to_id: here.id });
    expect(reply.status).toBe(201);
    expect(reply.body.reply_to_id).toBe(here.id);
  });

  test("non-members and unknown conversations get 404", async () => {
    const [a, outsider] = await users(2);
    const conv = await groupOf(a!, []);
    expect((await send(outsider!, conv, { content: "hi" })).status).toBe(404);
    expect((await send(a!, "nope", { content: "hi" })).status).toBe(404);
    expect((await history(outsider!, conv)).status).toBe(404);
  });
});

describe("idempotent send", () => {
  test("a repeated client_msg_id returns the stored message with 200 and appends no event", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const first = await send(a!, conv, { content: "once", client_msg_id: "retry-1" });
    const sb = await lastSeq(s, b!.token);
    const again = await send(a!, conv, { content: "once (retry)", client_msg_id: "retry-1" });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(await eventsOf(s, b!.token, sb)).toEqual([]);
    // Another sender may use the same key.
    expect((await send(b!, conv, { content: "mine", client_msg_id: "retry-1" })).status).toBe(201);
  });

  test("concurrent retries insert exactly once", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    const results = await Promise.all(Array.from({ length: 12 }, () => send(a!, conv, { content: "racy", client_msg_id: "same" })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(11);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect((await eventsOf(s, a!.token)).filter((e) => e.type === "message.receive")).toHaveLength(1);
  });
});

describe("history", () => {
  test("newest first with cursor pages, oldest first with after; complete and gap-free while messages keep arriving", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const sent: string[] = [];
    for (let i = 0; i < 25; i++) sent.push((await send(i % 2 ? a! : b!, conv, { content: `m${i}` })).body.id);

    const seen: string[] = [];
    let cursor: string | null = null;
    let i = 0;
    do {
      const res: any = await history(a!, conv, `?limit=7${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...res.body.items.map((m: any) => m.id));
      cursor = res.body.next_cursor;
      // New messages arriving between pages do not shift older pages.
      await send(b!, conv, { content: `late${i++}` });
    } while (cursor);
    expect(seen).toEqual(sent.slice().reverse());

    const forward = await history(a!, conv, `?after=${sent[9]}&limit=5`);
    expect(forward.body.items.map((m: any) => m.id)).toEqual(sent.slice(10, 15));
    const forward2 = await history(a!, conv, `?limit=5&cursor=${forward.body.next_cursor}`);
    expect(forward2.body.items.map((m: any) => m.id)).toEqual(sent.slice(15, 20));
    const before = await history(a!, conv, `?before=${sent[5]}&limit=10`);
    expect(before.body.items.map((m: any) => m.id)).toEqual(sent.slice(0, 5).reverse());
    expect(before.body.next_cursor).toBeNull();
  });

  test("bad parameters", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    expect((await history(a!, conv, "?limit=0")).status).toBe(422);
    expect((await history(a!, conv, "?limit=101")).status).toBe(422);
    expect((await history(a!, conv, "?limit=ten")).status).toBe(400);
    expect((await history(a!, conv, "?before=x&after=y")).status).toBe(422);
    expect((await history(a!, conv, "?before=not-a-message")).status).toBe(422);
    const other = await groupOf(a!, []);
    const { body: elsewhere } = await send(a!, other, { content: "x" });
    expect((await history(a!, conv, `?after=${elsewhere.id}`)).status).toBe(422);
    expect((await history(a!, conv, "?cursor=garbage")).status).toBe(400);
    // Another conversation's cursor is foreign here too.
    await send(a!, other, { content: "y" });
    const otherCursor = (await history(a!, other, "?limit=1")).body.next_cursor;
    expect(otherCursor).toBeString();
    expect((await history(a!, other, `?cursor=${otherCursor}`)).status).toBe(200);
    expect((await history(a!, conv, `?cursor=${otherCursor}`)).status).toBe(400);
    // A cursor pages on in its own direction: `after` with a newest-first cursor (or `before`
    // with an oldest-first one) is another query's; the cursor alone, or with its own, goes on.
    const [m0, m1] = [(await history(a!, other, "?after=")).body.items[0].id, (await history(a!, other, "?limit=1")).body.items[0].id];
    const newestFirst = otherCursor;
    const oldestFirst = (await history(a!, other, "?after=&limit=1")).body.next_cursor;
    const wrong = await history(a!, other, `?after=${m0}&cursor=${newestFirst}`);
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.message).toContain("cursor");
    expect((await history(a!, other, `?before=${m1}&cursor=${oldestFirst}`)).status).toBe(400);
    expect((await history(a!, other, `?after=&cursor=${oldestFirst}`)).body.items.map((m: any) => m.id)).toEqual([m1]);
    expect((await history(a!, other, `?cursor=${oldestFirst}`)).body.items.map((m: any) => m.id)).toEqual([m1]);
    expect((await history(a!, other, `?before=${m1}&cursor=${newestFirst}`)).body.items.map((m: any) => m.id)).toEqual([m0]);
  });
});

describe("edit and delete", () => {
  test("edit: sender only; sets edited_at; message.edit; not a deleted message", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const { body: m } = await send(a!, conv, { content: "draft" });
    expect((await s.api("PATCH", `/api/messages/${m.id}`, { token: b!.token, body: { content: "hijack" } })).status).toBe(403);
    expect((await s.api("PATCH", `/api/messages/${m.id}`, { token: a!.token, body: { content: " " } })).status).toBe(422);
    const nul = await s.api("PATCH", `/api/messages/${m.id}`, { token: a!.token, body: { content: "a\u0000b" } });
    expect(nul.status).toBe(422);
    expect(nul.body.error.details).toEqual([{ field: "content", message: "must not contain U+0000 (NUL)" }]);
    const outsider = (await users(1))[0]!;
    expect((await s.api("PATCH", `/api/messages/${m.id}`, { token: outsider.token, body: { content: "x" } })).status).toBe(404);
    const sb = await lastSeq(s, b!.token);
    const res = await s.api("PATCH", `/api/messages/${m.id}`, { token: a!.token, body: { content: "final" } });
    expect(res.status).toBe(200);
    expect(res.body.content).toBe("final");
    expect(res.body.edited_at).toBeString();
    const evs = await eventsOf(s, b!.token, sb);
    expect(evs.map((e) => e.type)).toEqual(["message.edit"]);
    expect(evs[0]!.data).toEqual(res.body);
    await s.api("DELETE", `/api/messages/${m.id}`, { token: a!.token });
    expect((await s.api("PATCH", `/api/messages/${m.id}`, { token: a!.token, body: { content: "again" } })).status).toBe(409);
  });

  test("delete keeps a tombstone and emits message.delete; group owner/admin may delete others' messages", async () => {
    const [owner, admin, m1, m2] = await users(4);
    const conv = await groupOf(owner!, [admin!, m1!, m2!]);
    await s.api("PATCH", `/api/conversations/${conv}/members/${admin!.user.id}`, { token: owner!.token, body: { role: "admin" } });
    const { body: msg } = await send(m1!, conv, { content: "oops" });
    await s.api("POST", `/api/messages/${msg.id}/reactions`, { token: m2!.token, body: { emoji: "👍" } });
    expect((await s.api("DELETE", `/api/messages/${msg.id}`, { token: m2!.token })).status).toBe(403);
    const so = await lastSeq(s, owner!.token);
    expect((await s.api("DELETE", `/api/messages/${msg.id}`, { token: admin!.token })).status).toBe(204);
    const evs = await eventsOf(s, owner!.token, so);
    expect(evs.map((e) => e.type)).toEqual(["message.delete"]);
    expect(evs[0]!.data).toEqual({ conversation_id: conv, message_id: msg.id, deleted_at: expect.any(String) });
    const [tomb] = (await history(owner!, conv)).body.items;
    expect(tomb).toMatchObject({ id: msg.id, content: "", reactions: [], deleted_at: evs[0]!.data.deleted_at, created_at: msg.created_at });
    // Deleting again changes nothing.
    expect((await s.api("DELETE", `/api/messages/${msg.id}`, { token: m1!.token })).status).toBe(204);
    expect(await eventsOf(s, owner!.token, evs[0]!.seq)).toEqual([]);
    // The owner too.
    const { body: other } = await send(m2!, conv, { content: "moderated" });
    expect((await s.api("DELETE", `/api/messages/${other.id}`, { token: owner!.token })).status).toBe(204);
  });

  test("in a direct conversation only the sender deletes", async () => {
    const [a, b] = await users(2);
    const { body: d } = await s.api("POST", "/api/conversations", { token: a!.token, body: { type: "direct", user_id: b!.user.id } });
    const { body: msg } = await send(a!, d.id, { content: "mine" });
    expect((await s.api("DELETE", `/api/messages/${msg.id}`, { token: b!.token })).status).toBe(403);
    expect((await s.api("DELETE", `/api/messages/${msg.id}`, { token: a!.token })).status).toBe(204);
    expect((await s.api("DELETE", `/api/messages/nope`, { token: a!.token })).status).toBe(404);
  });
});

describe("read positions", () => {
  test("three members: unread_count, read_count and is_read follow each member's position; forward only", async () => {
    const [a, b, c] = await users(3);
    const conv = await groupOf(a!, [b!, c!]);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await send(a!, conv, { content: `m${i}` })).body.id);
    const unread = async (who: Account) => (await s.api("GET", `/api/conversations/${conv}`, { token: who.token })).body.unread_count;
    expect(await unread(b!)).toBe(4);

    const sa = await lastSeq(s, a!.token);
    const r = await s.api("POST", `/api/conversations/${conv}/read`, { token: b!.token, body: { message_id: ids[1] } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ conversation_id: conv, user_id: b!.user.id, message_id: ids[1], read_at: expect.any(String), unread_count: 2 });
    const evs = await eventsOf(s, a!.token, sa);
    expect(evs.map((e) => e.type)).toEqual(["message.read"]);
    expect(evs[0]!.data).toEqual({ conversation_id: conv, user_id: b!.user.id, message_id: ids[1], read_at: r.body.read_at });

    await s.api("POST", `/api/conversations/${conv}/read`, { token: c!.token, body: { message_id: ids[3] } });
    const counts = (await history(a!, conv, "?after=")).body.items.map((m: any) => [m.read_count, m.is_read]);
    expect(counts).toEqual([[2, true], [2, true], [1, true], [1, true]]);
    expect(await unread(c!)).toBe(0);

    // Backwards changes nothing and emits nothing.
    const seq = await lastSeq(s, a!.token);
    const back = await s.api("POST", `/api/conversations/${conv}/read`, { token: b!.token, body: { message_id: ids[0] } });
    expect(back.body.message_id).toBe(ids[1]);
    expect(back.body.unread_count).toBe(2);
    expect(await eventsOf(s, a!.token, seq)).toEqual([]);
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: b!.token })).body.my_last_read_message_id).toBe(ids[1]);
    const member = (await membersOf(s, a!.token, conv)).find((m: any) => m.user.id === b!.user.id);
    expect(member.last_read_message_id).toBe(ids[1]);
  });

  test("reading your own message changes nothing; a message of another conversation is 422; non-members 404", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const { body: mine } = await send(a!, conv, { content: "mine" });
    const res = await s.api("POST", `/api/conversations/${conv}/read`, { token: a!.token, body: { message_id: mine.id } });
    expect(res.body.message_id).toBeNull();
    const other = await groupOf(a!, []);
    const { body: elsewhere } = await send(a!, other, { content: "x" });
    expect((await s.api("POST", `/api/conversations/${conv}/read`, { token: b!.token, body: { message_id: elsewhere.id } })).status).toBe(422);
    expect((await s.api("POST", `/api/conversations/${conv}/read`, { token: b!.token, body: {} })).status).toBe(422);
    expect((await s.api("POST", `/api/conversations/${other}/read`, { token: b!.token, body: { message_id: elsewhere.id } })).status).toBe(404);
  });

  test("deleted messages are not unread", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const { body: m } = await send(a!, conv, { content: "gone soon" });
    await send(a!, conv, { content: "stays" });
    await s.api("DELETE", `/api/messages/${m.id}`, { token: a!.token });
    expect((await s.api("GET", `/api/conversations/${conv}`, { token: b!.token })).body.unread_count).toBe(1);
  });
});

describe("reactions", () => {
  test("two users, aggregated per emoji; add twice is a no-op; remove; message.reaction with the action", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const { body: m } = await send(a!, conv, { content: "react to me" });
    const sa = await lastSeq(s, a!.token);
    await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji: "👍" } });
    const both = await s.api("POST", `/api/messages/${m.id}/reactions`, { token: b!.token, body: { emoji: "👍" } });
    await s.api("POST", `/api/messages/${m.id}/reactions`, { token: b!.token, body: { emoji: "🎉" } });
    const dup = await s.api("POST", `/api/messages/${m.id}/reactions`, { token: b!.token, body: { emoji: "🎉" } });
    expect(both.status).toBe(200);
    expect(dup.body.reactions).toEqual([
      { emoji: "👍", count: 2, user_ids: [a!.user.id, b!.user.id] },
      { emoji: "🎉", count: 1, user_ids: [b!.user.id] },
    ]);
    const removed = await s.api("DELETE", `/api/messages/${m.id}/reactions/${encodeURIComponent("👍")}`, { token: a!.token });
    expect(removed.body.reactions[0]).toEqual({ emoji: "👍", count: 1, user_ids: [b!.user.id] });
    const evs = await eventsOf(s, a!.token, sa);
    expect(evs.map((e) => [e.type, e.data.emoji, e.data.action, e.data.user_id])).toEqual([
      ["message.reaction", "👍", "add", a!.user.id],
      ["message.reaction", "👍", "add", b!.user.id],
      ["message.reaction", "🎉", "add", b!.user.id],
      ["message.reaction", "👍", "remove", a!.user.id],
    ]);
    expect(evs[0]!.data).toEqual({ conversation_id: conv, message_id: m.id, user_id: a!.user.id, emoji: "👍", action: "add" });
    expect((await history(a!, conv)).body.items[0].reactions).toHaveLength(2);
  });

  test("every reaction that can be added can be removed: \".\" and \"..\", which URLs resolve away, are refused (removing \"..\" deleted the sender's message)", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    const { body: m } = await send(a!, conv, { content: "dots" });
    const sa = await lastSeq(s, a!.token);
    for (const emoji of [".", "..", " .. "]) {
      const r = await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji } });
      expect([r.status, r.body.error.code, r.body.error.details?.[0]?.field]).toEqual([422, "validation_failed", "emoji"]);
    }
    expect(await eventsOf(s, a!.token, sa)).toEqual([]);
    // Other dots are names a URL keeps: added and removed.
    for (const emoji of ["...", ".a", "。"]) {
      expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji } })).status).toBe(200);
      const removed = await fetch(`${s.base}/api/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`, { method: "DELETE", headers: { authorization: `Bearer ${a!.token}` } });
      expect([removed.status, ((await removed.json()) as { reactions: unknown[] }).reactions]).toEqual([200, []]);
    }
    expect((await history(a!, conv)).body.items[0]).toMatchObject({ content: "dots", deleted_at: null, reactions: [] });
  });

  test("a message's reactions stay bounded: 20 kinds, 10 user ids each, exact counts", async () => {
    const people = await users(13);
    const [a] = people;
    const conv = await groupOf(a!, people.slice(1));
    const { body: m } = await send(a!, conv, { content: "popular" });
    for (const p of people) await s.api("POST", `/api/messages/${m.id}/reactions`, { token: p!.token, body: { emoji: "👍" } });
    for (let i = 1; i < 20; i++) expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji: `e${i}` } })).status).toBe(200);
    const refused = await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji: "e20" } });
    expect(refused.status).toBe(422);
    expect(refused.body.error.details).toEqual([expect.objectContaining({ field: "emoji" })]);
    // An existing kind can still be added by someone else.
    expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: people[1]!.token, body: { emoji: "e1" } })).status).toBe(200);
    const [shown] = (await history(a!, conv)).body.items;
    expect(shown.reactions).toHaveLength(20);
    expect(shown.reactions[0]).toEqual({ emoji: "👍", count: 13, user_ids: people.slice(0, 10).map((p) => p!.user.id) });
  });

  test("emoji 1–32 characters, not blank, no direction controls; non-members 404; deleted messages 409", async () => {
    const [a, outsider] = await users(2);
    const conv = await groupOf(a!, []);
    const { body: m } = await send(a!, conv, { content: "x" });
    expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji: "" } })).status).toBe(422);
    expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji: "x".repeat(33) } })).status).toBe(422);
    // Control characters (U+0000: stored on SQLite, a 400 on PostgreSQL before) are no emoji, on either engine.
    for (const emoji of ["👍\u0000", "\u0007", "a\u0085"]) {
      const res = await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji } });
      expect(res.status).toBe(422);
      expect(res.body.error.details).toEqual([{ field: "emoji", message: "must not contain control characters" }]);
    }
    // Nothing to see, or text turned around (both were taken); emoji sequences keep their joiners, selectors and tags.
    for (const [emoji, message] of [["\u202E", "must not contain direction controls"], ["👍\u2066", "must not contain direction controls"], ["\u200B", "must not be blank"], ["\uFE0F\u2800", "must not be blank"]]) {
      const res = await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji } });
      expect([emoji, res.status, res.body.error.details[0].message]).toEqual([emoji, 422, expect.stringContaining(message!)]);
    }
    for (const emoji of ["👩\u200D💻", "❤\uFE0F", "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", "🇹🇭"])
      expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji } })).status).toBe(200);
    expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: outsider!.token, body: { emoji: "👍" } })).status).toBe(404);
    await s.api("DELETE", `/api/messages/${m.id}`, { token: a!.token });
    expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji: "👍" } })).status).toBe(409);
  });

  test("an emoji path segment that is not valid percent-encoding is 400 and removes nothing", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    const { body: m } = await send(a!, conv, { content: "x" });
    expect((await s.api("POST", `/api/messages/${m.id}/reactions`, { token: a!.token, body: { emoji: "%" } })).status).toBe(200);
    for (const bad of ["%", "%E0%A4%A", "%FF"]) {
      const res = await s.api("DELETE", `/api/messages/${m.id}/reactions/${bad}`, { token: a!.token });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("bad_request");
    }
    // The literal "%" reaction is still there, and encoded properly it is removable (with a
    // trailing slash too, which Elysia also routes here).
    const removed = await s.api("DELETE", `/api/messages/${m.id}/reactions/${encodeURIComponent("%")}/`, { token: a!.token });
    expect(removed.status).toBe(200);
    expect(removed.body.reactions).toEqual([]);
  });
});

describe("mentions", () => {
  test("@username of a member notifies that member once; not the sender, not non-members", async () => {
    const [a, b, c, outsider] = await users(4);
    const conv = await groupOf(a!, [b!, c!]);
    const seqs = await Promise.all([a!, b!, c!, outsider!].map((u) => lastSeq(s, u.token)));
    const text = `hey @${b!.user.username} and @${b!.user.username.toUpperCase()}, @${a!.user.username} @${outsider!.user.username} mail@${c!.user.username}.com`;
    const { body: m } = await send(a!, conv, { content: text });
    const notes = await Promise.all([a!, b!, c!, outsider!].map(async (u, i) => (await eventsOf(s, u.token, seqs[i])).filter((e) => e.type === "notification")));
    expect(notes.map((n) => n.length)).toEqual([0, 1, 0, 0]);
    expect(notes[1]![0]!.data).toEqual({ kind: "mention", conversation_id: conv, message_id: m.id, from_user_id: a!.user.id });
  });

  test("a run of name characters longer than 32 mentions nobody, not its 32-character prefix", async () => {
    const [a] = await users(1);
    const long = await s.register(`lm${Date.now().toString(36)}${"x".repeat(32)}`.slice(0, 32));
    const conv = await groupOf(a!, [long]);
    const since = await lastSeq(s, long.token);
    await send(a!, conv, { content: `hi @${long.user.username}x and @${long.user.username}_more` });
    expect((await eventsOf(s, long.token, since)).filter((e) => e.type === "notification")).toEqual([]);
    await send(a!, conv, { content: `hi @${long.user.username}.` });
    expect((await eventsOf(s, long.token, since)).filter((e) => e.type === "notification")).toHaveLength(1);
  });
});

describe("concurrency", () => {
  test("40 concurrent sends into one conversation all land once; history order equals seq order", async () => {
    const senders = await users(4);
    const conv = await groupOf(senders[0]!, senders.slice(1));
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => send(senders[i % 4]!, conv, { content: `c${i}`, client_msg_id: `k${i}` })));
    expect(results.every((r) => r.status === 201)).toBe(true);
    const ids = (await history(senders[0]!, conv, "?after=&limit=100")).body.items.map((m: any) => m.id);
    expect(ids).toHaveLength(40);
    expect(new Set(ids).size).toBe(40);
    const receives = (await eventsOf(s, senders[1]!.token)).filter((e) => e.type === "message.receive").map((e) => e.data.id);
    expect(receives).toEqual(ids);
  });
});

describe("REST write limits on messages", () => {
  test("edits, deletes and reactions spend WRITES_PER_MINUTE; read positions spend SENDS_PER_MINUTE", async () => {
    const own = await startServer({ writesPerMinute: 4, sendsPerMinute: 4 });
    try {
      const [a, b] = [await own.register(), await own.register()];
      const { body: g } = await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t", member_ids: [b.user.id] } });
      const sent: { id: string }[] = [];
      const id = (i: number) => sent[i]!.id;
      for (let i = 0; i < 3; i++) sent.push((await own.api("POST", `/api/conversations/${g.id}/messages`, { token: a.token, body: { content: `m${i}` } })).body);
      // a: 1 of 4 writes used by the group; 3 of 4 sends.
      expect((await own.api("PATCH", `/api/messages/${id(0)}`, { token: a.token, body: { content: "edited" } })).status).toBe(200);
      expect((await own.api("POST", `/api/messages/${id(0)}/reactions`, { token: a.token, body: { emoji: "👍" } })).status).toBe(200);
      expect((await own.api("DELETE", `/api/messages/${id(1)}`, { token: a.token })).status).toBe(204);
      const limited = [
        await own.api("DELETE", `/api/messages/${id(0)}/reactions/${encodeURIComponent("👍")}`, { token: a.token }),
        await own.api("PATCH", `/api/messages/${id(2)}`, { token: a.token, body: { content: "no" } }),
        await own.api("DELETE", `/api/messages/${id(2)}`, { token: a.token }),
        await own.api("POST", `/api/messages/${id(2)}/reactions`, { token: a.token, body: { emoji: "x" } }),
      ];
      expect(limited.map((r) => r.status)).toEqual([429, 429, 429, 429]);
      expect(Number(limited[0]!.headers.get("retry-after"))).toBeGreaterThan(0);
      const after = (await own.api("GET", `/api/conversations/${g.id}/messages`, { token: a.token })).body.items;
      expect(after.find((m: { id: string }) => m.id === id(2))).toMatchObject({ content: "m2", deleted_at: null, reactions: [] });
      expect(after.find((m: { id: string }) => m.id === id(0)).reactions).toHaveLength(1);
      // b's read positions: 4 allowed, the fifth is 429 and moves nothing.
      for (let i = 0; i < 4; i++) expect((await own.api("POST", `/api/conversations/${g.id}/read`, { token: b.token, body: { message_id: id(0) } })).status).toBe(200);
      const read = await own.api("POST", `/api/conversations/${g.id}/read`, { token: b.token, body: { message_id: id(2) } });
      expect(read.status).toBe(429);
      expect((await own.api("GET", `/api/conversations/${g.id}`, { token: b.token })).body.unread_count).toBe(1);
    } finally {
      await own.stop();
    }
  });
});

describe("WebSocket frames spend the same per-user budgets as their REST twins", () => {
  test("conversation.create, message.edit and message.delete spend WRITES_PER_MINUTE; message.send and message.read SENDS_PER_MINUTE", async () => {
    const own = await startServer({ writesPerMinute: 3, sendsPerMinute: 3, wsFramesPerMinute: 1000 });
    const [a, b] = [await own.register(), await own.register()];
    const ws = await TestSocket.connect(`${own.wsBase}/ws/user?token=${a.token}`);
    try {
      const created = [];
      for (let i = 0; i < 3; i++) created.push(await ws.request("conversation.create", { type: "group", title: `g${i}`, member_ids: [b.user.id] }));
      expect(created.map((f) => f.type)).toEqual(["ack", "ack", "ack"]);
      const g = created[0]!.data.result.id as string;
      // The budget is the user's, whichever door spends it.
      const overWs = await ws.request("conversation.create", { type: "group", title: "one too many" });
      expect(overWs.error).toMatchObject({ code: "rate_limited" });
      expect(overWs.error.retry_after_ms).toBeGreaterThan(0);
      expect((await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "rest too" } })).status).toBe(429);
      const groups = (await own.api("GET", "/api/conversations", { token: a.token })).body.items;
      expect(groups).toHaveLength(3);

      const sent = [];
      for (let i = 0; i < 3; i++) sent.push(await ws.request("message.send", { conversation_id: g, content: `m${i}` }));
      expect(sent.map((f) => f.type)).toEqual(["ack", "ack", "ack"]);
      expect((await ws.request("message.send", { conversation_id: g, content: "m3" })).error.code).toBe("rate_limited");
      const m0 = sent[0]!.data.result.id as string;
      expect((await ws.request("message.edit", { message_id: m0, content: "edited" })).error.code).toBe("rate_limited");
      expect((await ws.request("message.delete", { message_id: m0 })).error.code).toBe("rate_limited");
      const history = (await own.api("GET", `/api/conversations/${g}/messages`, { token: a.token })).body.items;
      expect(history.map((m: { content: string; deleted_at: string | null }) => [m.content, m.deleted_at])).toEqual([["m2", null], ["m1", null], ["m0", null]]);

      // b's read positions over the socket spend b's send budget.
      const wb = await TestSocket.connect(`${own.wsBase}/ws/user?token=${b.token}`);
      for (let i = 0; i < 3; i++) expect((await wb.request("message.read", { conversation_id: g, message_id: m0 })).type).toBe("ack");
      expect((await wb.request("message.read", { conversation_id: g, message_id: sent[2]!.data.result.id })).error.code).toBe("rate_limited");
      wb.close();
    } finally {
      ws.close();
      await own.stop();
    }
  });
});

describe("REST send rate limit", () => {
  test("over SENDS_PER_MINUTE: 429 with Retry-After, nothing written", async () => {
    const own = await startServer({ sendsPerMinute: 3 });
    try {
      const a = await own.register();
      const { body: g } = await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t" } });
      for (let i = 0; i < 3; i++) expect((await own.api("POST", `/api/conversations/${g.id}/messages`, { token: a.token, body: { content: "x" } })).status).toBe(201);
      const limited = await own.api("POST", `/api/conversations/${g.id}/messages`, { token: a.token, body: { content: "x" } });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect((await own.api("GET", `/api/conversations/${g.id}/messages`, { token: a.token })).body.items).toHaveLength(3);
    } finally {
      await own.stop();
    }
  });
});

describe.skipIf(TEST_BACKEND === "postgres")("reactions \".\" and \"..\" made before they were refused", () => {
  test("migration 0018 removes them, and nothing else (they could never be removed: DELETE …/reactions/.. deleted the message)", () => {
    withSqliteBefore("DELETE FROM `message_reactions` WHERE `emoji` IN", (db, pending) => {
      const sql = db.$client;
      sql.run("INSERT INTO users (id, username, password_hash, display_name, last_active_at, created_at, updated_at) VALUES ('u1', 'u1', '!', 'U', 0, 0, 0)");
      sql.run("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES ('c1', 'group', 't', 'u1', 0, 0, 0)");
      sql.run("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES ('c1', 'u1', 'owner', 0)");
      sql.run("INSERT INTO messages (id, conversation_id, sender_id, message_type, content, created_at) VALUES ('m1', 'c1', 'u1', 'text', 'hi', 0)");
      for (const emoji of [".", "..", "...", ".a", "👍"]) sql.run("INSERT INTO message_reactions (message_id, user_id, emoji, created_at) VALUES ('m1', 'u1', ?, 0)", [emoji]);
      expect(migrate(db)).toBe(pending);
      expect((sql.query("SELECT emoji FROM message_reactions ORDER BY emoji").values() as [string][]).map((r) => r[0])).toEqual(["...", ".a", "👍"]);
      expect(sql.query("SELECT content, deleted_at FROM messages").all()).toEqual([{ content: "hi", deleted_at: null }]);
    });
  });
});
