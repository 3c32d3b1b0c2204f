/**
 * §7.5: the event log's epoch. A server restored from a backup numbers new events from the
 * backup's position again; once its log grows past a client's `since`, that position names
 * other events. The epoch (new in every backup) tells the two timelines apart.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ParleyClient } from "../src/client";
import { eventsOf, startServer, tempDir, TEST_BACKEND, type Account, type TestServer } from "./helpers";
import { backup } from "./backups";
import { testDatabaseFor } from "./services";
import { TestSocket } from "./ws-client";

const EPOCH = /^[0-9a-f]{32}$/;

let live: TestServer;
let restored: TestServer;
let alice: Account;
let conversationId: string;
/** Alice's position at the backup, on the live server after it, and the two epochs. */
let atBackup: number;
let newer: number;
let liveEpoch: string;
let backupEpoch: string;
/** The restored log's end, once it has grown past `newer`. */
let restoredLast: number;

const send = async (s: TestServer, n: number) => {
  for (let i = 0; i < n; i++) {
    const res = await s.api("POST", `/api/conversations/${conversationId}/messages`, { token: alice.token, body: { content: `m${i}` } });
    expect(res.status).toBe(201);
  }
};
const lastOf = async (s: TestServer) => (await eventsOf(s, alice.token)).at(-1)!.seq;
const socket = (s: TestServer, query: string) => TestSocket.connect(`${s.wsBase}/ws/user?token=${alice.token}&${query}`);

beforeAll(async () => {
  live = await startServer();
  alice = await live.register();
  const group = await live.api("POST", "/api/conversations", { token: alice.token, body: { type: "group", title: "notes" } });
  conversationId = group.body.id;
  await send(live, 3);
  atBackup = await lastOf(live);

  // SQLite: `parley backup`; PostgreSQL: its own dump, stamped with a new epoch likewise.
  const copy = await backup(live);
  backupEpoch = copy.epoch;

  await send(live, 5);
  newer = await lastOf(live);
  liveEpoch = live.app.ctx.feed.epoch;

  // Restore: the backup (and the JWT secret) in a new data directory, a server on it.
  restored = await startServer({}, copy.restore());
  // The restored log grows past the position the client saw on the live server.
  await send(restored, 10);
  restoredLast = await restored.app.ctx.feed.lastSeq();
  expect(restoredLast).toBeGreaterThan(newer);
}, 60_000);

afterAll(async () => {
  await live.stop();
  await restored.stop();
});

describe("the epoch", () => {
  test("is random, kept in the database, and new in every backup", async () => {
    expect(liveEpoch).toMatch(EPOCH);
    expect(backupEpoch).toMatch(EPOCH);
    expect(backupEpoch).not.toBe(liveEpoch);
    expect(restored.app.ctx.feed.epoch).toBe(backupEpoch);
    const ws = await socket(live, "");
    expect(ws.all("connect")[0]!.data.epoch).toBe(liveEpoch);
    ws.close();
  });

  test("the same epoch and an older since replay as before, and sync.complete names the epoch", async () => {
    const ws = await socket(live, `since=${atBackup}&epoch=${liveEpoch}`);
    expect(ws.all("message.receive").map((f) => f.seq)).toHaveLength(5);
    expect(ws.all("sync.complete")[0]!.data).toEqual({ last_seq: newer, epoch: liveEpoch });
    ws.close();
    const rest = await live.api("GET", `/api/events?since=${atBackup}&epoch=${liveEpoch}`, { token: alice.token });
    expect(rest.status).toBe(200);
    expect(rest.body.items).toHaveLength(5);
    expect(rest.body.epoch).toBe(liveEpoch);
  });

  test("after a restore, the newer position with the old epoch is sync.reset, not a replay of other events", async () => {
    const ws = await socket(restored, `since=${newer}&epoch=${liveEpoch}`);
    expect(ws.all("message.receive")).toHaveLength(0);
    expect(ws.all("sync.complete")).toHaveLength(0);
    expect(ws.all("sync.reset")[0]!.data).toEqual({ last_seq: restoredLast, epoch: backupEpoch });
    ws.close();
  });

  test("…and 410 sync_reset over REST, naming where to go on from", async () => {
    const res = await restored.api("GET", `/api/events?since=${newer}&epoch=${liveEpoch}`, { token: alice.token });
    expect(res.status).toBe(410);
    expect(res.body.error.code).toBe("sync_reset");
    expect(res.body.error.details).toEqual({ last_seq: restoredLast, epoch: backupEpoch });
    // A cursor in another timeline is no better.
    const paged = await restored.api("GET", `/api/events?cursor=${atBackup}&epoch=${liveEpoch}`, { token: alice.token });
    expect(paged.status).toBe(410);
  });

  test("the restored server's own epoch resumes normally", async () => {
    const ws = await socket(restored, `since=${atBackup}&epoch=${backupEpoch}`);
    expect(ws.all("message.receive")).toHaveLength(10);
    expect(ws.all("sync.complete")[0]!.data.epoch).toBe(backupEpoch);
    ws.close();
  });

  test("since without epoch (a v1 client) is checked by seq alone, as in v1", async () => {
    const ws = await socket(restored, `since=${newer}`);
    expect(ws.all("sync.complete")).toHaveLength(1);
    ws.close();
    expect((await restored.api("GET", `/api/events?since=${newer}`, { token: alice.token })).status).toBe(200);
    // An epoch alone, without since, is no replay: nothing to compare.
    const plain = await socket(restored, `epoch=${liveEpoch}`);
    expect(plain.all("sync.reset").length + plain.all("sync.complete").length).toBe(0);
    plain.close();
  });

  test("a malformed epoch is 400 over REST and sync.reset on the socket; an empty one is none", async () => {
    for (const bad of ["%20", "a.b", "x".repeat(65), "%C3%A9"]) {
      const res = await restored.api("GET", `/api/events?since=0&epoch=${bad}`, { token: alice.token });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("bad_request");
      const ws = await socket(restored, `since=${atBackup}&epoch=${bad}`);
      expect(ws.all("sync.reset")).toHaveLength(1);
      ws.close();
    }
    expect((await restored.api("GET", `/api/events?since=${atBackup}&epoch=`, { token: alice.token })).status).toBe(200);
  });

  test("the reference client sends its epoch, and takes the restored server's after the reset", async () => {
    const client = new ParleyClient({ url: restored.base, token: alice.token, lastSeq: newer, epoch: liveEpoch });
    const resets: { last_seq: number; epoch: string }[] = [];
    client.on("sync.reset", (d) => resets.push(d));
    await client.connect();
    expect(resets).toEqual([{ last_seq: restoredLast, epoch: backupEpoch }]);
    expect(client.epoch).toBe(backupEpoch);
    expect(client.lastSeq).toBe(restoredLast);
    client.close();

    // A fresh client learns the epoch from connect.
    const fresh = new ParleyClient({ url: live.base, token: alice.token });
    await fresh.connect();
    expect(fresh.epoch).toBe(liveEpoch);
    fresh.close();
  });
});

/**
 * `parley new-epoch` (a real process) on the database of a stopped server: what an operator
 * runs after restoring one by other means than `parley backup` (pg_restore, point-in-time
 * recovery, a disk snapshot), which keep the old epoch. On PostgreSQL (PARLEY_TEST_DB)
 * through DATABASE_URL, as in cluster mode (test/cluster-epoch.test.ts: on running nodes).
 */
describe("parley new-epoch", () => {
  const newEpoch = async (dataDir: string) => {
    const env: Record<string, string> = { DATA_DIR: dataDir };
    if (TEST_BACKEND === "postgres")
      Object.assign(env, { DATABASE_URL: await testDatabaseFor(dataDir), NATS_URL: "nats://127.0.0.1:4222", JWT_SECRET: "a-test-secret-of-at-least-32-characters" });
    const run = Bun.spawnSync([process.execPath, "src/index.ts", "new-epoch"], { env: { ...process.env, ...env } });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    return /new event-log epoch ([0-9a-f]{32}) /.exec(run.stdout.toString())![1]!;
  };

  test("gives the stopped server's log a new epoch: positions of the old one start over, events keep their seqs", async () => {
    const dataDir = tempDir();
    let server = await startServer({}, dataDir);
    const bob = await server.register();
    const group = await server.api("POST", "/api/conversations", { token: bob.token, body: { type: "group", title: "restored" } });
    for (let i = 0; i < 3; i++) expect((await server.api("POST", `/api/conversations/${group.body.id}/messages`, { token: bob.token, body: { content: `m${i}` } })).status).toBe(201);
    const before = await eventsOf(server, bob.token);
    const oldEpoch = server.app.ctx.feed.epoch;
    const early = before[0]!.seq;
    const end = await server.app.ctx.feed.lastSeq();
    await server.stop(false);

    const epoch = await newEpoch(dataDir);
    expect(epoch).toMatch(EPOCH);
    expect(epoch).not.toBe(oldEpoch);
    // Twice is two epochs (each run is a new timeline's name).
    const again = await newEpoch(dataDir);
    expect(again).not.toBe(epoch);

    server = await startServer({}, dataDir);
    try {
      expect(server.app.ctx.feed.epoch).toBe(again);
      // A position of the old epoch: sync.reset on the socket (whose connect names the new epoch), 410 over REST.
      const ws = await TestSocket.connect(`${server.wsBase}/ws/user?token=${bob.token}&since=${early}&epoch=${oldEpoch}`);
      expect(ws.all("connect")[0]!.data.epoch).toBe(again);
      expect(ws.all("message.receive")).toHaveLength(0);
      expect(ws.all("sync.reset")[0]!.data).toEqual({ last_seq: end, epoch: again });
      ws.close();
      const rest = await server.api("GET", `/api/events?since=${early}&epoch=${oldEpoch}`, { token: bob.token });
      expect(rest.status).toBe(410);
      expect(rest.body.error.details).toEqual({ last_seq: end, epoch: again });

      // The log itself is as it was: the same events under the same seqs, resumable with the new epoch.
      expect(await eventsOf(server, bob.token)).toEqual(before);
      const resumed = await TestSocket.connect(`${server.wsBase}/ws/user?token=${bob.token}&since=${early}&epoch=${again}`);
      expect(resumed.all("message.receive").map((f) => f.seq)).toEqual(before.filter((e) => e.seq > early && e.type === "message.receive").map((e) => e.seq));
      expect(resumed.all("sync.complete")[0]!.data).toEqual({ last_seq: end, epoch: again });
      resumed.close();
      // New events go on after the old ones.
      expect((await server.api("POST", `/api/conversations/${group.body.id}/messages`, { token: bob.token, body: { content: "after" } })).status).toBe(201);
      expect((await eventsOf(server, bob.token, end)).map((e) => e.seq)).toEqual([end + 1]);
    } finally {
      await server.stop();
    }
  });
});
