/**
 * PROTOCOL §7.1, nothing grows with group size: bounded frames and lists in groups of
 * 1,000, the paged members route, and membership deltas (live and replayed) that bring a
 * client's state to what REST says.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lastSeq, membersOf, startServer, TEST_BACKEND, withSqliteBefore, type Account, type TestServer } from "./helpers";
import { TestSocket, type Frame } from "./ws-client";
import { apply, loadState, snapshot } from "./client-state";
import { migrate } from "../src/db/migrate";
import type { StoredEvent } from "../src/events/log";
import { eventFrame } from "../src/realtime/protocol";

const KiB = 1024;
const FRAME_BOUND = 16 * KiB;

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ maxGroupMembers: 2000, writesPerMinute: 100_000, sendsPerMinute: 100_000, wsFramesPerMinute: 100_000 });
});
afterAll(() => s.stop());

const sockets: TestSocket[] = [];
afterAll(() => sockets.forEach((w) => w.close()));
const connect = async (who: Account, query = "") => {
  const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${who.token}${query}`);
  sockets.push(ws);
  return ws;
};

let bulk = 0;
/**
 * Users written straight into the database: they never log in, and registering a thousand
 * (an Argon2 hash each) would take seconds. One in ten is as large as a user gets: a
 * 64-character display name of 4-byte characters and a 2,048-character avatar URL.
 */
async function insertUsers(n: number): Promise<string[]> {
  const now = Date.now();
  const batch = bulk++;
  const rows = Array.from({ length: n }, (_, i) => {
    const heavy = i % 10 === 0;
    return {
      id: Bun.randomUUIDv7(),
      username: `bulk${batch}_${i}_${now.toString(36)}`,
      displayName: heavy ? "🎉".repeat(64) : `Bulk ${batch}/${i}`,
      profileImageUrl: heavy ? `https://img.example/${"a".repeat(2048 - 20)}` : null,
      passwordHash: "!",
      lastActiveAt: now,
      createdAt: now,
      updatedAt: now,
    };
  });
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    await s.rows(
      `INSERT INTO users (id, username, display_name, profile_image_url, password_hash, last_active_at, created_at, updated_at) VALUES ${chunk.map(() => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
      ...chunk.flatMap((r) => [r.id, r.username, r.displayName, r.profileImageUrl, r.passwordHash, r.lastActiveAt, r.createdAt, r.updatedAt]),
    );
  }
  return rows.map((r) => r.id);
}

const register = (n: number) => Promise.all(Array.from({ length: n }, () => s.register()));
const createGroup = async (owner: Account, memberIds: string[], title = "Big") => {
  const res = await s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title, member_ids: memberIds } });
  expect(res.status).toBe(201);
  return res.body.id as string;
};
const bytes = (text: string) => Buffer.byteLength(text);

/**
 * The persisted events one request causes, each with its frame's size and how many
 * members receive it (a conv: topic reaches every member, a user: topic one user).
 */
async function framesOf(request: () => Promise<{ status: number; body: unknown }>, members: () => Promise<number>) {
  const events: StoredEvent[] = [];
  const stop = s.app.ctx.feed.onCommit((batch) => events.push(...batch));
  let res;
  try {
    res = await request();
  } finally {
    stop();
  }
  expect(res.status).toBeLessThan(300);
  const count = await members();
  const frames = events.map((e) => ({ type: e.type, size: bytes(eventFrame(e.type, e.json, e.timestamp, e.seq)), recipients: e.topic.startsWith("conv:") ? count : 1 }));
  return { frames, response: bytes(JSON.stringify(res.body ?? "")), total: frames.reduce((sum, f) => sum + f.size * f.recipients, 0) };
}

describe("a group of 1,000", () => {
  test("every frame one rename, add, remove, role change or hand-over causes is at most 16 KiB; a rename sends at most 1,000 × 16 KiB", async () => {
    const [owner, watcher, leaver, joiner] = await register(4);
    const conv = await createGroup(owner!, [watcher!.user.id, leaver!.user.id, ...(await insertUsers(997))]);
    const count = async () => (await s.rows<{ n: number }>("SELECT count(*) AS n FROM conversation_members WHERE conversation_id = ?", conv))[0]!.n;
    expect(await count()).toBe(1000);
    const [wo, ww, wl, wj] = [await connect(owner!), await connect(watcher!), await connect(leaver!), await connect(joiner!)];
    const api = (method: string, path: string, token: string, body?: unknown) => () => s.api(method, `/api/conversations/${conv}${path}`, { token, body });

    const rename = await framesOf(api("PATCH", "", owner!.token, { title: "Renamed" }), count);
    expect(rename.frames.map((f) => f.type)).toEqual(["conversation.update"]);
    expect(rename.total).toBeLessThanOrEqual(1000 * FRAME_BOUND);
    expect(rename.total).toBeLessThanOrEqual(1000 * 512); // in fact a few hundred bytes a member

    const added = await insertUsers(199);
    const add = await framesOf(api("POST", "/members", owner!.token, { user_ids: [joiner!.user.id, ...added] }), count);
    const adds = add.frames.filter((f) => f.type === "conversation.member_add");
    expect(adds.length).toBeGreaterThanOrEqual(3); // 200 members, some of them large: split by count and by size
    expect(add.frames.filter((f) => f.type === "conversation.create")).toHaveLength(200); // one to each added user's own topic

    const remove = await framesOf(api("DELETE", `/members/${leaver!.user.id}`, owner!.token), count);
    expect(remove.frames.map((f) => f.type)).toEqual(["conversation.delete", "conversation.member_remove"]);
    const role = await framesOf(api("PATCH", `/members/${watcher!.user.id}`, owner!.token, { role: "admin" }), count);
    expect(role.frames.map((f) => f.type)).toEqual(["conversation.member_update"]);
    const handOver = await framesOf(api("PATCH", `/members/${added[0]}`, owner!.token, { role: "owner" }), count);
    expect(handOver.frames.map((f) => f.type)).toEqual(["conversation.member_update", "conversation.member_update"]);
    const ownerLeaves = await framesOf(api("DELETE", `/members/${owner!.user.id}`, owner!.token), count);
    expect(ownerLeaves.frames.map((f) => f.type)).toEqual(["conversation.delete", "conversation.member_remove"]);

    for (const change of [rename, add, remove, role, handOver, ownerLeaves]) {
      for (const f of change.frames) expect(f.size).toBeLessThanOrEqual(FRAME_BOUND);
      expect(change.response).toBeLessThanOrEqual(FRAME_BOUND);
    }
    // What the sockets received (every frame: the events above, replies, the list) is bounded too.
    await ww.waitFor((f) => f.type === "conversation.member_remove" && f.data.user_ids[0] === owner!.user.id);
    await wj.waitFor((f) => f.type === "conversation.create");
    for (const w of [wo, ww, wl, wj]) for (const f of w.frames) expect(bytes(JSON.stringify(f))).toBeLessThanOrEqual(FRAME_BOUND);
    expect(ww.all("conversation.member_add").reduce((n, f) => n + f.data.members.length, 0)).toBe(200);
  }, 30_000);

  test("conversation.list of a user in 20 such groups is at most 64 KiB, over WebSocket and REST", async () => {
    const [me] = await register(1);
    const others = await insertUsers(999);
    for (let i = 0; i < 20; i++) {
      const conv = await createGroup(me!, others, `Group ${i}`);
      await s.api("POST", `/api/conversations/${conv}/messages`, { token: me!.token, body: { content: `hello group ${i}` } });
    }
    const rest = await s.api("GET", "/api/conversations", { token: me!.token });
    expect(rest.body.items).toHaveLength(20);
    expect(rest.body.items.every((c: any) => c.member_count === 1000 && c.my_role === "owner")).toBe(true);
    const ws = await connect(me!);
    const list = ws.frames.find((f) => f.type === "conversation.list")!;
    expect(list.data.items).toHaveLength(20);
    expect(bytes(JSON.stringify(list))).toBeLessThanOrEqual(64 * KiB);
    expect(bytes(JSON.stringify(rest.body))).toBeLessThanOrEqual(64 * KiB);
  }, 30_000);
});

describe("GET /api/conversations/:id/members", () => {
  test("pages the members in join order (not id order); members only; cursors are checked", async () => {
    const early = (await register(1))[0]!; // registered first: the smallest id, yet it joins last
    const [owner, a, b, outsider] = await register(4);
    const conv = await createGroup(owner!, [a!.user.id, b!.user.id]);
    const other = await createGroup(owner!, []);
    const bulkIds = await insertUsers(3);
    await s.api("POST", `/api/conversations/${conv}/members`, { token: owner!.token, body: { user_ids: bulkIds } });
    await s.api("POST", `/api/conversations/${conv}/members`, { token: owner!.token, body: { user_ids: [early.user.id] } });
    const firstThree = [owner!, a!, b!].map((x) => x.user.id).sort(); // joined together: by id
    const expected = [...firstThree, ...[...bulkIds].sort(), early.user.id];

    const all = await membersOf(s, a!.token, conv, 2);
    expect(all.map((m) => m.user.id)).toEqual(expected);
    expect(all.find((m) => m.user.id === owner!.user.id)).toEqual({
      user: expect.objectContaining({ id: owner!.user.id, username: owner!.user.username }), role: "owner", joined_at: expect.any(String), last_read_message_id: null,
    });
    const first = await s.api("GET", `/api/conversations/${conv}/members?limit=4`, { token: owner!.token });
    expect(first.body.items).toHaveLength(4);
    expect(typeof first.body.next_cursor).toBe("string");
    const everyone = await s.api("GET", `/api/conversations/${conv}/members`, { token: owner!.token });
    expect(everyone.body.items).toHaveLength(7);
    expect(everyone.body.next_cursor).toBeNull();

    // A member who left does not break a cursor that points at them.
    const fourth = first.body.items[3].user.id;
    await s.api("DELETE", `/api/conversations/${conv}/members/${fourth}`, { token: owner!.token });
    const rest = await s.api("GET", `/api/conversations/${conv}/members?limit=4&cursor=${first.body.next_cursor}`, { token: owner!.token });
    expect(rest.body.items.map((m: any) => m.user.id)).toEqual(expected.slice(4));

    expect((await s.api("GET", `/api/conversations/${conv}/members`, { token: outsider!.token })).status).toBe(404);
    expect((await s.api("GET", `/api/conversations/nope/members`, { token: owner!.token })).status).toBe(404);
    expect((await s.api("GET", `/api/conversations/${conv}/members`)).status).toBe(401);
    expect((await s.api("GET", `/api/conversations/${conv}/members?limit=0`, { token: owner!.token })).status).toBe(422);
    expect((await s.api("GET", `/api/conversations/${conv}/members?limit=101`, { token: owner!.token })).status).toBe(422);
    expect((await s.api("GET", `/api/conversations/${conv}/members?limit=x`, { token: owner!.token })).status).toBe(400);
    expect((await s.api("GET", `/api/conversations/${conv}/members?cursor=junk`, { token: owner!.token })).status).toBe(400);
    // Another list's cursor, or another conversation's, is refused.
    const listCursor = (await s.api("GET", "/api/conversations?limit=1", { token: owner!.token })).body.next_cursor;
    expect((await s.api("GET", `/api/conversations/${conv}/members?cursor=${listCursor}`, { token: owner!.token })).status).toBe(400);
    const foreign = await s.api("GET", `/api/conversations/${other}/members?cursor=${first.body.next_cursor}`, { token: owner!.token });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.code).toBe("bad_request");
  });
});

describe("membership deltas", () => {
  test("applied live, or replayed on resume, to a client's earlier state they give what REST gives", async () => {
    const [owner, live, away, reader] = await register(4);
    const conv = await createGroup(owner!, [live!.user.id, away!.user.id, reader!.user.id, ...(await insertUsers(296))]);
    const stateOf = (who: Account) => loadState(s, who.token, who.user.id, [conv]);
    const wl = await connect(live!);
    const liveState = await stateOf(live!);
    const awayState = await stateOf(away!);
    const since = await lastSeq(s, away!.token);
    expect(liveState.conversations.get(conv)!.member_count).toBe(300);

    const o = owner!.token;
    const added = await insertUsers(250);
    await s.api("POST", `/api/conversations/${conv}/members`, { token: o, body: { user_ids: added } });
    for (const id of [added[5]!, live!.user.id, added[7]!]) await s.api("PATCH", `/api/conversations/${conv}/members/${id}`, { token: o, body: { role: "admin" } });
    for (const id of [added[1]!, added[2]!, liveState.members.get(conv)![10]!.user.id]) await s.api("DELETE", `/api/conversations/${conv}/members/${id}`, { token: o });
    const { body: msg } = await s.api("POST", `/api/conversations/${conv}/messages`, { token: o, body: { content: "read me" } });
    await s.api("POST", `/api/conversations/${conv}/read`, { token: reader!.token, body: { message_id: msg.id } });
    // The owner leaves: the longest-standing admin (live, there from the start) inherits,
    // then hands ownership on and is an admin again.
    await s.api("DELETE", `/api/conversations/${conv}/members/${owner!.user.id}`, { token: o });
    await s.api("PATCH", `/api/conversations/${conv}/members/${added[7]}`, { token: live!.token, body: { role: "owner" } });
    await s.api("PATCH", `/api/conversations/${conv}`, { token: live!.token, body: { title: "Renamed" } });
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: reader!.token, body: { content: "done" } });
    await wl.waitFor((f) => f.type === "message.receive" && f.data.content === "done");

    const deltaTypes = new Set(["conversation.member_add", "conversation.member_remove", "conversation.member_update", "conversation.update"]);
    const liveFrames = wl.frames.filter((f) => f.seq !== undefined && f.seq > since);
    expect(new Set(liveFrames.map((f) => f.type).filter((t) => deltaTypes.has(t)))).toEqual(deltaTypes);
    for (const f of liveFrames) apply(liveState, f);
    const restNow = await stateOf(live!);
    expect(snapshot(liveState)).toEqual(snapshot(restNow));
    expect(restNow.members.get(conv)).toHaveLength(546);
    expect(restNow.conversations.get(conv)).toMatchObject({ member_count: 546, my_role: "admin", title: "Renamed" });

    // The member who was away gets the same deltas replayed, in seq order, before anything live.
    const back = await connect(away!, `&since=${since}`);
    const replayed = back.frames.slice(1, back.frames.findIndex((f) => f.type === "sync.complete"));
    const ofConv = (frames: Frame[]) => frames.filter((f) => deltaTypes.has(f.type)).map((f) => [f.seq, f.type, f.data]);
    expect(ofConv(replayed)).toEqual(ofConv(liveFrames));
    for (const f of replayed) apply(awayState, f);
    expect(snapshot(awayState)).toEqual(snapshot(await stateOf(away!)));
  }, 30_000);

  test("added members get conversation.create, not the add; removed members get conversation.delete, not the removal", async () => {
    const [owner, member, joiner] = await register(3);
    const conv = await createGroup(owner!, [member!.user.id]);
    const [wm, wj] = [await connect(member!), await connect(joiner!)];
    await s.api("POST", `/api/conversations/${conv}/members`, { token: owner!.token, body: { user_ids: [joiner!.user.id] } });
    const create = await wj.waitFor((f) => f.type === "conversation.create");
    expect(create.data).toMatchObject({ id: conv, member_count: 3, my_role: "member", my_last_read_message_id: null, peer: null });
    const add = await wm.waitFor((f) => f.type === "conversation.member_add");
    expect(add.seq!).toBeLessThan(create.seq!);
    await s.api("DELETE", `/api/conversations/${conv}/members/${joiner!.user.id}`, { token: owner!.token });
    await wj.waitFor((f) => f.type === "conversation.delete");
    expect((await wm.waitFor((f) => f.type === "conversation.member_remove")).data).toEqual({ conversation_id: conv, user_ids: [joiner!.user.id], member_count: 2 });
    expect(wj.all("conversation.member_add").length + wj.all("conversation.member_remove").length).toBe(0);
  });
});

// SQLite's migration 0009 and its triggers, on a database file of its own (PostgreSQL's
// triggers came with its first migrations).
describe.skipIf(TEST_BACKEND === "postgres")("member_count", () => {
  test("migration 0009 counts the members of existing conversations; triggers keep the count, cascades included", () => {
    withSqliteBefore("ADD `member_count`", (db, pending) => {
      const sql = db.$client;
      for (const id of ["u1", "u2", "u3"]) sql.run("INSERT INTO users VALUES (?, ?, ?, NULL, '!', 0, 0, 0)", [id, id, id]);
      for (const [id, n] of [["big", 3], ["small", 1], ["empty", 0]] as const) {
        sql.run("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES (?, 'group', 't', 'u1', 0, 0, 0)", [id]);
        for (let i = 1; i <= n; i++) sql.run("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES (?, ?, 'member', 0)", [id, `u${i}`]);
      }
      expect(migrate(db)).toBe(pending); // 0009 and any later one
      const counts = () => Object.fromEntries(sql.query("SELECT id, member_count FROM conversations").values() as [string, number][]);
      expect(counts()).toEqual({ big: 3, small: 1, empty: 0 });
      sql.run("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES ('empty', 'u2', 'member', 0)");
      sql.run("DELETE FROM conversation_members WHERE conversation_id = 'big' AND user_id = 'u3'");
      sql.run("DELETE FROM users WHERE id = 'u1'"); // its memberships go by cascade
      expect(counts()).toEqual({ big: 1, small: 0, empty: 1 });
    });
  });
});
