import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventsOf, lastSeq, startServer, type Account, type TestServer } from "./helpers";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.stop());

const pair = async () => [await s.register(), await s.register()] as const;
const request = (from: Account, to: Account) => s.api("POST", "/api/friendships", { token: from.token, body: { friend_id: to.user.id } });

describe("friend requests", () => {
  test("request → pending Friendship with both users; the addressee gets friend.request", async () => {
    const [a, b] = await pair();
    const since = await lastSeq(s, b.token);
    const res = await request(a, b);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ user_id: a.user.id, friend_id: b.user.id, status: "pending", accepted_at: null, user: { id: a.user.id }, friend: { id: b.user.id } });
    const evs = await eventsOf(s, b.token, since);
    expect(evs).toHaveLength(1);
    expect(evs[0]!.type).toBe("friend.request");
    expect(evs[0]!.data).toEqual({
      request_id: res.body.id, user_id: a.user.id, friend_id: b.user.id, status: "pending", requested_at: res.body.requested_at,
      sender: expect.objectContaining({ id: a.user.id, username: a.user.username }),
    });
    // The requester's own log has nothing new.
    expect((await eventsOf(s, a.token)).filter((e) => e.type.startsWith("friend."))).toHaveLength(0);
  });

  test("to yourself 422, to a missing user 404, twice 409, once friends 409", async () => {
    const [a, b] = await pair();
    expect((await request(a, a)).status).toBe(422);
    expect((await s.api("POST", "/api/friendships", { token: a.token, body: { friend_id: "missing" } })).status).toBe(404);
    expect((await s.api("POST", "/api/friendships", { token: a.token, body: {} })).status).toBe(422);
    const first = await request(a, b);
    expect((await request(a, b)).status).toBe(409);
    await s.api("PATCH", `/api/friendships/${first.body.id}/accept`, { token: b.token });
    expect((await request(a, b)).status).toBe(409);
    expect((await request(b, a)).status).toBe(409);
  });

  test("accept: only the addressee; the requester gets friend.accept", async () => {
    const [a, b] = await pair();
    const { body: f } = await request(a, b);
    const third = await s.register();
    expect((await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: a.token })).status).toBe(403);
    expect((await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: third.token })).status).toBe(404);
    const since = await lastSeq(s, a.token);
    const res = await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: b.token });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("accepted");
    expect(res.body.accepted_at).toBeString();
    const evs = await eventsOf(s, a.token, since);
    expect(evs.map((e) => e.type)).toEqual(["friend.accept"]);
    expect(evs[0]!.data).toEqual({ friendship_id: f.id, user_id: a.user.id, friend_id: b.user.id, status: "accepted", accepted_at: res.body.accepted_at, acceptor: expect.objectContaining({ id: b.user.id }) });
    expect((await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: b.token })).status).toBe(409);
  });

  test("crossing requests: the second is an accept (200), and both sides get friend.accept", async () => {
    const [a, b] = await pair();
    await request(a, b);
    const [sa, sb] = [await lastSeq(s, a.token), await lastSeq(s, b.token)];
    const res = await request(b, a);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "accepted", user_id: a.user.id, friend_id: b.user.id });
    expect((await eventsOf(s, a.token, sa)).map((e) => e.type)).toEqual(["friend.accept"]);
    expect((await eventsOf(s, b.token, sb)).map((e) => e.type)).toEqual(["friend.accept"]);
  });

  test("reject: addressee only, no event; a rejected request can be sent again", async () => {
    const [a, b] = await pair();
    const { body: f } = await request(a, b);
    expect((await s.api("PATCH", `/api/friendships/${f.id}/reject`, { token: a.token })).status).toBe(403);
    const sa = await lastSeq(s, a.token);
    const res = await s.api("PATCH", `/api/friendships/${f.id}/reject`, { token: b.token });
    expect(res.body.status).toBe("rejected");
    expect(await eventsOf(s, a.token, sa)).toHaveLength(0);
    expect((await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: b.token })).status).toBe(409);
    const again = await request(a, b);
    expect(again.status).toBe(201);
    expect(again.body.status).toBe("pending");
  });

  test("delete: either side, cancels or unfriends; the other side gets friend.remove; then it can be requested again", async () => {
    const [a, b] = await pair();
    const { body: f } = await request(a, b);
    await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: b.token });
    const stranger = await s.register();
    expect((await s.api("DELETE", `/api/friendships/${f.id}`, { token: stranger.token })).status).toBe(404);
    const sa = await lastSeq(s, a.token);
    const res = await s.api("DELETE", `/api/friendships/${f.id}`, { token: b.token });
    expect(res.status).toBe(204);
    const evs = await eventsOf(s, a.token, sa);
    expect(evs.map((e) => e.type)).toEqual(["friend.remove"]);
    expect(evs[0]!.data).toEqual({ friendship_id: f.id, user_id: a.user.id, friend_id: b.user.id });
    expect((await s.api("DELETE", `/api/friendships/${f.id}`, { token: a.token })).status).toBe(404);
    expect((await request(b, a)).status).toBe(201);
  });

  test("requester cancels a pending request: the addressee gets friend.remove", async () => {
    const [a, b] = await pair();
    const { body: f } = await request(a, b);
    const sb = await lastSeq(s, b.token);
    expect((await s.api("DELETE", `/api/friendships/${f.id}`, { token: a.token })).status).toBe(204);
    expect((await eventsOf(s, b.token, sb)).map((e) => e.type)).toEqual(["friend.remove"]);
  });
});

describe("at once", () => {
  // One writer at a time on SQLite; PostgreSQL's concurrent transactions must come to the same.
  test("crossing requests sent at the same moment: one is created (201), the other accepts it (200); never an error", async () => {
    const pairs = await Promise.all(Array.from({ length: 6 }, pair));
    const answers = await Promise.all(pairs.map(([a, b]) => Promise.all([request(a, b), request(b, a)])));
    for (const [x, y] of answers) expect([x.status, y.status].sort()).toEqual([200, 201]);
    for (const [a] of pairs) expect((await s.api("GET", "/api/friendships?status=accepted", { token: a.token })).body.items).toHaveLength(1);
  });

  test("the same request twice at once: 201 and 409", async () => {
    const pairs = await Promise.all(Array.from({ length: 6 }, pair));
    const answers = await Promise.all(pairs.map(([a, b]) => Promise.all([request(a, b), request(a, b)])));
    for (const [x, y] of answers) expect([x.status, y.status].sort()).toEqual([201, 409]);
  });

  test("accept, reject and delete of one request at once: the first wins, the others see what it did", async () => {
    const pairs = await Promise.all(Array.from({ length: 6 }, pair));
    const requests = await Promise.all(pairs.map(([a, b]) => request(a, b)));
    const answers = await Promise.all(pairs.map(([, b], i) => Promise.all([
      s.api("PATCH", `/api/friendships/${requests[i]!.body.id}/accept`, { token: b.token }),
      s.api("PATCH", `/api/friendships/${requests[i]!.body.id}/reject`, { token: b.token }),
      s.api("DELETE", `/api/friendships/${requests[i]!.body.id}`, { token: b.token }),
    ])));
    for (const [accept, reject, remove] of answers) {
      // Deleting goes in any state; an answer finds the request pending (and wins), answered (409) or gone (404).
      expect(remove.status).toBe(204);
      const won = [accept, reject].filter((r) => r.status === 200);
      expect(won.length).toBeLessThanOrEqual(1);
      for (const r of [accept, reject]) if (r.status !== 200) expect([404, 409]).toContain(r.status);
      if (won.length === 0) expect([accept.status, reject.status]).toEqual([404, 404]);
    }
  });
});

describe("listing", () => {
  test("filters by status and direction, pages newest first", async () => {
    const me = await s.register();
    const others = [await s.register(), await s.register(), await s.register()];
    await request(me, others[0]!); // outgoing pending
    const incoming = await request(others[1]!, me); // incoming pending
    const accepted = await request(others[2]!, me);
    await s.api("PATCH", `/api/friendships/${accepted.body.id}/accept`, { token: me.token });

    const list = async (q: string) => (await s.api("GET", `/api/friendships${q}`, { token: me.token })).body;
    expect((await list("")).items).toHaveLength(3);
    expect((await list("?status=accepted")).items.map((f: any) => f.id)).toEqual([accepted.body.id]);
    expect((await list("?status=pending&direction=incoming")).items.map((f: any) => f.id)).toEqual([incoming.body.id]);
    expect((await list("?status=pending&direction=outgoing")).items).toHaveLength(1);
    const page1 = await list("?limit=2");
    expect(page1.items).toHaveLength(2);
    const page2 = await list(`?limit=2&cursor=${page1.next_cursor}`);
    expect(page2.items).toHaveLength(1);
    expect(page2.next_cursor).toBeNull();
    // A cursor is for the list that made it: each of these is a string, like this list's own.
    const usersCursor = (await s.api("GET", "/api/users?limit=1", { token: me.token })).body.next_cursor;
    const friendsAsUsers = await s.api("GET", `/api/users?cursor=${page1.next_cursor}`, { token: me.token });
    expect(friendsAsUsers.status).toBe(400);
    expect(friendsAsUsers.body.error.code).toBe("bad_request");
    expect((await s.api("GET", `/api/friendships?cursor=${usersCursor}`, { token: me.token })).status).toBe(400);
    expect((await s.api("GET", `/api/conversations?cursor=${usersCursor}`, { token: me.token })).status).toBe(400);
    expect((await s.api("GET", "/api/friendships?status=maybe", { token: me.token })).status).toBe(422);
    expect((await s.api("GET", "/api/friendships?direction=sideways", { token: me.token })).status).toBe(422);
  });
});
