/**
 * Cluster mode (PROTOCOL §11) through outages, with real processes: three Parley nodes on a
 * PostgreSQL instance and a nats-server of this file's own (the machine's are shared and
 * never restarted; Redis is the machine's, under a cluster name of this run's).
 * - NATS killed with SIGKILL under load and started again on its port.
 * - PostgreSQL crashed under load (`pg_ctl stop -m immediate`: every backend killed,
 *   recovery at the restart) and started again: a real restart, not a cut connection.
 * - A writer transaction held open after appending its event, while others commit.
 * In each, every socket on every node gets every committed event exactly once, in seq order.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { Cluster } from "./cluster-harness";
import { ownNats, ownPostgres, ownServicesReady } from "./own-services";
import { REDIS_TEST_URL } from "./services";
import { waitFor } from "./helpers";
import { TestSocket, type Frame } from "./ws-client";

const ready = await ownServicesReady("cluster mode through outages", { pg: true, nats: true, redis: true });
let pg: Awaited<ReturnType<typeof ownPostgres>>;
let nats: Awaited<ReturnType<typeof ownNats>>;
let cluster: Cluster;
/** The test's own connection to the cluster's database (reads what committed; holds a transaction open). */
let db: SQL;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  if (!ready) return;
  [pg, nats] = await Promise.all([ownPostgres(), ownNats()]);
  db = new SQL({ url: pg.url, max: 2 });
  cluster = await Cluster.start(3, { DATABASE_URL: pg.url, NATS_URL: nats.url, REDIS_URL: REDIS_TEST_URL });
}, 90_000);

afterAll(async () => {
  for (const s of sockets.splice(0)) s.close();
  await cluster?.stop();
  await db?.close().catch(() => {});
  await Promise.all([pg?.dispose(), nats?.dispose()]);
});

/** The advisory lock the test's stalled send waits for. */
const STALL_LOCK = 4242;

type User = Awaited<ReturnType<Cluster["user"]>>;

/** A group of `owner` and `members`, each member with a socket on node i % 3. */
async function groupWithSockets(title: string, owner: User, members: User[]) {
  const group = await cluster.api(0, "POST", "/api/conversations", owner.token, { type: "group", title, member_ids: members.map((m) => m.id) });
  expect(group.status).toBe(201);
  const open = await Promise.all([owner, ...members].map((u, i) => cluster.ws(i % 3, u.token)));
  sockets.push(...open);
  return { id: group.body.id as string, sockets: open };
}

/** A send the node has not answered in this long is given up (and retried) as a client would, and counted as refused. */
const SEND_ANSWERED_MS = 10_000;

/**
 * Senders posting into a conversation from their nodes until stopped. A send that is refused
 * (503 while a service is down) is retried with its client_msg_id until it is acknowledged,
 * as a client does; `acked` holds every acknowledged message id, `refused` every refusal
 * (a send without an answer in SEND_ANSWERED_MS as `no answer`: one left hanging stopped the
 * test only at its timeout, without saying where, in CI once).
 */
function load(conversationId: string, senders: User[]) {
  let running = true;
  const acked: string[] = [];
  const refused: { status: number; code?: string; retryAfter: string | null }[] = [];
  const loops = senders.map(async (u, i) => {
    for (let k = 0; running; k++) {
      const body = { content: `${i}:${k}`, client_msg_id: `load-${i}-${k}` };
      for (;;) {
        let failure = "unreachable";
        const r = await cluster.api(i % 3, "POST", `/api/conversations/${conversationId}/messages`, u.token, body, AbortSignal.timeout(SEND_ANSWERED_MS)).catch((e) => {
          if (e?.name === "TimeoutError") failure = `no answer in ${SEND_ANSWERED_MS} ms from node ${i % 3}`;
          return null;
        });
        if (r && (r.status === 201 || r.status === 200)) {
          acked.push(r.body.id);
          break;
        }
        refused.push({ status: r?.status ?? 0, code: r?.body?.error?.code ?? failure, retryAfter: r?.headers.get("retry-after") ?? null });
        await Bun.sleep(100);
      }
      await Bun.sleep(10);
    }
  });
  return {
    acked,
    refused,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** `p`, or a failure naming `what` after `ms`: a step left hanging stopped the test only at its timeout, without saying which. */
function within<T>(ms: number, what: string, p: PromiseLike<T>): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done in ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * The steps a test went through, with when: printed if it is still running shortly before its
 * timeout (a timeout alone names no step; this test stopped at 90 s in CI, once in ~10 runs).
 */
function trace(timeoutMs: number) {
  const start = Date.now();
  const marks: string[] = [];
  const timer = setTimeout(() => console.error(`still running after ${Date.now() - start} ms; steps:\n  ${marks.join("\n  ")}`), timeoutMs - 3000);
  return {
    step: (what: string) => void marks.push(`${String(Date.now() - start).padStart(6)} ms ${what}`),
    done: () => clearTimeout(timer),
  };
}

/** The message.receive events of a conversation that committed, in seq order. */
async function committed(conversationId: string): Promise<{ seq: number; id: string }[]> {
  const rows = await within(10_000, "the test's read of what committed", db`SELECT e.seq, coalesce(p.data, e.data)::json->>'id' AS id FROM events e LEFT JOIN event_payloads p ON p.id = e.payload_id
    WHERE e.topic = ${`conv:${conversationId}`} AND e.type = 'message.receive' ORDER BY e.seq`);
  return rows.map((r: { seq: string; id: string }) => ({ seq: Number(r.seq), id: r.id }));
}

const received = (s: TestSocket, conversationIds: string[]) =>
  s.frames.filter((f) => f.type === "message.receive" && conversationIds.includes(f.data.conversation_id)).map((f) => ({ seq: f.seq!, id: f.data.id as string }));

/**
 * Every socket gets exactly the committed messages of the conversations, in seq order, and
 * every frame with a seq in increasing order.
 */
async function expectEveryoneGotAll(all: TestSocket[], conversationIds: string[], acked: string[]) {
  const expected = (await Promise.all(conversationIds.map(committed))).flat().sort((a, b) => a.seq - b.seq);
  // Nothing acknowledged is lost.
  const stored = new Set(expected.map((e) => e.id));
  expect(acked.filter((id) => !stored.has(id))).toEqual([]);
  expect(stored.size).toBe(expected.length);
  // Side by side, under one deadline: one after another, six sockets short of events waited
  // up to 120 s, past the test's timeout, which then hid what they were short of.
  await Promise.all(all.map((s) => waitFor(() => received(s, conversationIds).length >= expected.length, 20_000).catch(() => {})));
  for (const s of all) {
    expect(received(s, conversationIds)).toEqual(expected);
    expectIncreasing(s.frames);
  }
}

function expectIncreasing(frames: Frame[]) {
  const seqs = frames.filter((f) => f.seq !== undefined).map((f) => f.seq!);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
}

/** Waits until `ok()` resolves true (checked every 50 ms), at most `ms`. */
async function eventually(ok: () => Promise<boolean>, ms: number, what = "condition") {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: not met in ${ms} ms`);
    await Bun.sleep(50);
  }
}

const health = (i: number): Promise<{ status: number; body: any }> =>
  fetch(`${cluster.base(i)}/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json().then((body) => ({ status: r.status, body })), () => ({ status: 0, body: null }));

describe.skipIf(!ready)("three nodes through outages", () => {
  test("NATS killed under load and started again: committed events keep reaching every socket once, in order; typing and presence cross nodes again after", async () => {
    const users = await Promise.all(Array.from({ length: 6 }, (_, i) => cluster.user(i % 3)));
    const [owner, ...members] = users;
    const group = await groupWithSockets("nats", owner!, members);
    // a (node 0) types for b (node 1); w (node 2) follows a's presence.
    const [a, b, w] = group.sockets;
    await w!.request("user.status.subscribe", { user_id: owner!.id });
    const traffic = load(group.id, users);
    await waitFor(() => traffic.acked.length >= 20, 20_000);

    await nats.kill();
    for (let i = 0; i < 3; i++) await eventually(async () => (await health(i)).body?.nats === "unreachable", 10_000, "health reports NATS away");
    expect((await health(0)).status).toBe(503);
    // NATS carries no committed event: sends are acknowledged, and reach sockets on other nodes, meanwhile.
    const before = traffic.acked.length;
    await waitFor(() => traffic.acked.length >= before + 10, 20_000);
    const during = traffic.acked.slice(before, before + 10);
    for (const s of group.sockets) await waitFor(() => during.every((id) => s.frames.some((f) => f.type === "message.receive" && f.data.id === id)), 10_000);
    // Typing from node 0 meanwhile is ephemeral: lost for the other nodes (not asserted: a
    // client library may also send it late from its reconnect buffer).
    a!.send("message.typing", { conversation_id: group.id, is_typing: true });

    await nats.start();
    for (let i = 0; i < 3; i++) await eventually(async () => (await health(i)).status === 200, 10_000, "health back to 200");
    const back = traffic.acked.length;
    await waitFor(() => traffic.acked.length >= back + 20, 20_000);
    await traffic.stop();
    await expectEveryoneGotAll(group.sockets, [group.id], traffic.acked);

    // Ephemeral frames cross nodes again: typing, and presence.
    const typed = b!.frames.length;
    await eventually(async () => {
      a!.send("message.typing", { conversation_id: group.id, is_typing: false });
      a!.send("message.typing", { conversation_id: group.id, is_typing: true });
      return !(await b!.none((f) => f.type === "message.typing" && f.data.user_id === owner!.id && f.data.is_typing, 300));
    }, 10_000, "typing crosses nodes again");
    expect(b!.frames.length).toBeGreaterThan(typed);
    a!.close();
    await w!.waitFor((f) => f.type === "user.offline" && f.data.user_id === owner!.id, 10_000);
    sockets.push(await cluster.ws(1, owner!.token));
    await w!.waitFor((f) => f.type === "user.online" && f.data.user_id === owner!.id, 10_000);
  }, 90_000);

  test("PostgreSQL crashed under load and restarted: writes answer 503 unavailable with Retry-After meanwhile; nothing acknowledged is lost; every socket gets every committed event once, in order", async () => {
    const t = trace(90_000);
    const users = await Promise.all(Array.from({ length: 6 }, (_, i) => cluster.user(i % 3)));
    t.step("users");
    const [owner, ...members] = users;
    const group = await groupWithSockets("pg", owner!, members);
    t.step("group and sockets");
    const traffic = load(group.id, users);
    await waitFor(() => traffic.acked.length >= 20, 20_000);
    t.step("20 sends acknowledged");

    // A socket that is catching up when PostgreSQL goes: its membership read waits behind a
    // lock this test holds, and fails with the crash. It is closed (1011, to retry), its
    // frames as documented.
    const locked = Promise.withResolvers<void>();
    const crashed = Promise.withResolvers<void>();
    const blocking = db.begin(async (tx) => {
      await tx`LOCK TABLE conversation_members IN ACCESS EXCLUSIVE MODE`;
      locked.resolve();
      await crashed.promise;
    }).catch(() => {});
    await locked.promise;
    t.step("members locked");
    const catching = await TestSocket.open(cluster.wsUrl(1, members[0]!.token));
    await catching.waitFor((f) => f.type === "connect", 10_000);
    t.step("catching socket connected");
    await Bun.sleep(200);
    await pg.crash();
    t.step("PostgreSQL crashed");
    crashed.resolve();
    await within(10_000, "the test's transaction ending with the crash", blocking);
    const down = Date.now();
    t.step("the test's transaction ended");
    expect((await catching.waitClosed(10_000)).code).toBe(1011);
    expect(catching.frames.map((f) => f.type)).toEqual(["connect", "alert"]);
    t.step("catching socket closed 1011");
    await waitFor(() => traffic.refused.length >= 6, 10_000);
    t.step("6 sends refused");
    for (let i = 0; i < 3; i++) await eventually(async () => (await health(i)).body?.postgres === "unreachable", 10_000, "health reports PostgreSQL away");
    t.step("health says unreachable");
    // A socket opened meanwhile is refused before the upgrade, 503 too (its token's user cannot be read).
    const upgrade = await fetch(`${cluster.base(2)}/ws/user?token=${owner!.token}`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" }, signal: AbortSignal.timeout(10_000) });
    expect(upgrade.status).toBe(503);
    await Bun.sleep(Math.max(0, 1500 - (Date.now() - down)));
    t.step("upgrade refused");
    await pg.start();
    t.step("PostgreSQL started");

    const back = traffic.acked.length;
    await waitFor(() => traffic.acked.length >= back + 20, 30_000);
    t.step("20 more sends acknowledged");
    await within(2 * SEND_ANSWERED_MS, "the senders stopping", traffic.stop());
    t.step(`senders stopped (${traffic.acked.length} acknowledged, ${traffic.refused.length} refused)`);
    for (const r of traffic.refused) expect(r).toEqual({ status: 503, code: "unavailable", retryAfter: expect.any(String) });
    await expectEveryoneGotAll(group.sockets, [group.id], traffic.acked);
    t.done();
  }, 90_000);

  test("writer transactions held open after appending, while others commit on every node: no socket skips their events; sockets connecting meanwhile get exactly what their memberships saw", async () => {
    // A transaction that appends an event of a (topic, type) listed in test_stall waits,
    // after the event took its seq, for an advisory lock this test holds: a slow transaction
    // of a real node, held on purpose.
    await db.unsafe(`CREATE TABLE IF NOT EXISTS test_stall (topic text, type text)`);
    await db.unsafe(`CREATE OR REPLACE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF EXISTS (SELECT 1 FROM test_stall s WHERE s.topic = NEW.topic AND s.type = NEW.type) THEN PERFORM pg_advisory_xact_lock_shared(${STALL_LOCK}); END IF;
        RETURN NEW; END $$`);
    await db.unsafe(`CREATE OR REPLACE TRIGGER test_stall AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION test_stall()`);
    const lock = await db.reserve();
    let flood: WebSocket | undefined;
    try {
      const users = await Promise.all(Array.from({ length: 6 }, (_, i) => cluster.user(i % 3)));
      const [owner, ...members] = users;
      const [leaver, joiner, flooder, slowJoiner] = await Promise.all([cluster.user(0), cluster.user(1), cluster.user(2), cluster.user(0)]);
      // G1: where the slow send goes; G2: where the others send meanwhile (a send takes its
      // conversation's row lock to its commit, so only another conversation can pass it).
      const g1 = await groupWithSockets("slow", owner!, members);
      const g2 = (await cluster.api(1, "POST", "/api/conversations", owner!.token, { type: "group", title: "others", member_ids: [...members, leaver].map((m) => m.id) })).body.id as string;
      const g3 = (await cluster.api(2, "POST", "/api/conversations", owner!.token, { type: "group", title: "later", member_ids: [members[0]!.id] })).body.id as string;
      const g4 = (await cluster.api(0, "POST", "/api/conversations", owner!.token, { type: "group", title: "slow add", member_ids: [members[1]!.id] })).body.id as string;
      const everyone = g1.sockets;
      await db`INSERT INTO test_stall VALUES (${`conv:${g1.id}`}, 'message.receive'), (${`user:${slowJoiner.id}`}, 'conversation.create')`;

      await lock`SELECT pg_advisory_lock(${STALL_LOCK})`;
      const writes: Promise<unknown>[] = [];
      const write = (i: number, method: string, path: string, token: string, body?: unknown) => {
        const done = cluster.api(i, method, path, token, body);
        writes.push(done.then((r) => expect(r.status).toBeLessThan(300)));
        return done;
      };
      const slow = write(0, "POST", `/api/conversations/${g1.id}/messages`, owner!.token, { content: "held open" });
      // A membership change held open too: the slow joiner is added to G4; its connect below
      // reads a membership without G4, and a last seq above this change's.
      void write(1, "POST", `/api/conversations/${g4}/members`, owner!.token, { user_ids: [slowJoiner.id] });
      await eventually(async () => (await db`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)[0].n === 2, 10_000, "the slow writes wait");
      const stalled = Date.now();
      // Others commit meanwhile, on every node (their answers wait for the hole: up to 5 s).
      const committedCount = async (topic: string, type: string) => (await db`SELECT count(*)::int AS n FROM events WHERE topic = ${topic} AND type = ${type}`)[0].n as number;
      /** A write whose event is committed once `topic` has one more `type` event (its answer comes later). */
      const commit = async (i: number, method: string, path: string, token: string, body: unknown, topic: string, type: string) => {
        const n = await committedCount(topic, type);
        void write(i, method, path, token, body);
        await eventually(async () => (await committedCount(topic, type)) > n, 10_000, `${method} ${path} commits`);
      };
      for (let k = 0; k < 3; k++)
        for (const [i, m] of members.entries()) void write(i % 3, "POST", `/api/conversations/${g2}/messages`, m.token, { content: `meanwhile ${i}:${k}` });
      // The leaver gets a message in G2, then is removed from it; the joiner is added to G3
      // after a message there and removed after the next one. All commit past the slow seq.
      await commit(1, "POST", `/api/conversations/${g2}/messages`, members[0]!.token, { content: "for the leaver" }, `conv:${g2}`, "message.receive");
      await commit(2, "DELETE", `/api/conversations/${g2}/members/${leaver.id}`, owner!.token, undefined, `user:${leaver.id}`, "conversation.delete");
      await commit(0, "POST", `/api/conversations/${g3}/messages`, owner!.token, { content: "before the joiner" }, `conv:${g3}`, "message.receive");
      await commit(0, "POST", `/api/conversations/${g3}/members`, owner!.token, { user_ids: [joiner.id] }, `user:${joiner.id}`, "conversation.create");
      await commit(1, "POST", `/api/conversations/${g3}/messages`, members[0]!.token, { content: "for the joiner" }, `conv:${g3}`, "message.receive");
      await commit(2, "DELETE", `/api/conversations/${g3}/members/${joiner.id}`, owner!.token, undefined, `user:${joiner.id}`, "conversation.delete");
      // They connect now: their node's delivery stands before the slow seq, their membership read sees the changes after it.
      const late = [cluster.ws(2, leaver.token, { ms: 30_000 }), cluster.ws(1, joiner.token, { ms: 30_000 }), cluster.ws(2, slowJoiner.token, { ms: 30_000 })];
      // One that sends far more frames than the rate limit allows before it is even open is
      // closed (1008) while it waits, its frames not kept.
      flood = new WebSocket(`${cluster.base(0).replace("http", "ws")}/ws/user?token=${flooder.token}`);
      flood.onopen = () => {
        for (let i = 0; i < 130; i++) flood!.send(JSON.stringify({ type: "ping", request_id: `f${i}` }));
      };
      let floodClosed = null as { code: number; held: boolean } | null;
      let holding = true;
      flood.onclose = (e) => (floodClosed = { code: e.code, held: holding });
      // Held past the 5 s a write or a connect used to wait for the node's delivery.
      await Bun.sleep(Math.max(0, 7000 - (Date.now() - stalled)));
      for (const s of everyone) expect(s.frames.some((f) => f.type === "message.receive" && f.data.content?.startsWith("meanwhile"))).toBe(false);
      holding = false;
      await lock`SELECT pg_advisory_unlock(${STALL_LOCK})`;

      const slowId = (await slow).body.id as string;
      const [leaverSocket, joinerSocket, slowJoinerSocket] = await Promise.all(late);
      sockets.push(leaverSocket!, joinerSocket!, slowJoinerSocket!);
      await Promise.all(writes);
      // The hazard happened: events after the slow one's seq committed before it.
      const all = [...(await committed(g1.id)), ...(await committed(g2))];
      const slowEvent = all.find((e) => e.id === slowId)!;
      expect(all.some((e) => e.seq > slowEvent.seq)).toBe(true);
      await expectEveryoneGotAll(everyone, [g1.id, g2], []);

      // The leaver: the message before the removal, then the removal, nothing of G2 after.
      const after = await cluster.api(1, "POST", `/api/conversations/${g2}/messages`, members[1]!.token, { content: "after the leaver" });
      const afterJoiner = await cluster.api(0, "POST", `/api/conversations/${g3}/messages`, owner!.token, { content: "after the joiner" });
      expect((await cluster.api(2, "POST", `/api/conversations/${g4}/messages`, owner!.token, { content: "for the slow joiner" })).status).toBe(201);
      await everyone[2]!.waitFor((f) => f.type === "message.receive" && f.data.id === after.body.id, 10_000);
      await everyone[1]!.waitFor((f) => f.type === "message.receive" && f.data.id === afterJoiner.body.id, 10_000);
      const seen = (s: TestSocket, conversationId: string) =>
        s.frames.filter((f) => f.seq !== undefined && (f.data.conversation_id === conversationId || f.data.id === conversationId)).map((f) => `${f.type} ${f.data.content ?? ""}`.trim());
      // The leaver: G2's messages from where its delivery started up to its removal, then the removal; nothing after.
      const from = leaverSocket!.frames[0]!.data.last_seq as number;
      const removal = leaverSocket!.frames.find((f) => f.type === "conversation.delete" && f.data.conversation_id === g2)!;
      const due = (await committed(g2)).filter((e) => e.seq > from && e.seq < removal.seq!);
      expect(due.length).toBeGreaterThan(0);
      expect(received(leaverSocket!, [g2])).toEqual(due);
      expect(seen(leaverSocket!, g2).at(-1)).toBe("conversation.delete");
      // The joiner: from the add to the removal, not the message before it.
      expect(seen(joinerSocket!, g3)).toEqual(["conversation.create", "message.receive for the joiner", "conversation.delete"]);
      // The slow joiner: its membership read missed the add (still open then, under the read's
      // last seq), but the add's event came after its position, held: G4 is theirs from it on.
      await slowJoinerSocket!.waitFor((f) => f.type === "message.receive" && f.data.conversation_id === g4, 10_000);
      expect(seen(slowJoinerSocket!, g4)).toEqual(["conversation.create", "message.receive for the slow joiner"]);
      const added = slowJoinerSocket!.frames.find((f) => f.type === "conversation.create")!.seq!;
      expect(slowJoinerSocket!.frames[0]!.data.last_seq).toBeLessThan(added);
      expect(added).toBeLessThan(joinerSocket!.frames.find((f) => f.type === "conversation.delete")!.seq!);
      for (const s of [leaverSocket!, joinerSocket!, slowJoinerSocket!]) expectIncreasing(s.frames);
      expect(floodClosed).toEqual({ code: 1008, held: true });
    } finally {
      await lock`SELECT pg_advisory_unlock_all()`.catch(() => {});
      lock.release();
      flood?.close();
      await db.unsafe("DROP TRIGGER IF EXISTS test_stall ON events");
    }
  }, 90_000);
});
