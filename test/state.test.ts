/**
 * In the spirit of Zulip's `verify_action`: a client that loads its state through REST and
 * then applies the events it receives (live, or replayed on resume) ends up with exactly
 * what a fresh REST fetch gives: the conversation list, the members, the messages.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { lastSeq, startServer, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";
import { apply, loadState, snapshot } from "./client-state";

let s: TestServer;
beforeAll(async () => (s = await startServer({ contactPolicy: "open" })));
afterAll(() => s.stop());

test("events applied to a client's earlier state give what REST gives, live and on resume", async () => {
  const [me, a, b, c] = await Promise.all([s.register(), s.register(), s.register(), s.register()]);
  const call = async (who: { token: string }, method: string, path: string, body?: unknown) => {
    const res = await s.api(method, path, { token: who.token, body });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const send = (who: { token: string }, conv: string, content: string) => call(who, "POST", `/api/conversations/${conv}/messages`, { content });

  // Before: a group and a direct conversation with some history.
  const group = (await call(a, "POST", "/api/conversations", { type: "group", title: "Team", member_ids: [me.user.id, b.user.id] })).id;
  const direct = (await call(me, "POST", "/api/conversations", { type: "direct", user_id: a.user.id })).id;
  const first = await send(a, group, "hello team");
  await send(me, direct, "hi a");
  await call(me, "POST", `/api/conversations/${group}/read`, { message_id: first.id });

  const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${me.token}`);
  const bws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b.token}`);
  const mine = await loadState(s, me.token, me.user.id);
  const from = ws.frames.length;
  const away = await loadState(s, b.token, b.user.id);
  const since = await lastSeq(s, b.token);
  bws.close();
  await bws.waitClosed();

  // Changes by everyone, through REST and WebSocket.
  const second = await send(a, group, "second, to be edited");
  await ws.request("message.send", { conversation_id: direct, content: "over the socket" });
  await call(a, "PATCH", `/api/messages/${second.id}`, { content: "second, edited" });
  await call(b, "POST", `/api/messages/${first.id}/reactions`, { emoji: "👍" });
  await ws.request("message.read", { conversation_id: group, message_id: second.id });
  await call(me, "POST", `/api/messages/${first.id}/reactions`, { emoji: "🎉" });
  await call(b, "DELETE", `/api/messages/${first.id}/reactions/${encodeURIComponent("👍")}`);
  await call(b, "POST", `/api/conversations/${group}/read`, { message_id: second.id });
  const doomed = await send(b, group, "to be deleted");
  await call(b, "DELETE", `/api/messages/${doomed.id}`);
  await call(a, "PATCH", `/api/conversations/${group}`, { title: "Team, renamed" });
  await call(a, "POST", `/api/conversations/${group}/members`, { user_ids: [c.user.id] });
  await call(a, "PATCH", `/api/conversations/${group}/members/${b.user.id}`, { role: "admin" });
  await send(c, group, "hi, I am new");
  await call(b, "DELETE", `/api/conversations/${group}/members/${c.user.id}`);
  const other = (await call(c, "POST", "/api/conversations", { type: "group", title: "Side", member_ids: [me.user.id] })).id;
  await send(c, other, "psst");
  const gone = (await call(a, "POST", "/api/conversations", { type: "group", title: "Short-lived", member_ids: [me.user.id, b.user.id] })).id;
  await call(a, "DELETE", `/api/conversations/${gone}`);
  await call(a, "PATCH", "/api/users/me", { display_name: "Alice Renamed" });
  await send(b, group, "done");
  await ws.waitFor((f) => f.type === "message.receive" && f.data.content === "done");

  const live = ws.frames.slice(from);
  const types = new Set(live.map((f) => f.type));
  for (const type of ["message.receive", "message.edit", "message.delete", "message.reaction", "message.read", "conversation.update", "conversation.member_add",
    "conversation.member_remove", "conversation.member_update", "conversation.create", "conversation.delete", "user.update"])
    expect(types, type).toContain(type);

  for (const f of live) apply(mine, f);
  const restMine = await loadState(s, me.token, me.user.id);
  expect(snapshot(mine, mine)).toEqual(snapshot(restMine, mine));
  // Not vacuous: the state did change, and REST agrees with the changes.
  expect(restMine.conversations.get(group)).toMatchObject({ title: "Team, renamed", member_count: 3, unread_count: 2 });
  expect(restMine.conversations.get(direct)).toMatchObject({ title: "Alice Renamed" });
  expect(restMine.conversations.has(gone)).toBe(false);
  expect(restMine.conversations.has(other)).toBe(true);

  // b was away: the replay brings b's earlier state to the same point.
  const back = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b.token}&since=${since}`);
  const replayed = back.frames.slice(1, back.frames.findIndex((f) => f.type === "sync.complete"));
  expect(replayed.length).toBeGreaterThan(10);
  for (const f of replayed) apply(away, f);
  expect(snapshot(away, away)).toEqual(snapshot(await loadState(s, b.token, b.user.id), away));
  ws.close();
  back.close();
}, 30_000);
