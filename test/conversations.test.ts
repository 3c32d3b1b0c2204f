import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventsOf, lastSeq, membersOf, rolesOf, startServer, type Account, type TestServer } from "./helpers";
import { SORT_IN_JS } from "../src/conversations/service";
import { TestSocket } from "./ws-client";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ maxGroupMembers: 5 });
});
afterAll(() => s.stop());

const users = async (n: number) => Promise.all(Array.from({ length: n }, () => s.register()));
const group = (owner: Account, others: Account[], title = "Team") =>
  s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title, member_ids: others.map((o) => o.user.id) } });
const direct = (a: Account, b: Account) => s.api("POST", "/api/conversations", { token: a.token, body: { type: "direct", user_id: b.user.id } });

describe("direct conversations", () => {
  test("one per pair: 201, then 200 with the same conversation from either side", async () => {
    const [a, b] = await users(2);
    const first = await direct(a!, b!);
    expect(first.status).toBe(201);
    const again = await direct(b!, a!);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
  });

  test("title is the other member's display name, for each viewer; every field is there", async () => {
    const [a, b] = await users(2);
    await s.api("PATCH", "/api/users/me", { token: b!.token, body: { display_name: "Bee" } });
    const { body: c } = await direct(a!, b!);
    expect(Object.keys(c)).toEqual([
      "id", "type", "title", "created_by", "created_at", "updated_at", "last_message_at", "last_message",
      "unread_count", "is_subscribed", "member_count", "my_role", "my_last_read_message_id", "peer",
    ]);
    expect(c).toMatchObject({ type: "direct", title: "Bee", created_by: a!.user.id, last_message_at: null, last_message: null, unread_count: 0, is_subscribed: true });
    expect(c).toMatchObject({ member_count: 2, my_role: "member", my_last_read_message_id: null, peer: { id: b!.user.id, display_name: "Bee" } });
    expect((await membersOf(s, a!.token, c.id)).map((m: any) => m.user.id).sort()).toEqual([a!.user.id, b!.user.id].sort());
    expect((await membersOf(s, a!.token, c.id))[0]).toEqual({ user: expect.any(Object), role: "member", joined_at: expect.any(String), last_read_message_id: null });
    const seenByB = await s.api("GET", `/api/conversations/${c.id}`, { token: b!.token });
    expect(seenByB.body.title).toBe(a!.user.display_name);
    expect(seenByB.body.peer).toEqual(expect.objectContaining({ id: a!.user.id, username: a!.user.username }));
  });

  test("both members get conversation.create on their own topic, each with their own view", async () => {
    const [a, b] = await users(2);
    const { body: c } = await direct(a!, b!);
    const ea = (await eventsOf(s, a!.token)).filter((e) => e.type === "conversation.create");
    const eb = (await eventsOf(s, b!.token)).filter((e) => e.type === "conversation.create");
    expect(ea).toHaveLength(1);
    expect(eb).toHaveLength(1);
    expect(ea[0]!.data.id).toBe(c.id);
    expect(ea[0]!.data.title).toBe(b!.user.display_name);
    expect(eb[0]!.data.title).toBe(a!.user.display_name);
    expect(eb[0]!.data.unread_count).toBe(0);
  });

  test("with yourself 422, with an unknown user 422 naming it, missing user_id 422", async () => {
    const [a] = await users(1);
    expect((await direct(a!, a!)).status).toBe(422);
    const unknown = await s.api("POST", "/api/conversations", { token: a!.token, body: { type: "direct", user_id: "nobody" } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.details[0]).toMatchObject({ field: "user_id", user_ids: ["nobody"] });
    expect((await s.api("POST", "/api/conversations", { token: a!.token, body: { type: "direct" } })).status).toBe(422);
    const control = await s.api("POST", "/api/conversations", { token: a!.token, body: { type: "group", title: "bad\u0007title" } });
    expect(control.status).toBe(422);
    expect(control.body.error.details[0].field).toBe("title");
    const channel = await s.api("POST", "/api/conversations", { token: a!.token, body: { type: "channel" } });
    expect(channel.status).toBe(422);
    // A union of literals names its values (TypeBox alone says "one of: 'string', 'string'").
    expect(channel.body.error.details).toContainEqual({ field: "type", message: "must be one of: direct, group" });
  });

  test("either side deletes it; both get conversation.delete; it is gone for both", async () => {
    const [a, b] = await users(2);
    const { body: c } = await direct(a!, b!);
    const sa = await lastSeq(s, a!.token);
    expect((await s.api("DELETE", `/api/conversations/${c.id}`, { token: b!.token })).status).toBe(204);
    expect((await eventsOf(s, a!.token, sa)).map((e) => [e.type, e.data])).toEqual([["conversation.delete", { conversation_id: c.id }]]);
    expect((await s.api("GET", `/api/conversations/${c.id}`, { token: a!.token })).status).toBe(404);
    // A new one can be started afterwards.
    expect((await direct(a!, b!)).status).toBe(201);
  });

  test("a direct conversation cannot be renamed, joined or left", async () => {
    const [a, b, c] = await users(3);
    const { body: d } = await direct(a!, b!);
    expect((await s.api("PATCH", `/api/conversations/${d.id}`, { token: a!.token, body: { title: "x" } })).status).toBe(403);
    expect((await s.api("POST", `/api/conversations/${d.id}/members`, { token: a!.token, body: { user_ids: [c!.user.id] } })).status).toBe(403);
    expect((await s.api("DELETE", `/api/conversations/${d.id}/members/${a!.user.id}`, { token: a!.token })).status).toBe(403);
  });
});

describe("groups", () => {
  test("creator is owner, others members; each member gets conversation.create", async () => {
    const [o, m1, m2] = await users(3);
    const res = await group(o!, [m1!, m2!, m1!]);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ title: "Team", member_count: 3, my_role: "owner", peer: null });
    expect(res.body).not.toHaveProperty("members");
    expect(await rolesOf(s, o!.token, res.body.id)).toEqual({ [o!.user.id]: "owner", [m1!.user.id]: "member", [m2!.user.id]: "member" });
    for (const who of [o!, m1!, m2!]) {
      const evs = (await eventsOf(s, who.token)).filter((e) => e.type === "conversation.create");
      expect(evs.map((e) => e.data.id)).toEqual([res.body.id]);
      expect(evs[0]!.data).toMatchObject({ member_count: 3, my_role: who === o ? "owner" : "member", my_last_read_message_id: null });
    }
  });

  test("a group's conversation.create is stored once per view (owner, members), not per member; added members see the history as unread", async () => {
    const [o, a, b, late] = await users(4);
    const payloads = async () => (await s.rows<{ n: number }>("SELECT count(*) AS n FROM event_payloads"))[0]!.n;
    const before = await payloads();
    const { body: g } = await group(o!, [a!, b!]);
    expect(await payloads()).toBe(before + 2); // the owner's view, and one shared by every member
    for (const who of [o!, a!, b!]) {
      const create = (await eventsOf(s, who.token)).find((e) => e.type === "conversation.create" && e.data.id === g.id)!;
      expect(create.data).toMatchObject({ id: g.id, title: "Team", unread_count: 0, member_count: 3 });
    }
    for (let i = 0; i < 3; i++) await s.api("POST", `/api/conversations/${g.id}/messages`, { token: a!.token, body: { content: `m${i}` } });
    await s.api("POST", `/api/conversations/${g.id}/members`, { token: o!.token, body: { user_ids: [late!.user.id] } });
    const added = (await eventsOf(s, late!.token)).find((e) => e.type === "conversation.create")!;
    expect(added.data).toMatchObject({ unread_count: 3, member_count: 4, my_role: "member" });
    expect((await s.api("GET", `/api/conversations/${g.id}`, { token: late!.token })).body.unread_count).toBe(3);
  });

  test("title 1–100 characters, unknown member ids 422 naming them, at most MAX_GROUP_MEMBERS", async () => {
    const [o, m] = await users(2);
    expect((await group(o!, [], "")).status).toBe(422);
    expect((await group(o!, [], "   ")).status).toBe(422);
    expect((await group(o!, [], "x".repeat(101))).status).toBe(422);
    expect((await group(o!, [], "🎉".repeat(101))).status).toBe(422);
    expect((await group(o!, [], "🎉".repeat(100))).status).toBe(201); // characters, not UTF-16 units
    const unknown = await s.api("POST", "/api/conversations", { token: o!.token, body: { type: "group", title: "t", member_ids: [m!.user.id, "ghost1", "ghost2"] } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.details[0].user_ids).toEqual(["ghost1", "ghost2"]);
    const five = await users(5);
    expect((await group(o!, five)).status).toBe(422);
    expect((await group(o!, five.slice(0, 4))).status).toBe(201);
    expect((await group(o!, [])).status).toBe(201); // a group of one
  });

  test("non-members get 404 everywhere; the conversation does not leak", async () => {
    const [o, m, outsider] = await users(3);
    const { body: g } = await group(o!, [m!]);
    const t = outsider!.token;
    expect((await s.api("GET", `/api/conversations/${g.id}`, { token: t })).status).toBe(404);
    expect((await s.api("PATCH", `/api/conversations/${g.id}`, { token: t, body: { title: "x" } })).status).toBe(404);
    expect((await s.api("DELETE", `/api/conversations/${g.id}`, { token: t })).status).toBe(404);
    expect((await s.api("POST", `/api/conversations/${g.id}/members`, { token: t, body: { user_ids: [outsider!.user.id] } })).status).toBe(404);
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/${m!.user.id}`, { token: t })).status).toBe(404);
    expect((await s.api("PATCH", `/api/conversations/${g.id}/members/${m!.user.id}`, { token: t, body: { role: "admin" } })).status).toBe(404);
    expect((await eventsOf(s, t)).some((e) => JSON.stringify(e.data).includes(g.id))).toBe(false);
  });

  test("rename: owner/admin only, conversation.update to members with what is the same for every member", async () => {
    const [o, a, m] = await users(3);
    const { body: g } = await group(o!, [a!, m!]);
    await s.api("PATCH", `/api/conversations/${g.id}/members/${a!.user.id}`, { token: o!.token, body: { role: "admin" } });
    expect((await s.api("PATCH", `/api/conversations/${g.id}`, { token: m!.token, body: { title: "Nope" } })).status).toBe(403);
    const sm = await lastSeq(s, m!.token);
    const res = await s.api("PATCH", `/api/conversations/${g.id}`, { token: a!.token, body: { title: "Renamed" } });
    expect(res.status).toBe(200);
    expect(res.body.title).toBe("Renamed");
    const evs = await eventsOf(s, m!.token, sm);
    expect(evs.map((e) => e.type)).toEqual(["conversation.update"]);
    expect(evs[0]!.data).toEqual({
      id: g.id, type: "group", title: "Renamed", created_by: o!.user.id, created_at: g.created_at, updated_at: res.body.updated_at,
      last_message_at: null, is_subscribed: true, member_count: 3,
    });
    expect((await s.api("PATCH", `/api/conversations/${g.id}`, { token: a!.token, body: { title: "" } })).status).toBe(422);
  });

  test("add members: owner/admin; added get conversation.create, existing get conversation.member_add; limit enforced", async () => {
    const [o, m, n1, n2] = await users(4);
    const { body: g } = await group(o!, [m!]);
    expect((await s.api("POST", `/api/conversations/${g.id}/members`, { token: m!.token, body: { user_ids: [n1!.user.id] } })).status).toBe(403);
    const unknown = await s.api("POST", `/api/conversations/${g.id}/members`, { token: o!.token, body: { user_ids: ["ghost"] } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.details[0].user_ids).toEqual(["ghost"]);
    expect((await s.api("POST", `/api/conversations/${g.id}/members`, { token: o!.token, body: { user_ids: [] } })).status).toBe(422);

    const sm = await lastSeq(s, m!.token);
    const res = await s.api("POST", `/api/conversations/${g.id}/members`, { token: o!.token, body: { user_ids: [n1!.user.id, n2!.user.id, m!.user.id] } });
    expect(res.status).toBe(200);
    expect(res.body.member_count).toBe(4);
    const delta = await eventsOf(s, m!.token, sm);
    expect(delta.map((e) => e.type)).toEqual(["conversation.member_add"]);
    expect(delta[0]!.data).toEqual({ conversation_id: g.id, member_count: 4, members: await membersOf(s, o!.token, g.id).then((all) => all.slice(2)) });
    expect(delta[0]!.data.members.map((x: any) => x.user.id).sort()).toEqual([n1!.user.id, n2!.user.id].sort());
    const n1Events = await eventsOf(s, n1!.token);
    expect(n1Events.map((e) => e.type)).toContain("conversation.create");
    expect(n1Events.find((e) => e.type === "conversation.create")!.data.id).toBe(g.id);

    const [x, y] = await users(2);
    const over = await s.api("POST", `/api/conversations/${g.id}/members`, { token: o!.token, body: { user_ids: [x!.user.id, y!.user.id] } });
    expect(over.status).toBe(422);
    expect((await s.api("GET", `/api/conversations/${g.id}`, { token: o!.token })).body.member_count).toBe(4);
  });

  test("remove and leave: the removed user gets conversation.delete, the rest conversation.member_remove; admins cannot remove admins or the owner", async () => {
    const [o, a1, a2, m] = await users(4);
    const { body: g } = await group(o!, [a1!, a2!, m!]);
    for (const a of [a1!, a2!]) await s.api("PATCH", `/api/conversations/${g.id}/members/${a.user.id}`, { token: o!.token, body: { role: "admin" } });
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/${a2!.user.id}`, { token: m!.token })).status).toBe(403);
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/${a2!.user.id}`, { token: a1!.token })).status).toBe(403);
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/${o!.user.id}`, { token: a1!.token })).status).toBe(403);
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/not-a-member`, { token: o!.token })).status).toBe(404);

    const [sm, so] = [await lastSeq(s, m!.token), await lastSeq(s, o!.token)];
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/${m!.user.id}`, { token: a1!.token })).status).toBe(204);
    expect((await eventsOf(s, m!.token, sm)).map((e) => [e.type, e.data])).toEqual([["conversation.delete", { conversation_id: g.id }]]);
    const ownerEvents = await eventsOf(s, o!.token, so);
    expect(ownerEvents.map((e) => [e.type, e.data])).toEqual([["conversation.member_remove", { conversation_id: g.id, user_ids: [m!.user.id], member_count: 3 }]]);
    expect((await s.api("GET", `/api/conversations/${g.id}`, { token: m!.token })).status).toBe(404);

    // Leaving yourself.
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/${a2!.user.id}`, { token: a2!.token })).status).toBe(204);
    expect((await s.api("GET", `/api/conversations/${g.id}`, { token: o!.token })).body.member_count).toBe(2);
    expect(Object.keys(await rolesOf(s, o!.token, g.id)).sort()).toEqual([o!.user.id, a1!.user.id].sort());
  });

  test("an owner who leaves hands over to the longest-standing admin, else member; the last one out deletes the group", async () => {
    const [o, early, late, admin] = await users(4);
    const { body: g } = await group(o!, [early!]);
    await s.api("POST", `/api/conversations/${g.id}/members`, { token: o!.token, body: { user_ids: [late!.user.id, admin!.user.id] } });
    await s.api("PATCH", `/api/conversations/${g.id}/members/${admin!.user.id}`, { token: o!.token, body: { role: "admin" } });

    const ownerOf = async () => Object.entries(await rolesOf(s, late!.token, g.id)).find(([, role]) => role === "owner")?.[0];
    const se = await lastSeq(s, early!.token);
    await s.api("DELETE", `/api/conversations/${g.id}/members/${o!.user.id}`, { token: o!.token });
    expect(await ownerOf()).toBe(admin!.user.id);
    // The hand-over is a member_update after the member_remove.
    const handOver = await eventsOf(s, early!.token, se);
    expect(handOver.map((e) => e.type)).toEqual(["conversation.member_remove", "conversation.member_update"]);
    expect(handOver[1]!.data).toMatchObject({ conversation_id: g.id, member: { user: { id: admin!.user.id }, role: "owner" } });
    expect((await s.api("GET", `/api/conversations/${g.id}`, { token: admin!.token })).body.my_role).toBe("owner");

    await s.api("DELETE", `/api/conversations/${g.id}/members/${admin!.user.id}`, { token: admin!.token });
    expect(await ownerOf()).toBe(early!.user.id);

    await s.api("DELETE", `/api/conversations/${g.id}/members/${early!.user.id}`, { token: early!.token });
    const sl = await lastSeq(s, late!.token);
    expect((await s.api("DELETE", `/api/conversations/${g.id}/members/${late!.user.id}`, { token: late!.token })).status).toBe(204);
    expect((await eventsOf(s, late!.token, sl)).map((e) => e.type)).toEqual(["conversation.delete"]);
    expect(await s.rows("SELECT count(*) AS n FROM conversations WHERE id = ?", g.id)).toEqual([{ n: 0 }]);
  });

  test("joins in the same millisecond: the earlier join (not the smaller user id) inherits ownership", async () => {
    const late = await s.register(); // registered first: the smaller id
    const [o, early] = [await s.register(), await s.register()];
    const { body: g } = await group(o!, [early]);
    await s.api("POST", `/api/conversations/${g.id}/members`, { token: o!.token, body: { user_ids: [late.user.id] } });
    expect(late.user.id < early.user.id).toBe(true);
    await s.rows(
      "UPDATE conversation_members SET joined_at = (SELECT joined_at FROM conversation_members WHERE conversation_id = ? AND user_id = ?) WHERE conversation_id = ? AND user_id = ?",
      g.id, early.user.id, g.id, late.user.id,
    );
    await s.api("DELETE", `/api/conversations/${g.id}/members/${o!.user.id}`, { token: o!.token });
    expect((await rolesOf(s, early.token, g.id))[early.user.id]).toBe("owner");
  });

  test("roles: owner only; handing over ownership demotes the old owner to admin; the owner cannot demote themself", async () => {
    const [o, m, other] = await users(3);
    const { body: g } = await group(o!, [m!, other!]);
    expect((await s.api("PATCH", `/api/conversations/${g.id}/members/${other!.user.id}`, { token: m!.token, body: { role: "admin" } })).status).toBe(403);
    expect((await s.api("PATCH", `/api/conversations/${g.id}/members/${m!.user.id}`, { token: o!.token, body: { role: "boss" } })).status).toBe(422);
    expect((await s.api("PATCH", `/api/conversations/${g.id}/members/${o!.user.id}`, { token: o!.token, body: { role: "member" } })).status).toBe(422);
    const sm = await lastSeq(s, m!.token);
    const res = await s.api("PATCH", `/api/conversations/${g.id}/members/${m!.user.id}`, { token: o!.token, body: { role: "owner" } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ user: { id: m!.user.id }, role: "owner" });
    // The old owner is demoted first: there is never a moment with two owners.
    const updates = await eventsOf(s, m!.token, sm);
    expect(updates.map((e) => [e.type, e.data.member.user.id, e.data.member.role])).toEqual([
      ["conversation.member_update", o!.user.id, "admin"],
      ["conversation.member_update", m!.user.id, "owner"],
    ]);
    expect(updates[1]!.data).toEqual({ conversation_id: g.id, member: res.body });
    const roles = await rolesOf(s, o!.token, g.id);
    expect(roles[o!.user.id]).toBe("admin");
    expect(roles[m!.user.id]).toBe("owner");
  });

  test("delete: group owner only; every member gets conversation.delete", async () => {
    const [o, m] = await users(2);
    const { body: g } = await group(o!, [m!]);
    expect((await s.api("DELETE", `/api/conversations/${g.id}`, { token: m!.token })).status).toBe(403);
    const sm = await lastSeq(s, m!.token);
    expect((await s.api("DELETE", `/api/conversations/${g.id}`, { token: o!.token })).status).toBe(204);
    expect((await eventsOf(s, m!.token, sm)).map((e) => e.type)).toEqual(["conversation.delete"]);
  });
});

describe("listing", () => {
  test("most recent activity first, paged by cursor; only the caller's conversations", async () => {
    const [me, a, b, c] = await users(4);
    const ids: string[] = [];
    for (const other of [a!, b!, c!]) ids.push((await direct(me!, other)).body.id);
    ids.push((await group(me!, [a!], "G")).body.id);
    const page1 = await s.api("GET", "/api/conversations?limit=3", { token: me!.token });
    expect(page1.body.items.map((x: any) => x.id)).toEqual(ids.slice().reverse().slice(0, 3));
    const page2 = await s.api("GET", `/api/conversations?limit=3&cursor=${page1.body.next_cursor}`, { token: me!.token });
    expect(page2.body.items.map((x: any) => x.id)).toEqual([ids[0]]);
    expect(page2.body.next_cursor).toBeNull();
    expect((await s.api("GET", "/api/conversations", { token: b!.token })).body.items.map((x: any) => x.id)).toEqual([ids[1]]);
    expect((await s.api("GET", "/api/conversations?limit=x", { token: me!.token })).status).toBe(400);
  });
  test("a user in more conversations than are sorted in memory gets the same order, page after page", async () => {
    const [me, other, third] = await users(3);
    const ids: string[] = [];
    const withOther = [1, 50, 90];
    for (let i = 0; i < SORT_IN_JS + 2; i++) ids.push((await group(me!, withOther.includes(i) ? [other!] : [], `G${i}`)).body.id);
    // Activity moves a few of them to the front.
    for (const i of [5, 0, 77, 1]) await s.api("POST", `/api/conversations/${ids[i]}/messages`, { token: me!.token, body: { content: "bump" } });
    const expected = [ids[1]!, ids[77]!, ids[0]!, ids[5]!, ...ids.filter((_, i) => ![5, 0, 77, 1].includes(i)).reverse()];
    const pages = async (token: string, limit: number) => {
      const seen: string[] = [];
      let cursor = "";
      do {
        const res = await s.api("GET", `/api/conversations?limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`, { token });
        seen.push(...res.body.items.map((x: any) => x.id));
        cursor = res.body.next_cursor ?? "";
      } while (cursor);
      return seen;
    };
    expect(await pages(me!.token, 100)).toEqual(expected); // first page sorted by SQLite, the rest here
    expect(await pages(me!.token, 7)).toEqual(expected);
    // A user in few conversations (sorted here): activity order, not creation order.
    expect(await pages(other!.token, 2)).toEqual([ids[1]!, ids[90]!, ids[50]!]);
    expect(await pages(third!.token, 7)).toEqual([]);
    // A new socket's conversation.list is the first page of the same order, whether its rows
    // were the membership read's (few conversations) or read on their own (more than
    // SORT_IN_JS); either way the socket follows every conversation, listed or not.
    for (const [who, want] of [[me!, expected], [other!, [ids[1]!, ids[90]!, ids[50]!]]] as const) {
      const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${who.token}`);
      try {
        const list = await ws.waitFor((f) => f.type === "conversation.list");
        expect(list.data.items.map((x: any) => x.id)).toEqual(want.slice(0, 50));
        expect(list.data.next_cursor === null).toBe(want.length <= 50);
        const oldest = want[want.length - 1]!;
        await s.api("POST", `/api/conversations/${oldest}/messages`, { token: me!.token, body: { content: `to ${who.user.username}` } });
        expect((await ws.waitFor((f) => f.type === "message.receive" && f.data.content === `to ${who.user.username}`)).data.conversation_id).toBe(oldest);
      } finally {
        ws.close();
      }
    }
  });
});

describe("user.update", () => {
  test("goes to friends, conversation partners and the user's own topic, nobody else", async () => {
    const [me, friend, partner, stranger] = await users(4);
    const { body: f } = await s.api("POST", "/api/friendships", { token: me!.token, body: { friend_id: friend!.user.id } });
    await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: friend!.token });
    await group(partner!, [me!]);
    const seqs = await Promise.all([me!, friend!, partner!, stranger!].map((u) => lastSeq(s, u.token)));
    await s.api("PATCH", "/api/users/me", { token: me!.token, body: { display_name: "New Name" } });
    const got = await Promise.all([me!, friend!, partner!, stranger!].map(async (u, i) => (await eventsOf(s, u.token, seqs[i])).filter((e) => e.type === "user.update")));
    expect(got.map((g) => g.length)).toEqual([1, 1, 1, 0]);
    expect(got[1]![0]!.data).toMatchObject({ id: me!.user.id, display_name: "New Name" });
    // A patch that changes nothing tells nobody.
    const after = await lastSeq(s, friend!.token);
    await s.api("PATCH", "/api/users/me", { token: me!.token, body: { display_name: "New Name" } });
    await s.api("PATCH", "/api/users/me", { token: me!.token, body: {} });
    expect(await eventsOf(s, friend!.token, after)).toEqual([]);
  });

  test("a member of groups writes one event per group, not one per co-member; each co-member hears it", async () => {
    const [me, friend, peer, ...others] = await users(11);
    const { body: f } = await s.api("POST", "/api/friendships", { token: me!.token, body: { friend_id: friend!.user.id } });
    await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: friend!.token });
    await direct(me!, peer!);
    await group(me!, others.slice(0, 4));
    await group(others[4]!, [me!, ...others.slice(5, 8)]);
    const audience = [me!, friend!, peer!, ...others];
    const seqs = await Promise.all(audience.map((u) => lastSeq(s, u.token)));
    const stored = async () => (await s.rows<{ n: number }>("SELECT count(*) AS n FROM events WHERE type = 'user.update'"))[0]!.n;
    const before = await stored();
    await s.api("PATCH", "/api/users/me", { token: me!.token, body: { display_name: "Groupie" } });
    expect((await stored()) - before).toBe(4); // the friend, the direct peer, two groups (the user's own devices are in both)
    const heard = await Promise.all(audience.map(async (u, i) => (await eventsOf(s, u.token, seqs[i])).filter((e) => e.type === "user.update").length));
    expect(heard).toEqual(audience.map((u) => (u === me ? 2 : 1)));
  });
});
