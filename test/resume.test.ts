/**
 * Nothing lost, nothing repeated: resume with `since`, tickets, and the seam between
 * replay and live delivery.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventsOf, startServer, type Account, type TestServer } from "./helpers";
import { TestSocket, type Frame } from "./ws-client";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ presenceGraceMs: 0, wsFramesPerMinute: 100_000, sendsPerMinute: 10_000_000, ticketTtlMs: 300 });
});
afterAll(() => s.stop());

const users = async (n: number) => Promise.all(Array.from({ length: n }, () => s.register()));
const group = async (owner: Account, others: Account[]) =>
  (await s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title: "G", member_ids: others.map((o) => o.user.id) } })).body.id as string;
/** The position a client holds after a socket: connect's last_seq, the replay's end, the last seq seen. */
const positionAfter = (frames: Frame[], since: number) =>
  Math.max(
    since,
    ...frames.filter((f) => f.seq !== undefined).map((f) => f.seq!),
    ...frames.filter((f) => f.type === "sync.complete" || f.type === "connect").map((f) => f.data.last_seq),
  );

describe("resume with since", () => {
  test("replays missed events in seq order before anything live, then sync.complete, then the conversation list", async () => {
    const [a, b] = await users(2);
    const conv = await group(a!, [b!]);
    const first = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}`);
    const since = positionAfter(first.frames, 0);
    first.close();
    await first.waitClosed();
    for (let i = 0; i < 5; i++) await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: `missed ${i}` } });
    const back = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}&since=${since}`);
    const types = back.frames.map((f) => f.type);
    expect(types).toEqual(["connect", "message.receive", "message.receive", "message.receive", "message.receive", "message.receive", "sync.complete", "conversation.list"]);
    expect(back.frames.slice(1, 6).map((f) => f.data.content)).toEqual([0, 1, 2, 3, 4].map((i) => `missed ${i}`));
    const seqs = back.frames.slice(1, 6).map((f) => f.seq!);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(back.frames[6]!.data.last_seq).toBeGreaterThanOrEqual(seqs[4]!);
    back.close();
  });

  test("the replay leaves out conversations left while away and includes friend events", async () => {
    const [a, b, c] = await users(3);
    const kept = await group(a!, [b!]);
    const leftBehind = await group(a!, [b!]);
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}`);
    const since = positionAfter(ws.frames, 0);
    ws.close();
    await ws.waitClosed();
    await s.api("DELETE", `/api/conversations/${leftBehind}/members/${b!.user.id}`, { token: a!.token });
    await s.api("POST", `/api/conversations/${leftBehind}/messages`, { token: a!.token, body: { content: "not for b" } });
    await s.api("POST", `/api/friendships`, { token: c!.token, body: { friend_id: b!.user.id } });
    await s.api("POST", `/api/conversations/${kept}/messages`, { token: a!.token, body: { content: "for b" } });
    const back = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}&since=${since}`);
    const replayed = back.frames.slice(1, back.frames.findIndex((f) => f.type === "sync.complete"));
    expect(replayed.map((f) => f.type)).toEqual(["conversation.delete", "friend.request", "message.receive"]);
    expect(replayed[2]!.data.content).toBe("for b");
    back.close();
  });

  test("a member added while online replays exactly what it got live: nothing from before it joined", async () => {
    const [a, b] = await users(2);
    const live = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}`);
    const since = positionAfter(live.frames, 0);
    const conv = await group(a!, []);
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "before b" } });
    await s.api("POST", `/api/conversations/${conv}/members`, { token: a!.token, body: { user_ids: [b!.user.id] } });
    await live.waitFor((f) => f.type === "conversation.create");
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "after b" } });
    await live.waitFor((f) => f.type === "message.receive");
    const got = (frames: Frame[]) => frames.filter((f) => f.seq !== undefined).map((f) => `${f.seq}:${f.type}:${f.data.content ?? ""}`);
    expect(got(live.frames).map((x) => x.replace(/^\d+:/, ""))).toEqual(["conversation.create:", "message.receive:after b"]);
    live.close();
    await live.waitClosed();
    const back = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}&since=${since}`);
    expect(got(back.frames)).toEqual(got(live.frames));
    const rest = await s.api("GET", `/api/events?since=${since}`, { token: b!.token });
    expect(rest.body.items.map((e: { seq: number; type: string; data: { content?: string } }) => `${e.seq}:${e.type}:${e.data.content ?? ""}`)).toEqual(got(live.frames));
    // Leave and be added again: the replay holds both stints, and nothing from between them.
    const mark = positionAfter(back.frames, since);
    const seen = back.frames.length;
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "before leaving" } });
    await back.waitFor((f) => f.data?.content === "before leaving", 3000, seen);
    await s.api("DELETE", `/api/conversations/${conv}/members/${b!.user.id}`, { token: b!.token });
    await back.waitFor((f) => f.type === "conversation.delete", 3000, seen);
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "while away" } });
    await s.api("POST", `/api/conversations/${conv}/members`, { token: a!.token, body: { user_ids: [b!.user.id] } });
    await back.waitFor((f) => f.type === "conversation.create", 3000, seen);
    await s.api("POST", `/api/conversations/${conv}/messages`, { token: a!.token, body: { content: "back again" } });
    await back.waitFor((f) => f.data?.content === "back again", 3000, seen);
    const liveAgain = got(back.frames.slice(seen));
    expect(liveAgain.map((x) => x.replace(/^\d+:/, ""))).toEqual(["message.receive:before leaving", "conversation.delete:", "conversation.create:", "message.receive:back again"]);
    const replayed = (await s.api("GET", `/api/events?since=${mark}`, { token: b!.token })).body.items;
    expect(replayed.map((e: { seq: number; type: string; data: { content?: string } }) => `${e.seq}:${e.type}:${e.data.content ?? ""}`)).toEqual(liveAgain);
    const resumed = await TestSocket.connect(`${s.wsBase}/ws/user?token=${b!.token}&since=${mark}`);
    expect(got(resumed.frames)).toEqual(liveAgain);
    resumed.close();
    back.close();
  });

  test("a since older than the retained log, or not a number, gets sync.reset and live delivery continues", async () => {
    const own = await startServer({ presenceGraceMs: 0 });
    try {
      const [a, b] = [await own.register(), await own.register()];
      const { body: g } = await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t", member_ids: [b.user.id] } });
      const { feed } = own.app.ctx;
      await feed.prune(0, Date.now() + 1);
      for (const since of ["0", "abc", "-5", String((await feed.lastSeq()) + 1000)]) {
        const ws = await TestSocket.connect(`${own.wsBase}/ws/user?token=${b.token}&since=${since}`);
        expect(ws.frames.map((f) => f.type)).toEqual(["connect", "sync.reset", "conversation.list"]);
        expect(ws.frames[1]!.data.last_seq).toBe(await feed.lastSeq());
        await own.api("POST", `/api/conversations/${g.id}/messages`, { token: a.token, body: { content: `live ${since}` } });
        await ws.waitFor((f) => f.type === "message.receive" && f.data.content === `live ${since}`);
        ws.close();
      }
    } finally {
      await own.stop();
    }
  });

  test("the seam: sockets reconnecting with since while another client keeps publishing lose and repeat nothing", async () => {
    const [publisher, ...receivers] = await users(5);
    const conv = await group(publisher!, receivers);
    let publishing = true;
    let sent = 0;
    const pub = (async () => {
      while (publishing) {
        await s.api("POST", `/api/conversations/${conv}/messages`, { token: publisher!.token, body: { content: `m${sent++}` } });
      }
    })();
    const ROUNDS = 120;
    const received = await Promise.all(
      receivers.map(async (r) => {
        const seqs: number[] = [];
        let since = 0;
        let start = -1;
        for (let round = 0; round < ROUNDS; round++) {
          const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${r.token}${since ? `&since=${since}` : ""}`);
          await Bun.sleep(Math.random() * 8);
          ws.close();
          await ws.waitClosed();
          const persisted = ws.frames.filter((f) => f.seq !== undefined);
          // Each socket on its own: strictly increasing, starting after `since`.
          persisted.forEach((f, i) => expect(f.seq!).toBeGreaterThan(i ? persisted[i - 1]!.seq! : since));
          seqs.push(...persisted.map((f) => f.seq!));
          if (start < 0) start = ws.frames[0]!.data.last_seq;
          since = positionAfter(ws.frames, since);
        }
        return { r, seqs, since, start };
      }),
    );
    publishing = false;
    await pub;
    expect(sent).toBeGreaterThan(50);
    for (const { r, seqs, since, start } of received) {
      // Collect the tail after the last round, then compare with the log.
      const tail = await TestSocket.connect(`${s.wsBase}/ws/user?token=${r.token}&since=${since}`);
      seqs.push(...tail.frames.filter((f) => f.seq !== undefined).map((f) => f.seq!));
      tail.close();
      const expected = (await eventsOf(s, r.token, start)).map((e) => e.seq);
      expect(expected.length).toBeGreaterThan(50);
      expect(seqs).toEqual(expected);
    }
  }, 60_000);
});

describe("tickets", () => {
  test("a ticket opens one socket, once; reuse, expiry and garbage are 401", async () => {
    const [a] = await users(1);
    const issue = async () => (await s.api("POST", "/api/ws/ticket", { token: a!.token })).body;
    const t = await issue();
    expect(t).toEqual({ ticket: expect.any(String), expires_at: expect.any(String) });
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?ticket=${t.ticket}`);
    expect(ws.frames[0]!.data.user_id).toBe(a!.user.id);
    ws.close();
    const upgrade = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" };
    expect((await fetch(`${s.base}/ws/user?ticket=${t.ticket}`, { headers: upgrade })).status).toBe(401);
    const stale = await issue();
    await Bun.sleep(350);
    expect((await fetch(`${s.base}/ws/user?ticket=${stale.ticket}`, { headers: upgrade })).status).toBe(401);
    expect((await fetch(`${s.base}/ws/user?ticket=nonsense`, { headers: upgrade })).status).toBe(401);
    expect((await s.api("POST", "/api/ws/ticket")).status).toBe(401);
  });

  test("tickets and tokens never reach the logs", async () => {
    const [a] = await users(1);
    const { body: t } = await s.api("POST", "/api/ws/ticket", { token: a!.token });
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?ticket=${t.ticket}`);
    ws.close();
    const ws2 = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a!.token}`);
    ws2.close();
    await ws2.waitClosed();
    const logs = JSON.stringify(s.logs);
    expect(logs).not.toContain(t.ticket);
    expect(logs).not.toContain(a!.token);
  });
});
