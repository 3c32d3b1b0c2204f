/**
 * The benchmark: `bun run bench` (full, several minutes) or `bun run bench -- --quick`
 * (every scenario at a small size, well under a minute; CI runs it to check correctness,
 * not speed). `--only=a,b` picks scenarios; `--receiver-threads=N` receives the fan-out on
 * N worker threads. One JSON line per scenario, then a table.
 */
import { existsSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { coldStart, connections, resumeStorm, sends } from "./scenarios";
import { uploads } from "./uploads";
import { reenterInPrivateNetwork } from "./lib/netns";
import { root, startBaseline, startParley, type ServerUnderTest } from "./lib/server";

await reenterInPrivateNetwork();

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
const want = (name: string) => !only || only.includes(name);

if (!existsSync(join(root, "dist", "parley"))) {
  console.error("building dist/parley …");
  const b = Bun.spawnSync([process.execPath, "run", "build"], { cwd: root, stdout: "ignore", stderr: "inherit" });
  if (b.exitCode !== 0) process.exit(1);
}

const Q = quick
  ? { groups: 10, members: 5, rate: 500, seconds: 2, latencyRate: 200, fanMembers: 100, fanRate: 50, fanSeconds: 2, conns: 400, storm: 200, missed: 20, capacityRate: 2000 }
  : { groups: 100, members: 10, rate: 15_000, seconds: 30, latencyRate: 2000, fanMembers: 1000, fanRate: 1000, fanSeconds: 10, conns: 19_000, storm: 5000, missed: 100, capacityRate: 60_000 };

const results: Record<string, unknown>[] = [];
const report = (r: Record<string, unknown>) => {
  results.push(r);
  console.log(JSON.stringify(r));
};

async function withServer<T>(start: () => Promise<ServerUnderTest>, fn: (s: ServerUnderTest) => Promise<T>): Promise<T> {
  const sut = await start();
  try {
    return await fn(sut);
  } finally {
    await sut.stop();
  }
}

console.error(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, bun ${Bun.version}${quick ? " (quick)" : ""}`);

const capacity = { groups: Q.groups, members: Q.members, rate: Q.capacityRate, seconds: quick ? 2 : 10, maxInFlight: 256 };
if (want("baseline")) report(await withServer(startBaseline, (s) => sends(s, { name: "capacity_rest", via: "rest", ...capacity })));
if (want("capacity")) report(await withServer(() => startParley(), (s) => sends(s, { name: "capacity_rest", via: "rest", ...capacity })));
if (want("sustained")) report(await withServer(() => startParley(), (s) => sends(s, { name: "sustained_rest", via: "rest", groups: Q.groups, members: Q.members, rate: Q.rate, seconds: Q.seconds })));
if (want("latency")) report(await withServer(() => startParley(), (s) => sends(s, { name: "latency_rest", via: "rest", groups: Q.groups, members: Q.members, rate: Q.latencyRate, seconds: quick ? 2 : 10 })));
if (want("ws")) report(await withServer(() => startParley(), (s) => sends(s, { name: "capacity_ws", via: "ws", ...capacity })));
// A million deliveries a second is more than one client thread takes in; on a machine with
// cores to spare, --receiver-threads=N spreads the receivers (on 2 cores it only starves the server).
const receiverThreads = Number(args.find((a) => a.startsWith("--receiver-threads="))?.slice(19) ?? 0);
if (want("fanout")) report(await withServer(() => startParley(), (s) => sends(s, { name: "fanout", via: "rest", groups: 1, members: Q.fanMembers, rate: Q.fanRate, seconds: Q.fanSeconds, receiverThreads })));
if (want("baseline")) report(await withServer(startBaseline, (s) => connections(s, Q.conns)));
if (want("connections")) report(await withServer(() => startParley(), (s) => connections(s, Q.conns)));
if (want("resume")) report(await withServer(() => startParley({ MAX_GROUP_MEMBERS: "100000" }), (s) => resumeStorm(s, Q.storm, Q.missed)));
if (want("coldstart")) report(await coldStart(quick ? 2 : 5));
const uploadLoad = quick
  ? { sizes: [{ bytes: 1024 * 1024, count: 3 }, { bytes: 4 * 1024 * 1024, count: 2 }], images: 2, parallel: { clients: 3, bytes: 4 * 1024 * 1024 } }
  : { sizes: [{ bytes: 1024 * 1024, count: 50 }, { bytes: 25 * 1024 * 1024, count: 8 }], images: 10, parallel: { clients: 10, bytes: 25 * 1024 * 1024 } };
if (want("uploads")) report(await withServer(() => startParley({ UPLOADS_PER_MINUTE: "1000000", UPLOAD_QUOTA_BYTES: String(1024 ** 4) }), (s) => uploads(s, uploadLoad)));

// A short table, then the correctness verdict (what --quick in CI checks).
const rows = results.map((r: any) => {
  const rate = r.scenario === "uploads" ? `${r.throughput.map((t: any) => `${t.size_mib} MiB ${t.upload_mb_s} MB/s (${t.ratio}× raw)`).join(", ")}; thumb ${r.image.thumbnail_ms} ms; +${r.parallel.rss_growth_mb} MB RSS` : r.sent_per_s ? `${r.sent_per_s} msg/s, ${r.deliveries_per_s} deliveries/s` : r.connects_per_s ? `${r.connects_per_s} connects/s, ${r.server_kb_per_socket} KB/socket` : r.all_synced_s !== undefined ? `${r.completed}/${r.sockets} synced in ${r.all_synced_s} s` : `${r.start_to_health_ms?.p50} ms to /health`;
  const lat = r.e2e_ms ? `p50 ${r.e2e_ms.p50} / p99 ${r.e2e_ms.p99} / max ${r.e2e_ms.max} ms` : "";
  const ok = r.missing === 0 || r.missing === undefined ? "" : `MISSING ${r.missing}`;
  return `${String(r.scenario).padEnd(16)} ${String(r.server ?? "parley").padEnd(9)} ${rate.padEnd(44)} ${lat.padEnd(36)} ${r.client_bottleneck ? "client-bound " : ""}${ok}`;
});
console.error("\n" + rows.join("\n"));

const problems = results.flatMap((r: any) => {
  const p: string[] = [];
  if (r.missing) p.push(`${r.scenario}/${r.server}: ${r.missing} deliveries missing`);
  if (r.duplicates) p.push(`${r.scenario}/${r.server}: ${r.duplicates} duplicate deliveries`);
  if (r.errors) p.push(`${r.scenario}/${r.server}: ${r.errors} send errors`);
  if (r.holding_after_3s !== undefined && r.holding_after_3s !== r.sockets) p.push(`connections: ${r.sockets - r.holding_after_3s} sockets not holding`);
  if (r.completed !== undefined && (r.completed !== r.sockets || r.wrong_replay)) p.push(`resume_storm: ${r.sockets - r.completed} not synced, ${r.wrong_replay} wrong replays`);
  return p;
});
if (problems.length) {
  console.error("\nbenchmark correctness problems:\n  " + problems.join("\n  "));
  process.exit(1);
}
