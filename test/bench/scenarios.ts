/** The benchmark scenarios. Each returns one JSON-able summary. */
import { join } from "node:path";
import { clientMeter, createGroups, Deliveries, drain, epochNow, openSocket, pool, registerUsers, sendOpenLoop, wsUrl, type Group } from "./lib/load";
import { startParley, type ServerUnderTest } from "./lib/server";
import { cpuSecondsAllThreads, cpuSecondsByThread, fileSizeMb, percentiles, round } from "./lib/stats";

const PAD = "x".repeat(40);

const connectAll = pool;

export interface SendScenario {
  name: string;
  groups: number;
  members: number;
  rate: number;
  seconds: number;
  via: "rest" | "ws";
  maxInFlight?: number;
  /** REST only: receive on this many worker threads instead of the main thread. */
  receiverThreads?: number;
  /** The text after a message's `#i#` mark (default: 40 × "x"). */
  text?: (i: number) => string;
  /** Awaited after the last delivery, inside the measured server CPU (e.g. until background work is done). */
  settle?: (sut: ServerUnderTest) => Promise<unknown>;
  /**
   * Also report the server CPU per message of each kind of thread (live threads, by name)
   * and of the whole process, ended threads included (10 ms ticks: for long runs).
   */
  byThread?: boolean;
  /** Send this long first, unmeasured (then `afterWarmupMs`), so that one-off costs (JIT compiles) stay out. */
  warmupSeconds?: number;
  /** How long to wait after the warm-up before measuring. */
  afterWarmupMs?: number;
  /** With `sut.nodes`: the node message i of group g is sent through, and the node member m of group g listens on (indexes, taken modulo the node count). */
  sendNode?: (g: number, i: number) => number;
  receiveNode?: (g: number, m: number) => number;
  /**
   * Parley only: every message (warm-up and measured) carries one attachment of its own, a
   * small file its sender uploaded before the warm-up (a send takes only unattached uploads).
   */
  attach?: boolean;
}

/** Node k of a server under test (itself when it is one process). */
const nodeOf = (sut: ServerUnderTest, k: number | undefined) => (sut.nodes && k !== undefined ? sut.nodes[k % sut.nodes.length]! : sut);

/** Posts a message to a worker and resolves with its next reply of the given kind. */
function ask<T>(worker: Worker, message: unknown, kind: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (event: MessageEvent) => {
      if (event.data.kind !== kind) return;
      worker.removeEventListener("message", onMessage);
      resolve(event.data as T);
    };
    worker.addEventListener("message", onMessage);
    worker.postMessage(message);
  });
}

/** Sends into groups whose members are all online; checks every delivery arrives once. */
export async function sends(sut: ServerUnderTest, s: SendScenario) {
  const users = await registerUsersFor(sut, s.groups * s.members);
  const groups = await createGroups(sut, Array.from({ length: s.groups }, (_, g) => users.slice(g * s.members, (g + 1) * s.members)));
  const total = Math.floor(s.rate * s.seconds);
  const threads = s.via === "rest" ? (s.receiverThreads ?? 0) : 0;
  const d = new Deliveries(total, s.members, threads > 0);
  const sockets: WebSocket[][] = groups.map(() => []);
  const workers = Array.from({ length: threads }, () => new Worker(new URL("./lib/receiver.ts", import.meta.url).href));
  if (threads) {
    const shares: { url: string; member: number }[][] = workers.map(() => []);
    groups.forEach((group, g) => group.members.forEach((m, k) => shares[(g * s.members + k) % threads]!.push({ url: wsUrl(nodeOf(sut, s.receiveNode?.(g, k)), group, m), member: k })));
    await Promise.all(workers.map((w, k) => ask(w, { kind: "open", sockets: shares[k], messages: total, members: s.members }, "ready")));
  } else {
    await connectAll(s.groups * s.members, 100, async (k) => {
      const g = Math.floor(k / s.members);
      const m = k % s.members;
      sockets[g]![m] = await openSocket(wsUrl(nodeOf(sut, s.receiveNode?.(g, m)), groups[g]!, groups[g]!.members[m]!), d.handler(m));
    });
  }
  const warmupTotal = s.warmupSeconds ? Math.floor(s.rate * s.warmupSeconds) : 0;
  const files = s.attach ? await uploadFor(sut, groups, s, warmupTotal, total) : undefined;
  const attachOf = (phase: "warmup" | "measured", i: number) => files?.[phase][i];
  await Bun.sleep(200);
  // A WebSocket send is done when the sender's own socket receives the message.
  const echoes = new Map<number, () => void>();
  d.onArrival = (i, m) => {
    if (m === Math.floor(i / s.groups) % s.members) echoes.get(i)?.();
  };

  if (s.warmupSeconds) {
    const warmup = Math.floor(s.rate * s.warmupSeconds);
    // Marked `#w<i>#`, which the receivers do not count. Over WebSocket they are sent without
    // waiting (nothing tells when one is done): afterWarmupMs lets the server catch up.
    await sendOpenLoop({
      rate: s.rate,
      seconds: s.warmupSeconds,
      maxInFlight: s.maxInFlight ?? 256,
      deliveries: new Deliveries(warmup, s.members),
      send: (i) => {
        const [g, m, content] = [i % s.groups, Math.floor(i / s.groups) % s.members, `#w${i}#${s.text?.(i) ?? PAD}`];
        if (s.via === "rest") return sendRest(nodeOf(sut, s.sendNode?.(g, i)), groups[g]!, m, content, attachOf("warmup", i));
        sockets[g]![m]!.send(JSON.stringify({ type: "message.send", data: { conversation_id: groups[g]!.id, content, attachment_ids: attachOf("warmup", i) } }));
        return true;
      },
    });
    await s.settle?.(sut);
    // Its deliveries may still be on their way (they are not counted, but their work would be).
    if (s.afterWarmupMs) await Bun.sleep(s.afterWarmupMs);
  }
  const services = await sut.services?.();
  const before = sut.stats();
  const nodesBefore = sut.nodes?.map((n) => n.stats().cpu_s);
  const threadsBefore = s.byThread ? cpuSecondsByThread(sut.pid) : {};
  const allBefore = s.byThread ? cpuSecondsAllThreads(sut.pid) : 0;
  const meter = clientMeter();
  const sendStart = performance.now();
  const result = await sendOpenLoop({
    rate: s.rate,
    seconds: s.seconds,
    maxInFlight: s.maxInFlight ?? 256,
    deliveries: d,
    send: (i) => {
      const g = i % s.groups;
      const group = groups[g]!;
      const m = Math.floor(i / s.groups) % s.members;
      const pad = s.text?.(i) ?? PAD;
      const content = threads ? `#${i}#${epochNow().toFixed(3)}#${pad}` : `#${i}#${pad}`;
      if (s.via === "ws") {
        sockets[g]![m]!.send(JSON.stringify({ type: "message.send", data: { conversation_id: group.id, content, attachment_ids: attachOf("measured", i) } }));
        return new Promise<boolean>((resolve) => echoes.set(i, () => (echoes.delete(i), resolve(true))));
      }
      return sendRest(nodeOf(sut, s.sendNode?.(g, i)), group, m, content, attachOf("measured", i));
    },
  });
  const expected = result.sent * s.members;
  let [delivered, latencies, duplicates, lastArrival]: [number, Float64Array<ArrayBufferLike>, number, number] = [0, new Float64Array(0), 0, 0];
  if (threads) {
    // Poll the receiving threads until everything arrived or nothing more comes.
    let quietSince = performance.now();
    while (performance.now() - quietSince < 2000 && performance.now() - sendStart < s.seconds * 1000 + 20_000) {
      const counts = await Promise.all(workers.map((w) => ask<{ count: number }>(w, { kind: "count" }, "count")));
      const now = counts.reduce((sum, c) => sum + c.count, 0);
      if (now !== delivered) [delivered, quietSince, lastArrival] = [now, performance.now(), performance.now()];
      if (delivered >= expected) break;
      await Bun.sleep(50);
    }
    const results = await Promise.all(workers.map((w) => ask<{ count: number; duplicates: number; latencies: Float64Array }>(w, { kind: "finish" }, "result")));
    for (const w of workers) w.terminate();
    delivered = results.reduce((sum, r) => sum + r.count, 0);
    duplicates = results.reduce((sum, r) => sum + r.duplicates, 0);
    latencies = new Float64Array(delivered);
    let at = 0;
    for (const r of results) (latencies.set(r.latencies, at), (at += r.latencies.length));
  } else {
    await drain(d, expected);
    [delivered, latencies, duplicates, lastArrival] = [d.count, d.latencies.subarray(0, d.count), d.duplicates, d.lastArrival];
  }
  const client = meter();
  const settled = s.settle ? await s.settle(sut) : undefined;
  const after = sut.stats();
  const nodesAfter = sut.nodes?.map((n) => n.stats().cpu_s);
  const servicesUsed = await services?.();
  const threadsAfter = s.byThread ? cpuSecondsByThread(sut.pid) : {};
  const allAfter = s.byThread ? cpuSecondsAllThreads(sut.pid) : 0;
  const publish = sut.kind === "parley" ? await publishP99(sut) : undefined;
  for (const list of sockets) for (const ws of list) ws.close();
  const deliverySeconds = (lastArrival - sendStart) / 1000;
  const summary = {
    scenario: s.name,
    server: sut.kind,
    via: s.via,
    groups: s.groups,
    members_per_group: s.members,
    ...result,
    ...(settled !== undefined ? { settled } : {}),
    receiver_threads: threads,
    deliveries: delivered,
    deliveries_per_s: Math.round(delivered / Math.max(deliverySeconds, 0.001)),
    missing: expected - delivered,
    duplicates,
    e2e_ms: percentiles(latencies),
    // The server's own share: commit-to-published for a batch (an upper bucket bound).
    ...(publish ? { server_publish_ms_p99_at_most: publish } : {}),
    server_cpu_s: round(after.cpu_s - before.cpu_s, 3),
    // Server CPU per unit of work (what the ratios to the baseline compare).
    server_cpu_us_per_message: round(((after.cpu_s - before.cpu_s) / Math.max(result.sent, 1)) * 1e6, 1),
    server_cpu_us_per_delivery: round(((after.cpu_s - before.cpu_s) / Math.max(delivered, 1)) * 1e6, 3),
    ...(nodesBefore && nodesAfter ? { node_cpu_us_per_message: nodesAfter.map((cpu, k) => round(((cpu - nodesBefore[k]!) / Math.max(result.sent, 1)) * 1e6, 1)) } : {}),
    ...(s.byThread ? { server_cpu_us_per_message_all_threads: round(((allAfter - allBefore) / Math.max(result.sent, 1)) * 1e6, 1) } : {}),
    ...(s.byThread ? { server_cpu_us_per_message_by_thread: Object.fromEntries(Object.entries(threadsAfter).map(([name, cpu]) => [name, round(((cpu - (threadsBefore[name] ?? 0)) / Math.max(result.sent, 1)) * 1e6, 1)])) } : {}),
    server_rss_mb: { before: before.rss_mb, after: after.rss_mb },
    ...(servicesUsed ? { services: servicesUsed } : {}),
    wal_mb: fileSizeMb(join(sut.dataDir, sut.kind === "parley" ? "parley.db-wal" : "baseline.db-wal")),
    ...client,
    // The client process's threads together, against the cores it could have had.
    // (Sends held back by the in-flight cap are the server's doing, not the client's.)
    client_bottleneck: client.client_cpu_share > 0.9 * (1 + threads) || client.client_cpu_share > 1.8 || result.behind_schedule > s.rate * 0.05,
  };
  return summary;
}

/** p99 of parley_publish_after_commit_seconds, as the upper bound of its histogram bucket, in ms. */
async function publishP99(sut: ServerUnderTest): Promise<number | undefined> {
  const text = await (await fetch(`${sut.base}/metrics`)).text();
  const buckets = [...text.matchAll(/^parley_publish_after_commit_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  const total = buckets.find(([le]) => le === "+Inf")?.[1];
  if (!total) return undefined;
  const hit = buckets.find(([, n]) => n >= total * 0.99);
  return hit && hit[0] !== "+Inf" ? Number(hit[0]) * 1000 : undefined;
}

async function registerUsersFor(sut: ServerUnderTest, count: number) {
  if (sut.kind === "baseline") return Array.from({ length: count }, (_, i) => ({ token: "", userId: `u${i}` }));
  return registerUsers(sut, count, "b");
}

function sendRest(sut: ServerUnderTest, group: Group, m: number, content: string, attachment?: string): Promise<boolean> {
  if (sut.kind === "baseline")
    return fetch(`${sut.base}/send/${group.id}`, { method: "POST", body: JSON.stringify({ content }) }).then((r) => r.status === 201);
  return fetch(`${sut.base}/api/conversations/${group.id}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${group.members[m]!.token}`, "content-type": "application/json" },
    body: JSON.stringify(attachment ? { content, attachment_ids: [attachment] } : { content }),
  }).then((r) => r.status === 201);
}

/**
 * One small file per message, uploaded by the member who sends it (message i of the warm-up
 * and of the measured part goes to group i % groups, from member ⌊i / groups⌋ % members).
 */
async function uploadFor(sut: ServerUnderTest, groups: Group[], s: SendScenario, warmup: number, measured: number) {
  if (sut.kind === "baseline") throw new Error("attach: Parley only");
  const upload = async (i: number) => {
    const member = groups[i % s.groups]!.members[Math.floor(i / s.groups) % s.members]!;
    const res = await fetch(`${sut.base}/api/uploads?filename=n${i}.txt`, {
      method: "POST",
      headers: { authorization: `Bearer ${member.token}`, "content-type": "text/plain" },
      body: `file ${i} ${PAD}`,
    });
    if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { id: string }).id;
  };
  return { warmup: await pool(warmup, 16, upload), measured: await pool(measured, 16, upload) };
}

const PORT_PRESSURE = 12_000;

/** Many authenticated sockets, each user in 5 conversations: connect rate and memory per socket. */
export async function connections(sut: ServerUnderTest, sockets: number, perUser = 20, warmup = 0, byThread = false) {
  const userCount = Math.ceil(sockets / perUser);
  const users = await registerUsersFor(sut, userCount);
  // Groups of 10 consecutive users starting at every second user: each user is in 5 of them.
  const groupCount = Math.ceil(userCount / 2);
  await createGroups(sut, Array.from({ length: groupCount }, (_, k) => Array.from({ length: Math.min(10, userCount) }, (_, j) => users[(2 * k + j) % userCount]!)));
  // Spread over the loopback addresses the client may use (see lib/netns.ts).
  const base = (i: number) => sut.wsBases[i % sut.wsBases.length]!;
  const url = (i: number) => (sut.kind === "baseline" ? `${base(i)}/ws?g=g${i % groupCount}` : `${base(i)}/ws/user?token=${users[i % userCount]!.token}`);
  /** One socket, resolved once its conversation.list (the second frame) arrived; null if refused or closed before. */
  const connectOne = (i: number, listed?: () => void) =>
    new Promise<WebSocket | null>((resolve) => {
      const ws = new WebSocket(url(i));
      ws.onmessage = (ev) => {
        if ((ev.data as string).startsWith('{"type":"conversation.list"')) {
          ws.onmessage = null;
          listed?.();
          resolve(ws);
        }
      };
      const fail = () => {
        if (ws.onmessage === null) return;
        ws.onmessage = null;
        resolve(null);
      };
      ws.onerror = fail;
      ws.onclose = fail;
    });
  await Bun.sleep(300);
  // Warm-up: `warmup` connects first, each closed once its list arrived (256 at a time, so the
  // heap never holds many): a server's first ten thousand connects also pay the JIT's one-off
  // compilation of the connect path (measured in-process: ~30 µs a connect on the JIT's
  // threads for Parley's first ~10,000, ~0 after; test/bench/connect-parts.ts), which is not
  // a cost per connect. Its CPU is reported too (`..._cold`).
  let cold: number | undefined;
  // Memory per socket is counted from the server as it was before the warm-up (conservative:
  // what the warm-up left behind, its JIT code and heap growth, counts too). Counted from
  // after it, RSS fell below that while the sockets were held, as the warm-up's garbage went.
  const start = sut.stats();
  if (warmup > 0) {
    let refused = 0;
    await connectAll(warmup, 256, async (i) => {
      const ws = await connectOne(i);
      if (!ws) return void refused++;
      // Until the server's close frame is back: closes the server has not seen yet still
      // count against MAX_CONNECTIONS_PER_USER.
      await new Promise<void>((resolve) => {
        ws.onclose = () => resolve();
        ws.close();
      });
      return null;
    });
    cold = round(((sut.stats().cpu_s - start.cpu_s) / warmup) * 1e6, 1);
    if (refused) throw new Error(`connections/${sut.kind}: ${refused} of ${warmup} warm-up connects failed`);
    await Bun.sleep(1000); // the closes, and the presence grace of the users that went offline
  }
  const services = await sut.services?.();
  const threadsBefore = byThread ? cpuSecondsByThread(sut.pid) : {};
  const before = sut.stats();
  const meter = clientMeter();
  const t0 = performance.now();
  let failed = 0;
  const doneAt: number[] = [];
  const open = await connectAll(sockets, 256, async (i) => {
    const ws = await connectOne(i, () => doneAt.push(performance.now() - t0));
    if (!ws) failed++;
    return ws;
  });
  const connectSeconds = (performance.now() - t0) / 1000;
  const connected = sut.stats();
  const threadsAfter = byThread ? cpuSecondsByThread(sut.pid) : {};
  const servicesUsed = await services?.();
  await Bun.sleep(3000);
  const after = sut.stats();
  const holding = open.filter((ws) => ws && ws.readyState === WebSocket.OPEN).length;
  const client = meter();
  for (const ws of open) ws?.close();
  await Bun.sleep(500);
  return {
    scenario: "connections",
    server: sut.kind,
    sockets,
    destination_addresses: sut.wsBases.length,
    users: userCount,
    conversations_per_user: 5,
    connected: sockets - failed,
    holding_after_3s: holding,
    connects_per_s: Math.round((sockets - failed) / connectSeconds),
    // Past ~14,000 sockets to one address and port, Linux's connect() scans the (full) even
    // half of the ephemeral range for every new socket: the client's kernel time
    // (client_kernel_s) then sets the pace. The rate before that point:
    ...(doneAt.length >= PORT_PRESSURE ? { connects_per_s_first_12k: Math.round(PORT_PRESSURE / (doneAt[PORT_PRESSURE - 1]! / 1000)) } : {}),
    server_cpu_us_per_connect: round(((connected.cpu_s - before.cpu_s) / sockets) * 1e6, 1),
    ...(byThread ? { server_cpu_us_per_connect_by_thread: Object.fromEntries(Object.entries(threadsAfter).map(([name, cpu]) => [name, round(((cpu - (threadsBefore[name] ?? 0)) / sockets) * 1e6, 1)])) } : {}),
    ...(cold !== undefined ? { warmup_connects: warmup, server_cpu_us_per_connect_cold: cold } : {}),
    connect_seconds: round(connectSeconds),
    server_cpu_s: round(connected.cpu_s - before.cpu_s, 3),
    server_rss_mb: { before: start.rss_mb, after: after.rss_mb },
    server_kb_per_socket: round(((after.rss_mb - start.rss_mb) * 1024) / sockets, 2),
    ...(servicesUsed ? { services: servicesUsed } : {}),
    ...client,
  };
}

/** Every socket reconnects at once with `since` some events back. */
export async function resumeStorm(sut: ServerUnderTest, sockets: number, missed: number, perUser = 20) {
  const userCount = Math.ceil(sockets / perUser);
  const users = await registerUsers(sut, userCount, "r");
  const [group] = await createGroups(sut, [users]);
  const positions: number[] = new Array(sockets);
  const first = await connectAll(sockets, 256, async (i) => {
    return new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`${sut.wsBase}/ws/user?token=${users[i % userCount]!.token}`);
      ws.onmessage = (ev) => {
        const f = JSON.parse(ev.data as string);
        if (f.type === "connect") positions[i] = f.data.last_seq;
        if (f.type === "conversation.list") resolve(ws);
      };
      // The storm needs every first socket: one that fails ends the run with a reason.
      ws.onclose = (ev) => reject(new Error(`resume storm setup: socket ${i} closed (${ev.code})`));
    });
  });
  await Promise.all(first.map((ws) => new Promise<void>((resolve) => ((ws.onclose = () => resolve()), ws.close()))));
  // The events they miss while away.
  for (let i = 0; i < missed; i++)
    await fetch(`${sut.base}/api/conversations/${group!.id}/messages`, { method: "POST", headers: { authorization: `Bearer ${users[i % userCount]!.token}` }, body: JSON.stringify({ content: `missed ${i}` }) });

  const meter = clientMeter();
  const t0 = performance.now();
  const done: number[] = [];
  let complete = 0;
  let wrong = 0;
  const failures: Record<string, number> = {};
  // Like the reference client: a socket refused (e.g. by the per-user cap while its old
  // socket's close is still in flight) tries again shortly.
  const connectResuming = (i: number, attempt = 0): Promise<WebSocket> =>
    new Promise<WebSocket>((resolve) => {
      let replayed = 0;
      let synced = false;
      const ws = new WebSocket(`${sut.wsBase}/ws/user?token=${users[i % userCount]!.token}&since=${positions[i]}`);
      ws.onmessage = (ev) => {
        const text = ev.data as string;
        if (text.startsWith('{"type":"message.receive"')) replayed++;
        else if (text.startsWith('{"type":"sync.complete"')) {
          synced = true;
          done.push(performance.now() - t0);
          complete++;
          if (replayed !== missed) wrong++;
        } else if (text.startsWith('{"type":"conversation.list"')) resolve(ws);
      };
      ws.onclose = (ev) => {
        if (synced) return;
        failures[ev.code] = (failures[ev.code] ?? 0) + 1;
        if (attempt < 5) setTimeout(() => connectResuming(i, attempt + 1).then(resolve), 50 * 2 ** attempt);
        else resolve(ws);
      };
    });
  const again = await Promise.all(Array.from({ length: sockets }, (_, i) => connectResuming(i)));
  const client = meter();
  for (const ws of again) ws.close();
  return {
    scenario: "resume_storm",
    server: sut.kind,
    sockets,
    missed_events: missed,
    completed: complete,
    wrong_replay: wrong,
    retried_after_close: failures,
    all_synced_s: round(Math.max(...done, 0) / 1000),
    sync_ms: percentiles(done, [50, 99]),
    ...client,
  };
}

/** Time from spawning dist/parley on an empty data directory to its first healthy /health. */
export async function coldStart(runs: number) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const sut = await startParley();
    times.push(sut.startMs);
    await sut.stop();
  }
  return { scenario: "cold_start", runs, start_to_health_ms: percentiles(times, [50, 100]) };
}

/**
 * Attachments on send (issue #17: a new feature's hot path, measured by the same bench): REST
 * sends that each carry one attachment (its links signed for every receiver, PROTOCOL §9)
 * against the same sends without, alternately on one server, with `idle` more sockets open
 * (users in none of the senders' groups, as on a real server: a group's message should cost
 * nothing per socket that does not hear it). Reports each kind's server CPU per message
 * (medians of the rounds) and their ratio.
 */
export async function attachmentSends(sut: ServerUnderTest, load: Omit<SendScenario, "name" | "via" | "attach">, idle: number, rounds: number) {
  const perUser = 10;
  const idleUsers = await registerUsersFor(sut, Math.ceil(idle / perUser));
  const held = await connectAll(idle, 100, (k) => openSocket(`${sut.wsBase}/ws/user?token=${idleUsers[k % idleUsers.length]!.token}`));
  const runs: { plain: Record<string, any>; attached: Record<string, any> }[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const plain = await sends(sut, { ...load, name: "attachments_plain", via: "rest" });
      const attached = await sends(sut, { ...load, name: "attachments_on", via: "rest", attach: true });
      runs.push({ plain, attached });
    }
  } finally {
    for (const ws of held) ws.close();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const plainCpu = median(runs.map((r) => r.plain.server_cpu_us_per_message));
  const attachedCpu = median(runs.map((r) => r.attached.server_cpu_us_per_message));
  const problems = runs.flatMap((r) => [r.plain, r.attached]).filter((x) => x.missing || x.duplicates || x.errors);
  return {
    scenario: "attachments",
    server: "parley",
    idle_sockets: held.length,
    rate: load.rate,
    rounds: runs.map((r) => ({ plain_us: r.plain.server_cpu_us_per_message, attached_us: r.attached.server_cpu_us_per_message, plain_p99_ms: r.plain.e2e_ms.p99, attached_p99_ms: r.attached.e2e_ms.p99, ...(load.byThread ? { plain_by_thread: r.plain.server_cpu_us_per_message_by_thread, attached_by_thread: r.attached.server_cpu_us_per_message_by_thread } : {}) })),
    cpu_us_per_send_plain: plainCpu,
    cpu_us_per_send_attached: attachedCpu,
    cpu_per_send_ratio: round(attachedCpu / plainCpu, 2),
    missing: problems.reduce((n, x) => n + (x.missing ?? 0), 0),
    duplicates: problems.reduce((n, x) => n + (x.duplicates ?? 0), 0),
    errors: problems.reduce((n, x) => n + (x.errors ?? 0), 0),
  };
}

/**
 * The web client's static serving (issue #17: a new feature's hot path, measured by the same
 * bench): what a browser fetches on a first visit, the page and its scripts and styles,
 * brotli-compressed, `requests` of them with `concurrency` in flight on keep-alive
 * connections (after `warmup` unmeasured), server CPU per request. The baseline serves bytes
 * of the same sizes from memory (`sizes`: the page's and each asset's compressed size,
 * cycled in the same order).
 */
export async function staticFiles(sut: ServerUnderTest, sizes: number[], opts: { requests: number; warmup: number; concurrency: number }) {
  const paths = sut.kind === "baseline" ? sizes.map((n) => `/static/${n}`) : await webClientPaths(sut);
  const headers = { "accept-encoding": "br" };
  let bytes = 0;
  let errors = 0;
  const run = async (count: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        while (next < count) {
          const res = await fetch(sut.base + paths[next++ % paths.length]!, { headers, decompress: false });
          const body = await res.arrayBuffer();
          if (res.status !== 200) errors++;
          bytes += body.byteLength;
        }
      }),
    );
  };
  await run(opts.warmup);
  [bytes, errors] = [0, 0];
  const before = sut.stats();
  const meter = clientMeter();
  const started = performance.now();
  await run(opts.requests);
  const seconds = (performance.now() - started) / 1000;
  const after = sut.stats();
  return {
    scenario: "static",
    server: sut.kind,
    files: paths.length,
    requests: opts.requests,
    requests_per_s: Math.round(opts.requests / seconds),
    kb_per_request: round(bytes / opts.requests / 1024, 1),
    errors,
    server_cpu_us_per_request: round(((after.cpu_s - before.cpu_s) / opts.requests) * 1e6, 1),
    ...meter(),
  };
}

/** The page and the assets it names, as a browser's first visit fetches them. */
async function webClientPaths(sut: ServerUnderTest): Promise<string[]> {
  const html = await (await fetch(`${sut.base}/`)).text();
  return ["/", ...[...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!)];
}
