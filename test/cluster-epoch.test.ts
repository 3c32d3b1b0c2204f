/**
 * Restoring a cluster's database (README "Restoring a cluster's database"): PostgreSQL's own
 * tools keep the old epoch, so a restored log that grows past a client's position would
 * replay another timeline's events to it as its own. The operator's procedure, with real
 * nodes, a real pg_dump / pg_restore and `parley new-epoch`: stop the nodes, restore, new
 * epoch, start them. Then a node left running while `parley new-epoch` runs: it notices at
 * its next safety poll and exits 1 (to be started again), instead of serving the old epoch.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { join } from "node:path";
import { createTestDatabase, NATS_TEST_URL, PG_ADMIN_URL, servicesReady } from "./services";
import { tempDir } from "./helpers";
import { Cluster } from "./cluster-harness";
import { TestSocket } from "./ws-client";

const ready = await servicesReady("parley new-epoch on a cluster's database (two nodes)");
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let cluster: Cluster;

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_cluster_epoch");
  // Small pools: PostgreSQL's connections are shared with the other test files.
  cluster = await Cluster.start(2, { DATABASE_URL: database.url, DATABASE_POOL_SIZE: "4", NATS_URL: NATS_TEST_URL });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  await database?.drop();
});

const EPOCH = /^[0-9a-f]{32}$/;
/**
 * `parley <args>` with the nodes' settings (DATABASE_URL, NATS_URL, JWT_SECRET…), as an operator
 * runs it. Not spawnSync: that stalls this process, whose sockets then miss the nodes' pings
 * (1 s heartbeat here) and are rightly dropped as dead (1006) on a busy machine.
 */
const cli = async (...args: string[]) => {
  const p = Bun.spawn([process.execPath, "src/index.ts", ...args], { env: { ...process.env, ...cluster.env, DATA_DIR: tempDir() }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
};
const newEpoch = async () => {
  const r = await cli("new-epoch");
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
  const epoch = /new event-log epoch (\S+) \(PostgreSQL, DATABASE_URL\)/.exec(r.out)![1]!;
  expect(epoch).toMatch(EPOCH);
  return epoch;
};
const run = (cmd: string[]) => {
  const p = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd[0]}: exit ${p.exitCode}: ${p.stderr.toString()}`);
};
/** The caller's events on node `i` (one page is enough here), and the epoch they belong to. */
const events = async (i: number, token: string, query = "since=0") => {
  const r = await cluster.api(i, "GET", `/api/events?${query}&limit=100`, token);
  expect(r.status).toBe(200);
  return r.body as { items: { seq: number; type: string; data: any }[]; epoch: string };
};

describe.skipIf(!ready)("parley new-epoch in cluster mode", () => {
  let alice: { token: string; id: string };
  let conversation: string;
  let restoredEpoch: string;
  const send = async (i: number, n: number, text: string) => {
    for (let k = 0; k < n; k++) expect((await cluster.api(i, "POST", `/api/conversations/${conversation}/messages`, alice.token, { content: `${text} ${k}` })).status).toBe(201);
  };

  test("the restore procedure: stop the nodes, pg_restore, parley new-epoch, start them; a position of the old timeline is sync.reset, not another timeline's events", async () => {
    alice = await cluster.user(0);
    conversation = (await cluster.api(0, "POST", "/api/conversations", alice.token, { type: "group", title: "restored" })).body.id;
    await send(0, 3, "kept");
    const dump = join(tempDir(), "parley.dump");
    run(["pg_dump", "--format=custom", "--no-owner", `--file=${dump}`, `--dbname=${database.url}`]);
    const dumped = await events(0, alice.token);

    // The old timeline goes on after the dump: a client sees `newer` on it.
    await send(1, 5, "lost");
    const seen = await events(1, alice.token);
    const newer = seen.items.at(-1)!.seq;
    const oldEpoch = seen.epoch;
    expect(newer).toBeGreaterThan(dumped.items.at(-1)!.seq);

    // 1. Stop every node. 2. Restore PostgreSQL (here: the database dropped and made again from the dump).
    for (const node of cluster.nodes) expect(await node!.stop()).toBe(0);
    const admin = new SQL({ url: PG_ADMIN_URL, max: 1 });
    await admin.unsafe(`DROP DATABASE "${database.name}" WITH (FORCE)`);
    await admin.unsafe(`CREATE DATABASE "${database.name}"`);
    await admin.close();
    run(["pg_restore", "--no-owner", `--dbname=${database.url}`, dump]);
    // 3. A new epoch. 4. Start the nodes.
    restoredEpoch = await newEpoch();
    expect(restoredEpoch).not.toBe(oldEpoch);
    cluster.nodes[0] = await cluster.node();
    cluster.nodes[1] = await cluster.node();

    // The restored log: the dump's events under their seqs, in the new epoch, which connect names.
    const restored = await events(1, alice.token);
    expect(restored).toEqual({ ...dumped, epoch: restoredEpoch });
    const fresh = await cluster.ws(1, alice.token);
    expect(fresh.all("connect")[0]!.data.epoch).toBe(restoredEpoch);
    fresh.close();

    // It grows past the position the client saw on the old timeline…
    await send(0, 10, "restored");
    const grown = (await events(0, alice.token)).items;
    const end = grown.at(-1)!.seq;
    expect(end).toBeGreaterThan(newer);
    // …and that position, with its epoch, starts over (nothing replayed), on the socket and over REST.
    const ws = await TestSocket.connect(`${cluster.wsUrl(0, alice.token)}&since=${newer}&epoch=${oldEpoch}`);
    expect(ws.all("connect")[0]!.data.epoch).toBe(restoredEpoch);
    expect(ws.all("message.receive")).toHaveLength(0);
    expect(ws.all("sync.complete")).toHaveLength(0);
    expect(ws.all("sync.reset")[0]!.data).toEqual({ last_seq: end, epoch: restoredEpoch });
    ws.close();
    const rest = await cluster.api(0, "GET", `/api/events?since=${newer}&epoch=${oldEpoch}`, alice.token);
    expect(rest.status).toBe(410);
    expect(rest.body.error).toMatchObject({ code: "sync_reset", details: { last_seq: end, epoch: restoredEpoch } });
    // The new epoch resumes as usual.
    const resumed = await events(0, alice.token, `since=${newer}&epoch=${restoredEpoch}`);
    expect(resumed.items).toEqual(grown.filter((e) => e.seq > newer));
  }, 60_000);

  test("a node left running when parley new-epoch runs notices at its next safety poll: a fatal line, exit 1; started again, it names the new epoch", async () => {
    const before = await cluster.ws(1, alice.token);
    expect(before.all("connect")[0]!.data.epoch).toBe(restoredEpoch);
    const epoch = await newEpoch();
    for (const node of cluster.nodes) {
      const code = await Promise.race([node!.proc.exited, Bun.sleep(10_000).then(() => "still running")]);
      expect(code).toBe(1);
      await node!.stop(); // (gone already: reads the rest of its log)
      const fatal = node!.lines.find((l) => l.level === "fatal");
      expect(fatal).toMatchObject({ epoch_was: restoredEpoch, epoch });
      expect(fatal!.msg).toContain("parley new-epoch");
      expect(node!.lines.at(-1)!.msg).toBe("stopped");
    }
    // Its clients were let go (they reconnect, elsewhere or to it started again).
    expect((await before.waitClosed()).code).not.toBe(1006);
    cluster.nodes[0] = await cluster.node();
    const after = await cluster.ws(0, alice.token);
    expect(after.all("connect")[0]!.data.epoch).toBe(epoch);
    after.close();
  }, 60_000);
});
