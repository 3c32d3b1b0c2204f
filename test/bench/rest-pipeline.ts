/**
 * The REST send's request pipeline, measured in one process (issue #17): what a
 * `POST /api/conversations/:id/messages` costs on top of the send itself.
 *
 *   bun test/bench/rest-pipeline.ts [--n=4000] [--runs=5] [--concurrency=64] [--modes=service,handle,http]
 *                                   [--log=on|off] [--log-dest=buffer|sonic] [--metrics=on|off]
 *
 * Builds the app with createApp on a temporary DATA_DIR (the request log going to /dev/null,
 * synchronously, like the server's stdout in `bun run bench`), registers 10 users and puts
 * them in a group, then sends `n` messages `runs` times (after one unmeasured run) in
 * batches of `concurrency` at once (each batch one group commit, as under load), through:
 *   service  `ctx.store.messages.send` directly: the send itself, no HTTP, no Elysia;
 *   handle   `app.handle(new Request(…))`: Elysia's whole pipeline, no sockets;
 *   http     the app listening on a port, with a client in a subprocess (`fetch`, keep-alive,
 *            `concurrency` in flight): Bun's HTTP server too.
 * Each run reports the CPU time of this process's main thread per request
 * (`/proc/self/task/<pid>/schedstat`, ns), and of the whole process (`process.cpuUsage()`:
 * every thread, so also the garbage collector's helpers, the JIT, the checkpoint and
 * search-index workers, as `bun run bench` counts a server); the line printed per mode has
 * the medians of the runs (and the main thread's range).
 * `handle − service` is Elysia's share, `http − handle` Bun's HTTP server's.
 * Variants: `--log=off` (LOG_LEVEL=warn: no request line), `--log-dest=sonic` (pino's own
 * synchronous destination instead of the server's LineBuffer), `--metrics=off` (the request's
 * counter and histogram replaced by no-ops). Nothing is connected over WebSocket, so no send
 * is published to anyone.
 */
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { makeConfig } from "../../src/config";
import { createApp } from "../../src/app";
import { createLogger } from "../../src/log";

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;

// The client subprocess of the http mode: `concurrency` sends in flight until `n` are answered.
if (process.argv[2] === "--client") {
  const [base, conversation, tokensJson, n, concurrency] = process.argv.slice(3) as [string, string, string, string, string];
  const tokens = JSON.parse(tokensJson) as string[];
  const total = Number(n);
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const res = await fetch(`${base}/api/conversations/${conversation}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${tokens[i % tokens.length]}`, "content-type": "application/json" },
        body: JSON.stringify({ content: `message ${i} ${"x".repeat(40)}` }),
      });
      if (res.status !== 201) failed++;
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: Number(concurrency) }, worker));
  process.stdout.write(JSON.stringify({ failed }));
  process.exit(0);
}

const n = Number(arg("n", "4000"));
const runs = Number(arg("runs", "5"));
const concurrency = Number(arg("concurrency", "64"));
const modes = arg("modes", "service,handle,http").split(",");
const logOn = arg("log", "on") === "on";
const metricsOn = arg("metrics", "on") === "on";

/** This process's main thread's CPU time in ns (its tid is the pid). */
const mainThreadNs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0]);
/** Every live thread's name and CPU time in ns, by thread id. */
function threadsNs(): Map<string, { name: string; ns: number }> {
  const out = new Map<string, { name: string; ns: number }>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      out.set(tid, { name: readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim(), ns: Number(readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ")[0]) });
    } catch {} // ended meanwhile
  }
  return out;
}
/** CPU ns per thread name between two readings (threads alive at both). */
function byName(before: ReturnType<typeof threadsNs>, after: ReturnType<typeof threadsNs>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [tid, t] of after) {
    const name = tid === String(process.pid) ? "main" : t.name.startsWith("Worker") || t.name === "bun" ? "workers" : "runtime";
    out[name] = (out[name] ?? 0) + t.ns - (before.get(tid)?.ns ?? 0);
  }
  return out;
}

const dataDir = mkdtempSync(join(tmpdir(), "parley-rest-pipeline-"));
const config = makeConfig({
  dataDir,
  port: 0,
  host: "127.0.0.1",
  argon2MemoryKib: 1024,
  logLevel: logOn ? "info" : "warn",
  registrationsPerAddress: 100_000_000,
  sendsPerMinute: 100_000_000,
  writesPerMinute: 100_000_000,
  contactPolicy: "open",
});
// The server's own destination for stdout, here on /dev/null (before LineBuffer: pino's synchronous one).
const logModule = (await import("../../src/log")) as Record<string, unknown>;
const devNull = openSync("/dev/null", "w");
const Buffered = logModule.LineBuffer as (new (fd: number) => pino.DestinationStream) | undefined;
const sonic = arg("log-dest", Buffered ? "buffer" : "sonic") === "sonic";
const log = createLogger(config.logLevel, Buffered && !sonic ? new Buffered(devNull) : pino.destination({ fd: devNull, sync: true }));
const parley = createApp(config, { log });
const { app, ctx } = parley;
if (!metricsOn) {
  ctx.metrics.httpRequests.inc = () => {};
  ctx.metrics.httpDuration.observe = () => {};
}

const ORIGIN = "http://127.0.0.1";
async function call(method: string, path: string, body: unknown, token?: string): Promise<any> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await app.handle(new Request(ORIGIN + path, { method, headers, body: JSON.stringify(body) }));
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

const users: { token: string; id: string }[] = [];
for (let i = 0; i < 10; i++) {
  const r = await call("POST", "/api/auth/register", { username: `bench${i}`, password: "password123" });
  users.push({ token: r.token, id: r.user.id });
}
const group = await call("POST", "/api/conversations", { type: "group", title: "bench", member_ids: users.slice(1).map((u) => u.id) }, users[0]!.token);
const conversation: string = group.id;
const rows = await Promise.all(users.map((u) => ctx.store.users.row(u.id)));

const content = (i: number) => `message ${i} ${"x".repeat(40)}`;

/** One run of `n` sends in batches of `concurrency`; returns main-thread µs per send. */
const senders: Record<string, (count: number) => Promise<void>> = {
  async service(count) {
    for (let done = 0; done < count; done += concurrency) {
      const batch: Promise<unknown>[] = [];
      for (let i = done; i < Math.min(count, done + concurrency); i++) batch.push(ctx.store.messages.send(rows[i % rows.length]!, conversation, { content: content(i) }));
      await Promise.all(batch);
    }
  },
  async handle(count) {
    for (let done = 0; done < count; done += concurrency) {
      const batch: Promise<Response>[] = [];
      for (let i = done; i < Math.min(count, done + concurrency); i++) {
        const body = JSON.stringify({ content: content(i) });
        // With its Content-Length, as a client's request arrives (else the body is read as a chunked one).
        const headers = { authorization: `Bearer ${users[i % users.length]!.token}`, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) };
        batch.push(app.handle(new Request(`${ORIGIN}/api/conversations/${conversation}/messages`, { method: "POST", headers, body })));
      }
      for (const res of await Promise.all(batch)) {
        if (res.status !== 201) throw new Error(`send: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
    }
  },
  async http(count) {
    const client = Bun.spawn([process.execPath, import.meta.path, "--client", `http://127.0.0.1:${app.server!.port}`, conversation, JSON.stringify(users.map((u) => u.token)), String(count), String(concurrency)], { stdout: "pipe", stderr: "inherit" });
    const out = JSON.parse(await new Response(client.stdout).text()) as { failed: number };
    await client.exited;
    if (out.failed) throw new Error(`http: ${out.failed} sends failed`);
  },
};

if (modes.includes("http")) app.listen({ port: 0, hostname: "127.0.0.1" });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results: Record<string, unknown>[] = [];
for (const mode of modes) {
  const send = senders[mode];
  if (!send) throw new Error(`unknown mode ${mode}`);
  await send(Math.min(n, 2000)); // the JIT's one-off work
  Bun.gc(true);
  const perSend: number[] = [];
  const processPerSend: number[] = [];
  const threads: Record<string, number[]> = {};
  for (let r = 0; r < runs; r++) {
    const before = mainThreadNs();
    const cpu = process.cpuUsage();
    const t0 = threadsNs();
    await send(n);
    perSend.push((mainThreadNs() - before) / 1000 / n);
    const used = process.cpuUsage(cpu);
    processPerSend.push((used.user + used.system) / n);
    for (const [name, ns] of Object.entries(byName(t0, threadsNs()))) (threads[name] ??= []).push(ns / 1000 / n);
    Bun.gc(true);
  }
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const line = {
    mode, log: logOn ? (sonic ? "sonic" : "buffer") : "off", metrics: metricsOn, n, concurrency,
    main_thread_us_per_send: round1(median(perSend)),
    range: [Math.min(...perSend), Math.max(...perSend)].map(round1),
    process_us_per_send: round1(median(processPerSend)),
    // The other threads: the runtime's (garbage collector helpers, JIT, Bun's pool) and the workers (checkpoints, search index).
    runtime_threads_us_per_send: round1(median(threads.runtime ?? [0])),
    worker_threads_us_per_send: round1(median(threads.workers ?? [0])),
  };
  results.push(line);
  console.log(JSON.stringify(line));
}

await parley.stop();
rmSync(dataDir, { recursive: true, force: true });
