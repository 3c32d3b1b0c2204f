/** CONTACT_POLICY (PROTOCOL §7.2): with `friends`, only friends can be put into a conversation. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventsOf, startServer, type Account, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";

let s: TestServer;
let open: TestServer;
beforeAll(async () => {
  [s, open] = await Promise.all([startServer({ contactPolicy: "friends" }), startServer({ contactPolicy: "open" })]);
});
afterAll(() => Promise.all([s.stop(), open.stop()]));

const users = (n: number, server = s) => Promise.all(Array.from({ length: n }, () => server.register()));

async function befriend(a: Account, b: Account) {
  const req = await s.api("POST", "/api/friendships", { token: a.token, body: { friend_id: b.user.id } });
  expect(req.status).toBe(201);
  expect((await s.api("PATCH", `/api/friendships/${req.body.id}/accept`, { token: b.token })).status).toBe(200);
}

const create = (server: TestServer, a: Account, body: unknown) => server.api("POST", "/api/conversations", { token: a.token, body });
const direct = (a: Account, b: Account, server = s) => create(server, a, { type: "direct", user_id: b.user.id });
const group = (a: Account, others: Account[], server = s) => create(server, a, { type: "group", title: "Team", member_ids: others.map((o) => o.user.id) });
const conversationEvents = async (who: Account) => (await eventsOf(s, who.token)).filter((e) => e.type.startsWith("conversation."));
const conversationsOf = async (who: Account) => (await s.api("GET", "/api/conversations", { token: who.token })).body.items;

function expectRefused(res: { status: number; body: any }, refused: Account[]) {
  expect(res.status).toBe(403);
  expect(res.body.error.code).toBe("not_friends");
  expect(typeof res.body.error.message).toBe("string");
  expect(res.body.error.details).toEqual(refused.map((r) => ({ user_id: r.user.id })));
}

describe("CONTACT_POLICY=friends", () => {
  test("a direct conversation with a stranger is 403 not_friends, and nothing is created", async () => {
    const [a, b] = await users(2);
    expectRefused(await direct(a!, b!), [b!]);
    for (const who of [a!, b!]) {
      expect(await conversationsOf(who)).toEqual([]);
      expect(await conversationEvents(who)).toEqual([]);
    }
  });

  test("a pending request is not a friendship; an accepted one is", async () => {
    const [a, b] = await users(2);
    await s.api("POST", "/api/friendships", { token: a!.token, body: { friend_id: b!.user.id } });
    expectRefused(await direct(a!, b!), [b!]);
    const [c, d] = await users(2);
    await befriend(c!, d!);
    expect((await direct(c!, d!)).status).toBe(201);
    expect((await direct(d!, c!)).status).toBe(200);
  });

  test("a group naming strangers is refused naming every one of them, and nothing is created", async () => {
    const [owner, friend, x, y] = await users(4);
    await befriend(friend!, owner!);
    expectRefused(await group(owner!, [x!, friend!, y!]), [x!, y!]);
    for (const who of [owner!, friend!, x!, y!]) {
      expect(await conversationsOf(who)).toEqual([]);
      expect(await conversationEvents(who)).toEqual([]);
    }
    expect((await group(owner!, [friend!])).status).toBe(201);
  });

  test("adding strangers to a group is refused naming them; the group and its events stay as they were", async () => {
    const [owner, friend, friend2, x, y] = await users(5);
    await befriend(owner!, friend!);
    await befriend(owner!, friend2!);
    const { body: g } = await group(owner!, [friend!]);
    const before = await eventsOf(s, owner!.token);
    const res = await s.api("POST", `/api/conversations/${g.id}/members`, { token: owner!.token, body: { user_ids: [friend2!.user.id, x!.user.id, y!.user.id] } });
    expectRefused(res, [x!, y!]);
    const now = await s.api("GET", `/api/conversations/${g.id}/members`, { token: owner!.token });
    expect(now.body.items.map((m: any) => m.user.id).sort()).toEqual([owner!.user.id, friend!.user.id].sort());
    expect(await eventsOf(s, owner!.token)).toEqual(before);
    for (const who of [friend2!, x!, y!]) expect(await conversationEvents(who)).toEqual([]);
    const ok = await s.api("POST", `/api/conversations/${g.id}/members`, { token: owner!.token, body: { user_ids: [friend2!.user.id] } });
    expect(ok.status).toBe(200);
  });

  test("each actor needs their own friendship; members already in the group are not re-checked", async () => {
    const [owner, admin, theirFriend] = await users(3);
    await befriend(owner!, admin!);
    await befriend(admin!, theirFriend!);
    const { body: g } = await group(owner!, [admin!]);
    await s.api("PATCH", `/api/conversations/${g.id}/members/${admin!.user.id}`, { token: owner!.token, body: { role: "admin" } });
    const add = (by: Account) => s.api("POST", `/api/conversations/${g.id}/members`, { token: by.token, body: { user_ids: [theirFriend!.user.id] } });
    expectRefused(await add(owner!), [theirFriend!]);
    expect((await add(admin!)).status).toBe(200);
    // Already a member: ignored, as ids already in the group are, not refused.
    expect((await add(owner!)).status).toBe(200);
  });

  test("an existing direct conversation is still returned after unfriending (nothing is created)", async () => {
    const [a, b] = await users(2);
    await befriend(a!, b!);
    const first = await direct(a!, b!);
    const friendship = (await s.api("GET", "/api/friendships?status=accepted", { token: a!.token })).body.items[0];
    expect((await s.api("DELETE", `/api/friendships/${friendship.id}`, { token: a!.token })).status).toBe(204);
    const again = await direct(b!, a!);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
  });

  test("unknown user ids are still 422, before the policy", async () => {
    const [a] = await users(1);
    const res = await create(s, a!, { type: "group", title: "T", member_ids: ["nobody"] });
    expect(res.status).toBe(422);
  });

  test("the conversation.create frame gets the same refusal as an error frame", async () => {
    const [a, b, c, friend] = await users(4);
    await befriend(a!, friend!);
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a!.token}`);
    try {
      for (const [data, refused] of [
        [{ type: "direct", user_id: b!.user.id }, [b!]],
        [{ type: "group", title: "T", member_ids: [b!.user.id, friend!.user.id, c!.user.id] }, [b!, c!]],
      ] as const) {
        const reply = await ws.request("conversation.create", data);
        expect(reply.type).toBe("error");
        expect(reply.error.code).toBe("not_friends");
        expect(reply.data.request_type).toBe("conversation.create");
        expect(reply.error.details).toEqual(refused.map((r) => ({ user_id: r.user.id })));
      }
      expect(ws.all("conversation.create")).toEqual([]);
      const ok = await ws.request("conversation.create", { type: "direct", user_id: friend!.user.id });
      expect(ok.type).toBe("ack");
    } finally {
      ws.close();
    }
    for (const who of [b!, c!]) expect(await conversationEvents(who)).toEqual([]);
  });
});

describe("CONTACT_POLICY=open", () => {
  test("anyone may open a direct conversation with, or add, anyone", async () => {
    const [a, b, c, d] = await users(4, open);
    expect((await direct(a!, b!, open)).status).toBe(201);
    const g = await group(a!, [b!, c!], open);
    expect(g.status).toBe(201);
    expect((await open.api("POST", `/api/conversations/${g.body.id}/members`, { token: a!.token, body: { user_ids: [d!.user.id] } })).status).toBe(200);
  });
});

describe("GET /api/contact-policy", () => {
  test("names the server's policy to a signed-in client (a client offers conversations with anyone only under open); 401 without a token", async () => {
    const [a] = await users(1, s);
    const [b] = await users(1, open);
    expect(await s.api("GET", "/api/contact-policy", { token: a!.token })).toMatchObject({ status: 200, body: { contact_policy: "friends" } });
    expect(await open.api("GET", "/api/contact-policy", { token: b!.token })).toMatchObject({ status: 200, body: { contact_policy: "open" } });
    expect((await s.api("GET", "/api/contact-policy")).status).toBe(401);
  });
});
