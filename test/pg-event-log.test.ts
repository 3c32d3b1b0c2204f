/**
 * Cluster mode's event log (src/platform/postgres/event-log.ts) on a real PostgreSQL:
 * the same replay semantics as the SQLite log, followers on two "nodes" that deliver every
 * committed event once and in seq order under concurrent writers, a transaction held open
 * that no reader may skip, chunked pruning, and 503 `unavailable` while PostgreSQL is away.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { join } from "node:path";
import { AppError } from "../src/errors";
import { openDatabase } from "../src/db/client";
import { migrate } from "../src/db/migrate";
import { EventLog } from "../src/events/log";
import { toAppError } from "../src/http/errors";
import { migratePostgres, openPostgres, type PgDB } from "../src/platform/postgres/client";
import { isPgUnavailable } from "../src/platform/postgres/errors";
import { PgEventLog, type Ordering, type PgEventLogOptions, type PgWriter } from "../src/platform/postgres/event-log";
import { tempDir } from "./helpers";
import { createTestDatabase, servicesReady } from "./services";

const ready = await servicesReady("PostgreSQL event log", { pg: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const opened: PgDB[] = [];
const logs: PgEventLog[] = [];

/** A pool on the test database, closed after the test (other sessions share max_connections). */
function pool(max = 6): PgDB {
  const db = openPostgres(database.url, max);
  opened.push(db);
  return db;
}

/** A database of its own for one test (seqs from 1), dropped after it. */
async function ownDatabase(): Promise<PgDB> {
  const own = await createTestDatabase("parley_eventlog_own");
  const db = openPostgres(own.url, 4);
  await migratePostgres(db);
  dropAfter.push(async () => {
    await db.$client.close();
    await own.drop();
  });
  return db;
}
const dropAfter: (() => Promise<void>)[] = [];

/** A log (a "node") on `db`, its follower started, stopped after the test. */
async function openLog(db: PgDB, ordering: Ordering, options: PgEventLogOptions = {}): Promise<PgEventLog> {
  const log = await PgEventLog.open(db, { ordering, onError: (e) => console.error("event log:", e), ...options });
  logs.push(log);
  await log.start();
  return log;
}

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_eventlog");
  const db = openPostgres(database.url, 1);
  await migratePostgres(db);
  await db.$client.close();
});
afterEach(async () => {
  for (const log of logs.splice(0)) await log.stop();
  for (const db of opened.splice(0)) await db.$client.close();
  for (const drop of dropAfter.splice(0)) await drop();
});
afterAll(async () => {
  await database?.drop();
});

/** Every seq in the table after `after`, in order: what the followers must have delivered. */
async function committedSeqs(db: PgDB, after: number): Promise<number[]> {
  const rows = await db.$client`SELECT seq FROM events WHERE seq > ${after} ORDER BY seq`;
  return rows.map((r: { seq: string }) => Number(r.seq));
}

/** Collects what a log's follower delivers. */
function recorder(log: PgEventLog) {
  const seqs: number[] = [];
  log.onCommit((events) => seqs.push(...events.map((e) => e.seq)));
  return seqs;
}

const mention = (n: number) => ({ kind: "mention" as const, conversation_id: "c", message_id: `m${n}`, from_user_id: "u" });

/**
 * One change, written once for both engines as a generator of operations: each `yield`
 * gives back the operation's result (a seq; 0 for SQL). The SQLite log needs a synchronous
 * function, so its driver runs the generator synchronously; PostgreSQL's awaits each step.
 */
type Op = { sql: string; params: unknown[] } | { emit: string; type: string; data: unknown } | { emitMany: string[]; type: string; data: unknown };
type Change = () => Generator<Op, void, number>;

const run = (text: string, ...params: unknown[]): Op => ({ sql: text, params });
const emit = (topic: string, type: string, data: unknown): Op => ({ emit: topic, type, data });

function* joinGroup(user: string, role: string): Generator<Op, number, number> {
  yield run("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES ('g', ?, ?, 1000)", user, role);
  const seq = yield emit(`user:${user}`, "conversation.create", { id: "g", joined: user });
  yield run("UPDATE conversation_members SET joined_seq = ? WHERE conversation_id = 'g' AND user_id = ?", seq, user);
  return seq;
}

/** Membership changes and events as the services make them: joined_seq, a stint, shared payloads. */
const STORY: Change[] = [
  function* () {
    for (const u of ["ann", "bob", "cat"])
      yield run("INSERT INTO users (id, username, display_name, password_hash, last_active_at, created_at, updated_at) VALUES (?, ?, ?, 'x', 0, 0, 0)", u, u, u);
    yield run("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES ('g', 'group', 'G', 'ann', 0, 0, 0)");
    yield run("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES ('g', 'ann', 'owner', 1000), ('g', 'bob', 'member', 1000)");
    const created = yield { emitMany: ["user:ann", "user:bob"], type: "conversation.create", data: { id: "g" } };
    yield run("UPDATE conversation_members SET joined_seq = ? WHERE conversation_id = 'g'", created);
  },
  function* () {
    yield emit("conv:g", "message.receive", { n: 1 });
  },
  function* () {
    yield emit("user:cat", "notification", mention(1));
  },
  function* () {
    yield* joinGroup("cat", "member");
    yield emit("conv:g", "conversation.update", { added: "cat" });
  },
  function* () {
    yield emit("conv:g", "message.receive", { n: 2 });
  },
  // Bob leaves: what this stint gave him stays his, should he come back.
  function* () {
    const left = yield emit("user:bob", "conversation.delete", { conversation_id: "g" });
    yield run("INSERT INTO member_stints (conversation_id, user_id, joined_seq, left_seq) SELECT 'g', 'bob', joined_seq, ? FROM conversation_members WHERE conversation_id = 'g' AND user_id = 'bob'", left);
    yield run("DELETE FROM conversation_members WHERE conversation_id = 'g' AND user_id = 'bob'");
    yield emit("conv:g", "conversation.update", { removed: "bob" });
  },
  function* () {
    yield emit("conv:g", "message.receive", { n: 3, note: "while bob was away" });
  },
  function* () {
    yield* joinGroup("bob", "member");
  },
  function* () {
    yield emit("conv:g", "message.receive", { n: 4 });
  },
  function* () {
    yield { emitMany: ["user:ann", "user:bob", "user:cat"], type: "user.update", data: { id: "ann", shared: true } };
  },
  function* () {
    yield emit("user:ann", "notification", mention(2));
  },
];

function sqliteWrite(log: EventLog, change: Change) {
  log.write((w) => {
    const steps = change();
    for (let step = steps.next(); !step.done; ) {
      const op = step.value;
      if ("sql" in op) {
        w.tx.$client.run(op.sql, op.params as never[]);
        step = steps.next(0);
      } else if ("emit" in op) step = steps.next(w.emit(op.emit, op.type as never, op.data as never));
      else step = steps.next(w.emitMany(op.emitMany, op.type as never, op.data as never));
    }
  });
}

/** `?` placeholders as drizzle parameters. */
function pgSql(text: string, params: unknown[]) {
  const parts = text.split("?");
  return parts.slice(1).reduce((q, part, i) => sql`${q}${params[i]}${sql.raw(part)}`, sql.raw(parts[0]!));
}

async function pgApply(w: PgWriter, change: Change) {
  const steps = change();
  for (let step = steps.next(); !step.done; ) {
    const op = step.value;
    if ("sql" in op) {
      await w.tx.execute(pgSql(op.sql, op.params));
      step = steps.next(0);
    } else if ("emit" in op) step = steps.next(await w.emit(op.emit, op.type as never, op.data as never));
    else step = steps.next(await w.emitMany(op.emitMany, op.type as never, op.data as never));
  }
}

/** A replay without timestamps (the two engines wrote at different times). */
const shape = (rows: { seq: number; type: string; data: unknown }[]) => rows.map(({ seq, type, data }) => ({ seq, type, data }));

async function appErrorOf(p: Promise<unknown> | (() => unknown)): Promise<AppError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error("expected an AppError");
}

describe.skipIf(!ready)("PostgreSQL event log", () => {
  test("append and replay answer as the SQLite log does for the same changes (joined_seq, stints, shared payloads, sync_reset, epoch)", async () => {
    const lite = openDatabase(join(tempDir(), "parley.db"));
    migrate(lite);
    const sqlite = new EventLog(lite);
    // Its own database: seqs must start from 1 as SQLite's do.
    const db = await ownDatabase();
    const pg = await openLog(db, "horizon");
    try {
      for (const change of STORY) {
        sqliteWrite(sqlite, change);
        await pg.write((w) => pgApply(w, change));
      }
      const last = sqlite.lastSeq();
      expect(await pg.lastSeq()).toBe(last);
      expect(await pg.waitFor(last)).toBe(true);
      expect(pg.deliveredSeq).toBe(last);
      for (const user of ["ann", "bob", "cat", "nobody"])
        for (const since of [0, 1, 3, 6, 9, last - 1, last])
          for (const limit of [100, 2]) {
            const [want, got] = [sqlite.replay(user, since, limit), await pg.replay(user, since, limit)];
            expect(shape(got)).toEqual(shape(want));
            expect((await pg.replayRaw(user, since, limit)).map((r) => r.data)).toEqual(sqlite.replayRaw(user, since, limit).map((r) => r.data));
          }
      // The story is what it says: bob misses message 3 and gets his old stint, cat starts at her join.
      const bob = await pg.replay("bob", 0, 100);
      expect(bob.map((e) => (e.data as { n?: number }).n).filter(Boolean)).toEqual([1, 2, 4]);
      expect((await pg.replay("cat", 0, 100)).map((e) => (e.data as { n?: number }).n).filter(Boolean)).toEqual([2, 3, 4]);
      // emitMany stores its data once.
      const [payloads] = await db.$client`SELECT count(*)::int AS n, (SELECT count(*)::int FROM events WHERE payload_id IS NOT NULL AND data = '') AS shared FROM event_payloads`;
      expect(payloads).toEqual({ n: 2, shared: 5 });

      // sync_reset: past the end, another epoch; both carry where to go on from.
      for (const bad of [() => pg.replayRaw("ann", last + 1, 10), () => pg.replayRaw("ann", 0, 10, "0".repeat(32))]) {
        const e = await appErrorOf(bad);
        expect(e.code).toBe("sync_reset");
        expect(e.details).toEqual({ last_seq: last, epoch: pg.epoch });
      }
      expect(() => sqlite.replayRaw("ann", last + 1, 10)).toThrow(AppError);
      expect(await pg.replay("ann", 0, 10, pg.epoch)).toHaveLength(sqlite.replay("ann", 0, 10, sqlite.epoch).length);

      // Pruning: the same cut on both, the same answers after it, a since below it resets.
      await db.$client`UPDATE events SET created_at = 1 WHERE seq <= 6`;
      lite.$client.run("UPDATE events SET created_at = 1 WHERE seq <= 6");
      expect(await pg.prune(1000, 2000)).toBe(sqlite.prune(1000, 2000));
      expect(await pg.prunedThrough()).toBe(6);
      expect(sqlite.prunedThrough()).toBe(6);
      expect((await appErrorOf(pg.replayRaw("ann", 5, 10))).code).toBe("sync_reset");
      for (const user of ["ann", "bob", "cat"]) expect(shape(await pg.replay(user, 6, 100))).toEqual(shape(sqlite.replay(user, 6, 100)));
    } finally {
      lite.$client.close();
    }
  }, 30_000);

  describe.each(["horizon", "lock"] as Ordering[])("ordering %s", (ordering) => {
    test("two nodes, 10 concurrent writers for 3 s: each follower delivers every committed event once, in seq order", async () => {
      const db = pool();
      let appended = 0;
      const nodes = [await openLog(db, ordering, { onAppended: () => appended++ }), await openLog(pool(), ordering, { onAppended: () => appended++ })];
      const start = Math.max(...nodes.map((n) => n.deliveredSeq));
      const delivered = nodes.map(recorder);
      const until = performance.now() + 3000;
      let commits = 0;
      let rollbacks = 0;
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const node = nodes[i % 2]!;
          for (let n = 0; performance.now() < until; n++) {
            try {
              await node.write(async (w) => {
                await w.emit(`user:w${i}`, "notification", mention(n));
                if (n % 3 === 0) await w.emitMany([`user:w${i}`, `user:x${i}`], "notification", mention(n));
                // Some roll back after taking seqs: holes that followers must pass.
                if (n % 7 === 3) throw new Error("rolled back on purpose");
              });
              commits++;
            } catch (e) {
              if ((e as Error).message !== "rolled back on purpose") throw e;
              rollbacks++;
            }
          }
        }),
      );
      const expected = await committedSeqs(db, start);
      expect(commits).toBeGreaterThan(20);
      expect(rollbacks).toBeGreaterThan(0);
      // The broker's wake-up hook ran after every appending transaction, committed or not.
      expect(appended).toBe(commits + rollbacks);
      for (const [i, node] of nodes.entries()) {
        expect(await node.waitFor(expected.at(-1)!, 10_000)).toBe(true);
        expect(delivered[i]!.filter((s) => s > start)).toEqual(expected);
      }
    }, 30_000);

    test("a writer transaction held open for 2 s while others commit: no follower and no replay skips its event", async () => {
      const db = pool();
      const nodes = [await openLog(db, ordering), await openLog(pool(), ordering)];
      const start = Math.max(...nodes.map((n) => n.deliveredSeq));
      const delivered = nodes.map(recorder);
      // One event before, so that the replay mid-hold has something to serve.
      const first = await nodes[0]!.write((w) => w.emit("user:slow", "notification", mention(-1)));
      expect(await nodes[1]!.waitFor(first)).toBe(true);
      let slowSeq = 0;
      const slow = nodes[0]!.write(async (w) => {
        slowSeq = await w.emit("user:slow", "notification", mention(0));
        await Bun.sleep(2000);
      });
      while (!slowSeq) await Bun.sleep(5);
      // Others commit meanwhile, on both nodes (under "lock" they wait for the slow one).
      const others = Array.from({ length: 6 }, (_, i) =>
        (async () => {
          const seqs: number[] = [];
          for (let n = 0; n < 5; n++) seqs.push(await nodes[i % 2]!.write((w) => w.emit("user:slow", "notification", mention(n + 1))));
          return seqs;
        })(),
      );
      await Bun.sleep(1000);
      // Mid-hold: nothing at or past the slow event is delivered, nor replayed.
      for (const node of nodes) expect(node.deliveredSeq).toBeLessThan(slowSeq);
      const before = nodes.map((n) => n.deliveredSeq);
      const early = await nodes[1]!.replayRaw("slow", start, 1000);
      expect(early.map((r) => r.seq)).toEqual([first]);
      await slow;
      const otherSeqs = (await Promise.all(others)).flat();
      if (ordering === "horizon") {
        // The hazard happened: events after the slow one's seq committed before it did.
        const [{ n }] = await db.$client`SELECT count(*)::int AS n FROM events WHERE seq > ${slowSeq} AND topic = 'user:slow'`;
        expect(n).toBeGreaterThan(0);
      } else expect(Math.min(...otherSeqs)).toBeGreaterThan(slowSeq);
      const expected = await committedSeqs(db, start);
      expect(expected).toContain(slowSeq);
      for (const [i, node] of nodes.entries()) {
        expect(await node.waitFor(expected.at(-1)!, 10_000)).toBe(true);
        expect(delivered[i]!.filter((s) => s > start)).toEqual(expected);
      }
      // A client that replayed mid-hold up to the follower's position, then goes on from there, gets everything once.
      const rest = await nodes[1]!.replayRaw("slow", before[1]!, 1000);
      expect([...early, ...rest].map((r) => r.seq)).toEqual(expected);
    }, 30_000);
  });

  describe.each(["horizon", "lock"] as Ordering[])("ordering %s", (ordering) => {
    test("a hole whose transaction got its id after the one that commits a later seq: the follower waits for it", async () => {
      // B takes its transaction id first; A takes its id, then seq s; B takes s+1 and
      // commits while A is still open. A's id is then above every completed one, so
      // the snapshot's xmax does not cover it: only the next id does.
      const db = pool();
      const nodes = [await openLog(db, ordering), await openLog(pool(), ordering)];
      const start = Math.max(...nodes.map((n) => n.deliveredSeq));
      const delivered = nodes.map(recorder);
      const [bHasId, aHasSeq] = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
      const b = nodes[1]!.write(async (w) => {
        await w.tx.execute(sql`SELECT pg_current_xact_id()`);
        bHasId.resolve();
        await aHasSeq.promise;
        return w.emit("user:late", "notification", mention(2));
      });
      const a = nodes[0]!.write(async (w) => {
        await bHasId.promise;
        const seq = await w.emit("user:late", "notification", mention(1));
        aHasSeq.resolve();
        await Bun.sleep(ordering === "horizon" ? 800 : 0);
        return seq;
      });
      const [seqA, seqB] = await Promise.all([a, b]);
      expect(seqA).toBeLessThan(seqB);
      for (const [i, node] of nodes.entries()) {
        expect(await node.waitFor(seqB, 5000)).toBe(true);
        expect(delivered[i]!.filter((s) => s > start)).toEqual([seqA, seqB]);
      }
    }, 15_000);
  });

  test("a commit reaches another node through NOTIFY, or through wake() (the broker's), never waiting for the poll", async () => {
    const db = pool();
    const slowPoll = { pollMs: 60_000 };
    const writer = await openLog(db, "horizon", slowPoll);
    const listening = await openLog(pool(), "horizon", slowPoll);
    // On another channel: only wake() can tell it.
    const deaf = await openLog(pool(), "horizon", { ...slowPoll, channel: "parley_events_elsewhere" });
    const seq = await writer.write((w) => w.emit("user:n", "notification", mention(1)));
    const reached = async (log: PgEventLog) => {
      for (let i = 0; i < 100 && log.deliveredSeq < seq; i++) await Bun.sleep(100);
      return log.deliveredSeq >= seq;
    };
    expect(await reached(listening)).toBe(true);
    deaf.wake();
    expect(await reached(deaf)).toBe(true);
  }, 30_000);

  test("pruning goes in chunks, keeping a payload shared across a chunk's edge until no event uses it", async () => {
    const db = await ownDatabase();
    const log = await openLog(db, "horizon", { pruneChunk: 1 });
    // Seqs 1–3, 4–6, 7–9: one payload each.
    for (let n = 0; n < 3; n++) await log.write((w) => w.emitMany([`user:p${n}a`, `user:p${n}b`, `user:p${n}c`], "notification", mention(n)));
    const payloadOf = async (seq: number) => (await db.$client`SELECT payload_id FROM events WHERE seq = ${seq}`)[0]!.payload_id as string;
    const payloads = [await payloadOf(1), await payloadOf(4), await payloadOf(7)];
    const remaining = async () => (await db.$client`SELECT id FROM event_payloads ORDER BY id`).map((r: { id: string }) => r.id);
    await db.$client`UPDATE events SET created_at = CASE WHEN seq <= 2 THEN 1 WHEN seq <= 4 THEN 2 ELSE created_at END`;
    // Up to seq 2, one seq per transaction: the first payload stays, seq 3 still uses it.
    expect(await log.prune(1000, 1002)).toBe(2);
    expect(await log.prunedThrough()).toBe(2);
    expect(await remaining()).toEqual(payloads);
    // On to seq 4: the first payload goes with its last event; the second stays for 5 and 6.
    expect(await log.prune(1000, 1003)).toBe(2);
    expect(await log.prunedThrough()).toBe(4);
    expect(await committedSeqs(db, 0)).toEqual([5, 6, 7, 8, 9]);
    expect(await remaining()).toEqual(payloads.slice(1));
    expect((await log.replay("p1b", 4, 10)).map((e) => e.seq)).toEqual([5]);
    expect((await appErrorOf(log.replayRaw("p1b", 3, 10))).code).toBe("sync_reset");
    expect(await log.prune(1000, 1003)).toBe(0);
  });

  test("PostgreSQL unreachable: writes and replays fail with 503 unavailable (Retry-After), and work again when it is back", async () => {
    // A TCP relay in front of PostgreSQL stands for the server: stopping it is PostgreSQL going away.
    const target = new URL(database.url);
    const relay = tcpRelay(target.hostname, Number(target.port || 5432));
    const port = await relay.start(0);
    const url = new URL(database.url);
    url.port = String(port);
    const db = openPostgres(url.toString(), 2);
    opened.push(db);
    const errors: unknown[] = [];
    const log = await openLog(db, "horizon", { onError: (e) => errors.push(e) });
    expect(await log.write((w) => w.emit("user:down", "notification", mention(1)))).toBeGreaterThan(0);

    await relay.stop();
    const failure = await appErrorOf(log.write((w) => w.emit("user:down", "notification", mention(2))));
    expect(failure.code).toBe("unavailable");
    expect(failure.status).toBe(503);
    expect(failure.retryAfterMs).toBeGreaterThan(0);
    expect((await appErrorOf(log.replayRaw("down", 0, 10))).code).toBe("unavailable");
    // The follower, woken by the failed write, reported that it could not read (and goes on polling).
    await Bun.sleep(100);
    expect(errors.some(isPgUnavailable)).toBe(true);
    // The HTTP layer answers what any query threw the same way, drizzle-wrapped or not.
    for (const query of [() => db.$client`SELECT 1`, () => db.execute(sql`SELECT 1`)]) {
      const error = toAppError("UNKNOWN", await query().catch((e: unknown) => e));
      expect(error?.code).toBe("unavailable");
      expect(error?.retryAfterMs).toBeGreaterThan(0);
    }

    await relay.start(port);
    let seq = 0;
    for (let i = 0; i < 50 && !seq; i++) {
      seq = await log.write((w) => w.emit("user:down", "notification", mention(3))).catch(() => 0);
      if (!seq) await Bun.sleep(100);
    }
    expect(seq).toBeGreaterThan(0);
    expect(await log.waitFor(seq)).toBe(true);
    await log.stop();
    // Opening a log against nothing at all is unavailable too.
    await relay.stop();
    expect((await appErrorOf(PgEventLog.open(db))).code).toBe("unavailable");
  }, 30_000);
});

/** A TCP relay to host:port that can be stopped (closing every connection) and started again on the same port. */
function tcpRelay(host: string, port: number) {
  type Pair = { peer?: import("bun").Socket<Pair>; pending: Uint8Array[] };
  let server: import("bun").TCPSocketListener<Pair> | null = null;
  const sockets = new Set<import("bun").Socket<Pair>>();
  return {
    async start(listenPort: number): Promise<number> {
      server = Bun.listen<Pair>({
        hostname: "127.0.0.1",
        port: listenPort,
        socket: {
          async open(client) {
            sockets.add(client);
            client.data = { pending: [] };
            const upstream = await Bun.connect<Pair>({
              hostname: host,
              port,
              socket: {
                data: (_, chunk) => void client.write(chunk),
                close: () => void client.end(),
                error: () => void client.end(),
              },
            });
            upstream.data = { peer: client, pending: [] };
            sockets.add(upstream);
            client.data.peer = upstream;
            for (const chunk of client.data.pending.splice(0)) upstream.write(chunk);
          },
          data(client, chunk) {
            if (client.data.peer) client.data.peer.write(chunk);
            else client.data.pending.push(new Uint8Array(chunk));
          },
          close: (client) => void client.data.peer?.end(),
          error: (client) => void client.data.peer?.end(),
        },
      });
      return server.port;
    },
    async stop() {
      server?.stop(true);
      server = null;
      for (const s of sockets) s.terminate();
      sockets.clear();
    },
  };
}
