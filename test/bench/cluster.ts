/**
 * The cluster scenario (`bun run bench -- --only=cluster`, never part of `--quick`): the
 * REST send into groups of 10, the fan-out to one group and the connect, each against
 * (a) one node in single mode (SQLite), (b) one cluster node and (c) two cluster nodes, on
 * PostgreSQL, NATS and, when used, Redis: servers of the benchmark's own on 127.0.0.1
 * (PostgreSQL made with initdb; `--pg=<admin url>` uses a given server instead), so that
 * their CPU, WAL and connections are this run's alone; a fresh database for each
 * configuration, created and dropped here.
 * With two nodes every delivery crosses nodes: a group's messages go through one node and
 * its members listen on the other; the fan-out's messages alternate between the nodes and
 * its members are split between them. With two nodes, "follow" sends and listens on node A
 * only: node B's CPU is what following the log costs a node. Reported per unit of work:
 * Parley's CPU (the nodes summed, and each node's), PostgreSQL's (the database's backends,
 * and apart the instance's background processes), NATS's, Redis's, the WAL written, the
 * storage per row, and the ratios to single mode. Every delivery is checked to arrive
 * exactly once. README, "Cluster mode: cost and sizing", has a run and what it means.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connections, sends } from "./scenarios";
import { parleyCommand, startParley, type ServerUnderTest } from "./lib/server";
import { postgresMeter, ProcessCpu } from "./lib/services";
import { round } from "./lib/stats";
import { createTestDatabase, NATS_TEST_URL, PG_ADMIN_URL, reachable } from "../services";
import { ownNats, ownPostgres, ownRedis } from "../own-services";

export interface ClusterLoad {
  send: { groups: number; members: number; rate: number; seconds: number };
  fanout: { members: number; rate: number; seconds: number };
  sockets: number;
  /** Sent first, unmeasured, into the same groups: the JIT's first compiles stay out of the figures. */
  warmupSeconds: number;
  rounds: number;
  /** Which parts to run (default all; "follow" runs with two nodes only). */
  parts: ClusterPart[];
  /** "own": a PostgreSQL instance of the bench's own (the default; the machine's TEST_PG_URL when it cannot start one); or a server's admin URL. */
  pg: string;
  /** "auto": Redis only if this build refuses cluster mode without REDIS_URL; "own": a Redis of the bench's own; "none"; or a URL. */
  redis: string;
}

type Summary = Record<string, any>;
export type ClusterPart = "send" | "fanout" | "follow" | "connect";
export const CLUSTER_PARTS: ClusterPart[] = ["send", "fanout", "follow", "connect"];
const CONFIGS = ["single", "1 node", "2 nodes"] as const;
type ConfigName = (typeof CONFIGS)[number];

const SECRET = "bench-cluster-secret-of-at-least-32-characters";

/** Whether this build refuses cluster mode without REDIS_URL (a configuration error: exit 2 naming it). */
export function needsRedis(natsUrl: string): boolean {
  const dir = mkdtempSync(join(tmpdir(), "bench-probe-"));
  try {
    const { REDIS_URL: _, ...env } = process.env;
    const probe = Bun.spawnSync(parleyCommand(), {
      env: { ...env, DATA_DIR: dir, PORT: "1", DATABASE_URL: "postgres://probe@127.0.0.1:1/probe", NATS_URL: natsUrl, JWT_SECRET: SECRET },
      stdout: "ignore",
      stderr: "pipe",
      timeout: 10_000,
    });
    return probe.exitCode === 2 && probe.stderr.toString().includes("REDIS_URL");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** N Parley nodes on one fresh database, measured as one server, with the services' meters. */
async function startCluster(count: number, pgAdmin: string, nats: Service, redis: Service | undefined): Promise<ServerUnderTest & { sizes: () => Promise<Record<string, { bytes: number; rows: number }>> }> {
  const database = await createTestDatabase("parley_bench", undefined, pgAdmin);
  const nodes: ServerUnderTest[] = [];
  let pg: Awaited<ReturnType<typeof postgresMeter>> | undefined;
  try {
    const env = {
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      ...(redis ? { REDIS_URL: redis.url } : {}),
      JWT_SECRET: SECRET,
      CLUSTER_NAME: `bench${process.pid}${Date.now().toString(36)}`,
    };
    // The first migrates the database; then the others.
    nodes.push(await startParley(env));
    nodes.push(...(await Promise.all(Array.from({ length: count - 1 }, () => startParley(env)))));
    pg = await postgresMeter(pgAdmin, database.name);
    if (!pg.visible) console.error("note: PostgreSQL's processes are not visible from here: its CPU is not measured");
  } catch (e) {
    for (const n of nodes) await n.stop();
    await pg?.close();
    await database.drop();
    throw e;
  }
  const meter = pg;
  return {
    ...nodes[0]!,
    nodes,
    wsBases: nodes.flatMap((n) => n.wsBases),
    stats: () => {
      const all = nodes.map((n) => n.stats());
      return { cpu_s: all.reduce((s, x) => s + x.cpu_s, 0), rss_mb: round(all.reduce((s, x) => s + x.rss_mb, 0), 2) };
    },
    services: async () => {
      const pgWindow = await meter.meter();
      const nats_ = nats.pid ? new ProcessCpu(() => [nats.pid!]) : undefined;
      const redis_ = redis?.pid ? new ProcessCpu(() => [redis.pid!]) : undefined;
      return async () => ({
        ...(await pgWindow()),
        ...(nats_ ? { nats_cpu_s: nats_.stop() } : {}),
        ...(redis_ ? { redis_cpu_s: redis_.stop() } : {}),
      });
    },
    sizes: () => meter.sizes(database.url),
    stop: async () => {
      for (const n of nodes) await n.stop();
      await meter.close();
      await database.drop();
    },
  };
}

/** Each service's total over the window as per unit: µs of CPU, bytes of WAL. */
function perUnit(services: Record<string, number> | undefined, units: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(services ?? {})) {
    if (k.endsWith("_cpu_s")) out[k.replace(/_cpu_s$/, "_cpu_us")] = round((v / Math.max(units, 1)) * 1e6, 3);
    else if (k.startsWith("wal_bytes")) out[k] = round(v / Math.max(units, 1), 0);
  }
  return out;
}

/** Parley and the services per unit of work, and their CPU total. */
function costs(parleyCpuS: number, services: Record<string, number> | undefined, units: number) {
  const parts = { parley_cpu_us: round((parleyCpuS / Math.max(units, 1)) * 1e6, 3), ...perUnit(services, units) };
  const cpu = Object.entries(parts).filter(([k]) => k.endsWith("_cpu_us")).reduce((s, [, v]) => s + v, 0);
  return { ...parts, total_cpu_us: round(cpu, 3) };
}

/** A service the bench runs itself: its URL, the process whose CPU is counted, how to stop it. */
interface Service {
  url: string;
  pid?: number;
  dispose?: () => Promise<void>;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts a service of the bench's own, or says why not (the program is missing, most likely). */
async function own<T>(what: string, start: () => Promise<T>): Promise<T | undefined> {
  try {
    return await start();
  } catch (e) {
    console.error(`note: no ${what} of the bench's own (${e instanceof Error ? e.message.split("\n")[0] : e})`);
    return undefined;
  }
}

export async function clusterScenario(load: ClusterLoad, report: (r: Summary) => Summary, load_: () => string): Promise<string[]> {
  const started: Service[] = [];
  try {
    const ownPg = load.pg === "own" ? await own("PostgreSQL", () => ownPostgres({ durable: true })) : undefined;
    if (ownPg) started.push(ownPg);
    const pgAdmin = ownPg?.url ?? (load.pg === "own" ? PG_ADMIN_URL : load.pg);
    if (load.pg === "own" && !ownPg) console.error(`note: the cluster uses the PostgreSQL server at ${new URL(pgAdmin).host} (TEST_PG_URL), shared with its other sessions`);
    if (!(await reachable(pgAdmin))) {
      const why = `cluster scenario: PostgreSQL at ${new URL(pgAdmin).host} did not answer`;
      if (process.env.CI === "true") throw new Error(why);
      console.error(`SKIPPED ${why}`);
      return [];
    }
    const natsOwn = await own("nats-server", () => ownNats({ copy: true }));
    if (natsOwn) started.push(natsOwn);
    else console.error(`note: the cluster uses NATS at ${NATS_TEST_URL} (TEST_NATS_URL), its CPU not counted`);
    const nats: Service = natsOwn ? { url: natsOwn.url, pid: natsOwn.pid } : { url: NATS_TEST_URL };
    const wantRedis = load.redis === "auto" ? needsRedis(nats.url) : load.redis !== "none";
    let redis: Service | undefined;
    if (wantRedis && (load.redis === "auto" || load.redis === "own")) {
      redis = await own("redis-server", ownRedis);
      if (!redis) throw new Error("cluster scenario: this build needs REDIS_URL and no redis-server could start here (--redis=<url>)");
      started.push(redis);
    } else if (wantRedis) redis = { url: load.redis };
    console.error(`cluster scenario: NATS ${nats.url}${natsOwn ? " (own)" : ""}, Redis ${redis ? `${redis.url}${redis.pid ? " (own)" : ""}` : "not used"}, PostgreSQL ${new URL(pgAdmin).host}${ownPg ? " (own instance)" : ""}, a database made for each configuration`);

    const runs: Record<ConfigName, Summary[]> = { single: [], "1 node": [], "2 nodes": [] };
    for (let r = 0; r < load.rounds; r++) {
      for (const config of CONFIGS) {
        const loadAtStart = load_();
        const sut = config === "single" ? await startParley() : await startCluster(config === "1 node" ? 1 : 2, pgAdmin, nats, redis);
        try {
          const rows = await measure(sut, load);
          // A server of the bench's own that stopped meanwhile leaves the figures incomplete.
          for (const [name, s] of [["NATS", nats], ["Redis", redis]] as const)
            if (s?.pid && !alive(s.pid)) throw new Error(`cluster scenario: the bench's ${name} server (pid ${s.pid}) stopped during the ${config} run`);
          const load_average = `${loadAtStart} → ${load_()}`;
          for (const row of rows) runs[config].push(report({ ...row, server: config, round: r + 1, load_average }));
        } finally {
          await sut.stop();
        }
      }
    }
    return table(runs, load, !ownPg);
  } finally {
    for (const s of started.reverse()) await s.dispose?.();
  }
}

/** The three scenarios against one configuration; a row for each. */
async function measure(sut: ServerUnderTest, load: ClusterLoad): Promise<Summary[]> {
  const rows: Summary[] = [];
  const warm = { warmupSeconds: load.warmupSeconds, afterWarmupMs: 1000 };
  if (load.parts.includes("send")) {
    // A group's messages go through node g, its members listen on node g + 1.
    const sizes = "sizes" in sut ? (sut as Awaited<ReturnType<typeof startCluster>>).sizes : undefined;
    const empty = await sizes?.();
    const send = await sends(sut, { name: "cluster_send", via: "rest", ...load.send, ...warm, sendNode: (g) => g, receiveNode: (g) => g + 1 });
    const full = await sizes?.();
    // What each new row took, indexes included (the tables' first pages are in `empty`).
    const storage = empty && full ? Object.fromEntries(Object.entries(full).map(([t, f]) => [t, { rows: f.rows - (empty[t]?.rows ?? 0), bytes_per_row: Math.round((f.bytes - (empty[t]?.bytes ?? 0)) / Math.max(f.rows - (empty[t]?.rows ?? 0), 1)) }])) : undefined;
    rows.push({ ...send, per_message: costs(send.server_cpu_s, send.services, send.sent), per_delivery: costs(send.server_cpu_s, send.services, send.deliveries), ...(storage ? { pg_storage: storage } : {}) });
  }
  if (load.parts.includes("fanout")) {
    // Messages alternate between the nodes; members are split between them.
    const fanout = await sends(sut, { name: "cluster_fanout", via: "rest", groups: 1, ...load.fanout, ...warm, sendNode: (_, i) => i, receiveNode: (_, m) => m });
    rows.push({ ...fanout, per_message: costs(fanout.server_cpu_s, fanout.services, fanout.sent), per_delivery: costs(fanout.server_cpu_s, fanout.services, fanout.deliveries) });
  }
  if (load.parts.includes("follow") && (sut.nodes?.length ?? 0) > 1) {
    // Everything on node 0: node 1 only follows the log (and holds no socket). Its CPU per
    // message is what every node pays for every message of the cluster.
    const follow = await sends(sut, { name: "cluster_follow", via: "rest", ...load.send, ...warm, sendNode: () => 0, receiveNode: () => 0 });
    rows.push({ ...follow, per_message: costs(follow.server_cpu_s, follow.services, follow.sent), follower_cpu_us_per_message: follow.node_cpu_us_per_message?.[1] });
  }
  if (load.parts.includes("connect")) {
    const connect = await connections(sut, load.sockets);
    rows.push({ ...connect, scenario: "cluster_connect", per_connect: costs(connect.server_cpu_s, connect.services, connect.connected) });
  }
  return rows;
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};

/** The medians per configuration, side by side, with the ratios to single mode. */
function table(runs: Record<ConfigName, Summary[]>, load: ClusterLoad, sharedPg: boolean): string[] {
  const pick = (config: ConfigName, scenario: string, path: string[]) => median(runs[config].filter((r) => r.scenario === scenario).map((r) => path.reduce((o, k) => o?.[k], r as any)));
  const fmt = (x: number) => (Number.isNaN(x) ? "—" : x >= 100 ? String(Math.round(x)) : String(round(x, x >= 10 ? 1 : 2)));
  const ratio = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) || b === 0 ? "—" : `${round(a / b, 2)} ×`);
  const lines = [
    `\ncluster mode vs single mode, per unit of work (median of ${load.rounds} round${load.rounds > 1 ? "s" : ""}; send: ${load.send.groups} groups of ${load.send.members} at ${load.send.rate} msg/s for ${load.send.seconds} s; fan-out: 1 group of ${load.fanout.members} at ${load.fanout.rate} msg/s for ${load.fanout.seconds} s; connect: ${load.sockets} sockets, each user in 5 conversations)`,
    `${"".padEnd(44)}${CONFIGS.map((c) => c.padStart(10)).join("")}   1 node/single  2 nodes/single`,
  ];
  const row = (what: string, scenario: string, path: string[], withRatio = true) => {
    const v = CONFIGS.map((c) => pick(c, scenario, path));
    if (v.every((x) => Number.isNaN(x) || x === 0)) return;
    lines.push(`${what.padEnd(44)}${v.map((x) => fmt(x).padStart(10)).join("")}${withRatio ? `   ${ratio(v[1]!, v[0]!).padStart(13)}  ${ratio(v[2]!, v[0]!).padStart(14)}` : ""}`);
  };
  const block = (title: string, scenario: string, unit: string, key: string) => {
    row(`${title}: Parley CPU µs/${unit}`, scenario, [key, "parley_cpu_us"]);
    row(`  PostgreSQL backends CPU µs/${unit}`, scenario, [key, "pg_backends_cpu_us"], false);
    row(`  PostgreSQL background CPU µs/${unit}${sharedPg ? " (shared)" : ""}`, scenario, [key, "pg_aux_cpu_us"], false);
    row(`  NATS CPU µs/${unit}`, scenario, [key, "nats_cpu_us"], false);
    row(`  Redis CPU µs/${unit}`, scenario, [key, "redis_cpu_us"], false);
    row(`  all CPU µs/${unit}`, scenario, [key, "total_cpu_us"]);
    row(`  WAL bytes/${unit}`, scenario, [key, "wal_bytes"], false);
    row(`  WAL bytes/${unit} (server-wide)`, scenario, [key, "wal_bytes_server_wide"], false);
  };
  block("send", "cluster_send", "msg", "per_message");
  row("  node A Parley CPU µs/msg", "cluster_send", ["node_cpu_us_per_message", "0"], false);
  row("  node B Parley CPU µs/msg", "cluster_send", ["node_cpu_us_per_message", "1"], false);
  row("  msg/s", "cluster_send", ["sent_per_s"]);
  row("  e2e p50 ms", "cluster_send", ["e2e_ms", "p50"], false);
  row("  e2e p99 ms", "cluster_send", ["e2e_ms", "p99"], false);
  block("fan-out", "cluster_fanout", "delivery", "per_delivery");
  row("  Parley CPU µs/msg", "cluster_fanout", ["per_message", "parley_cpu_us"]);
  row("  all CPU µs/msg", "cluster_fanout", ["per_message", "total_cpu_us"]);
  row("  deliveries/s", "cluster_fanout", ["deliveries_per_s"]);
  row("  e2e p50 ms", "cluster_fanout", ["e2e_ms", "p50"], false);
  row("  e2e p99 ms", "cluster_fanout", ["e2e_ms", "p99"], false);
  row("follow: node B (no socket) Parley CPU µs/msg", "cluster_follow", ["follower_cpu_us_per_message"], false);
  row("  node A (every send and socket)", "cluster_follow", ["node_cpu_us_per_message", "0"], false);
  row("  PostgreSQL backends CPU µs/msg", "cluster_follow", ["per_message", "pg_backends_cpu_us"], false);
  block("connect", "cluster_connect", "connect", "per_connect");
  row("  connects/s", "cluster_connect", ["connects_per_s"]);
  row("  KB per socket (nodes' RSS)", "cluster_connect", ["server_kb_per_socket"]);
  // Per message written (W), per message each node follows (F), per delivery (D): a send
  // costs W + F + (group size) D, a fan-out message W + F + (its group's size) D.
  const fanExtra = load.fanout.members - load.send.members;
  for (const config of CONFIGS) {
    const send = pick(config, "cluster_send", ["per_message", "parley_cpu_us"]);
    const fan = pick(config, "cluster_fanout", ["per_message", "parley_cpu_us"]);
    const follow = config === "single" ? 0 : pick("2 nodes", "cluster_follow", ["follower_cpu_us_per_message"]);
    if (config === "2 nodes" || Number.isNaN(send) || Number.isNaN(fan)) continue;
    const d = (fan - send) / fanExtra;
    const w = send - load.send.members * d - (Number.isNaN(follow) ? 0 : follow);
    lines.push(`derived, ${config}: Parley CPU per delivery ${fmt(d)} µs, per message written ${fmt(w)} µs${config === "single" ? "" : Number.isNaN(follow) ? " (with its follow)" : `, per message followed, on every node ${fmt(follow)} µs`}`);
  }
  const storage = runs["1 node"].find((r) => r.pg_storage)?.pg_storage;
  if (storage)
    lines.push(`PostgreSQL storage written by the send (1 node, first round): ${Object.entries(storage as Record<string, { rows: number; bytes_per_row: number }>).map(([t, s]) => `${t} ${s.rows} rows, ${s.bytes_per_row} bytes/row with indexes`).join("; ")}`);
  lines.push(`load average per round and configuration: ${CONFIGS.map((c) => `${c}: ${[...new Set(runs[c].map((r) => r.load_average))].join(", ")}`).join("; ")}`);
  return lines;
}
