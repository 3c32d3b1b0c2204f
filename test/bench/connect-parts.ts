/**
 * A connect's cost, part by part, in one process (issue #17): what a WebSocket connect with
 * its `conversation.list` costs Parley's main thread, beside a raw `Bun.serve` upgrade in the
 * same process, and what each of the steps the contract asks for costs on its own.
 *
 *   bun test/bench/connect-parts.ts [--n=3000] [--runs=5] [--warmup=5] [--concurrency=16] [--parts=on|off]
 *                                   [--per-user=5] [--messages=1]
 *
 * Builds the app with createApp on a temporary DATA_DIR (the request log to /dev/null through
 * the server's own LineBuffer), registers 50 users in 25 groups of 10 (each user in 5, with a
 * message in each; the bench's connection scenario has none: `--messages=0`), then:
 *   raw      a `Bun.serve` in this process whose upgrade subscribes 5 topics and sends two
 *            small frames (the baseline's connect);
 *   parley   the app listening; a client subprocess opens `n` sockets, `concurrency` at a
 *            time, each until its `conversation.list`, and holds them until all are open;
 * both reporting the main thread's CPU µs per connect (`/proc/self/task/<pid>/schedstat`),
 * median of `runs`, and the other threads' by name (the garbage collector's helpers, the
 * JIT); and the parts, each called `n` times in a loop (µs per call): the token check
 * (`authenticate`: a cached verification and the user's row), the connection count, the
 * membership read, the `conversation.list` (`listJson`), and the `connect` frame.
 * `--messages=0` (or `NOMSG=1`): no message in the groups (as in `bun run bench`'s connection
 * scenario, whose lists then read no last messages and count nothing unread). `--per-user=N`:
 * each user in N groups (5 × N/5 as many groups), and `--messages=M`: M messages in each, sent
 * by members in turn, so that most of a user's conversations have unread ones (a real user's
 * list: `--per-user=50 --messages=3`).
 */
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeConfig } from "../../src/config";
import { createApp } from "../../src/app";
import { createLogger, LineBuffer } from "../../src/log";
import { authenticate } from "../../src/auth/plugin";
import { frame } from "../../src/realtime/protocol";
import { cpuSecondsByThread } from "./lib/stats";

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;

// The client subprocess: opens every socket (`concurrency` at a time), each until its second
// frame, then says so and keeps them open until its stdin closes.
if (process.argv[2] === "--client") {
  const [url, tokensJson, n, concurrency] = process.argv.slice(3) as [string, string, string, string];
  const tokens = JSON.parse(tokensJson) as string[];
  const sockets: WebSocket[] = [];
  let next = 0;
  const worker = async () => {
    while (next < Number(n)) {
      const i = next++;
      const ws = new WebSocket(`${url}${tokens[i % tokens.length]}`);
      sockets.push(ws);
      await new Promise<void>((resolve, reject) => {
        let frames = 0;
        ws.onmessage = () => ++frames === 2 && resolve();
        ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
      });
    }
  };
  await Promise.all(Array.from({ length: Number(concurrency) }, worker));
  process.stdout.write("open\n");
  for await (const _ of Bun.stdin.stream()) void _;
  for (const ws of sockets) ws.close();
  process.exit(0);
}

const n = Number(arg("n", "3000"));
const runs = Number(arg("runs", "5"));
const concurrency = arg("concurrency", "16");
// Off: only the connects (for a profile of them, `bun --cpu-prof-md test/bench/connect-parts.ts --parts=off`).
const partsOn = arg("parts", "on") === "on";
const warmupRounds = Number(arg("warmup", "5"));
const perUser = Number(arg("per-user", "5"));
const messagesPerGroup = process.env.NOMSG ? 0 : Number(arg("messages", "1"));

/** The main thread's name (its executable's), which other threads may carry too. */
const MAIN = readFileSync("/proc/self/comm", "utf8").trim();
const mainThreadNs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0]);

const dataDir = mkdtempSync(join(tmpdir(), "parley-connect-parts-"));
const config = makeConfig({
  dataDir, port: 0, host: "127.0.0.1", argon2MemoryKib: 1024, logLevel: "info",
  registrationsPerAddress: 100_000_000, sendsPerMinute: 100_000_000, writesPerMinute: 100_000_000,
  contactPolicy: "open", maxConnectionsPerUser: 1000,
});
const parley = createApp(config, { log: createLogger(config.logLevel, new LineBuffer(openSync("/dev/null", "w"))) });
const { app, ctx, hub } = parley;

async function call(path: string, body: unknown, token?: string): Promise<any> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await app.handle(new Request(`http://127.0.0.1${path}`, { method: "POST", headers, body: JSON.stringify(body) }));
  if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

// 50 users in groups of 10: group g holds users 2g..2g+9 (mod 50), so 25 groups put each user in 5.
const users: { token: string; id: string }[] = [];
for (let i = 0; i < 50; i++) {
  const r = await call("/api/auth/register", { username: `parts${i}`, password: "password123" });
  users.push({ token: r.token, id: r.user.id });
}
for (let g = 0; g < perUser * 5; g++) {
  const members = Array.from({ length: 10 }, (_, k) => users[(2 * g + k) % 50]!);
  const conv = await call("/api/conversations", { type: "group", title: `g${g}`, member_ids: members.slice(1).map((u) => u.id) }, members[0]!.token);
  for (let k = 0; k < messagesPerGroup; k++) await call(`/api/conversations/${conv.id}/messages`, { content: `hello ${g} ${k}` }, members[(3 * k) % 10]!.token);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round1 = (x: number) => Math.round(x * 10) / 10;

/** Per connect, by target: the other threads' CPU µs, by thread name (GC helpers, JIT, workers). */
const threadUs: Record<string, Record<string, number[]>> = {};

/** Main-thread µs per connect: `n` sockets opened by the client subprocess, then closed. */
async function connects(name: string, url: string): Promise<number> {
  const client = Bun.spawn([process.execPath, import.meta.path, "--client", url, JSON.stringify(users.map((u) => u.token)), String(n), concurrency], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const before = mainThreadNs();
  const threads = cpuSecondsByThread(process.pid);
  const reader = client.stdout.getReader();
  const { value } = await reader.read();
  if (!new TextDecoder().decode(value).startsWith("open")) throw new Error("the client did not open its sockets");
  const mainNs = mainThreadNs() - before;
  // By thread name; the main thread's name (the executable's) without the main thread.
  for (const [thread, s] of Object.entries(cpuSecondsByThread(process.pid))) {
    const us = ((s - (threads[thread] ?? 0)) * 1e6 - (thread === MAIN ? mainNs / 1000 : 0)) / n;
    ((threadUs[name] ??= {})[thread] ??= []).push(us);
  }
  const us = mainNs / 1000 / n;
  client.stdin.end();
  await client.exited;
  await Bun.sleep(200); // the closes
  return us;
}

// The baseline's upgrade, in this process.
const raw = Bun.serve<{ topic: string }>({
  port: 0, hostname: "127.0.0.1",
  fetch(req, srv) {
    return srv.upgrade(req, { data: { topic: `conv:${new URL(req.url).searchParams.get("token")!.slice(-8)}` } }) ? undefined : new Response("no", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    open(ws) {
      ws.subscribe(ws.data.topic);
      for (let i = 1; i < 5; i++) ws.subscribe(`${ws.data.topic}:${i}`);
      ws.send(JSON.stringify({ type: "connect", data: { user: ws.data.topic } }));
      ws.send(JSON.stringify({ type: "conversation.list", data: { items: [] } }));
    },
    message() {},
  },
});
app.listen({ port: 0, hostname: "127.0.0.1" });
const targets = { raw: `ws://127.0.0.1:${raw.port}/ws?token=`, parley: `ws://127.0.0.1:${app.server!.port}/ws/user?token=` };

/** µs per call of `f`, over `n` calls (after n/4 unmeasured ones for the JIT). */
async function part(f: (i: number) => unknown): Promise<number> {
  for (let i = 0; i < n / 4; i++) await f(i);
  const before = mainThreadNs();
  for (let i = 0; i < n; i++) await f(i);
  return (mainThreadNs() - before) / 1000 / n;
}

const rows = await Promise.all(users.map((u) => ctx.store.users.row(u.id)));
const results: Record<string, number[]> = {};
// The JIT's one-off work: Parley's connect path takes ~15,000 connects to settle (its JIT
// threads' CPU per connect falls from ~30 µs to ~0), the raw upgrade a few hundred.
for (let w = 0; w < warmupRounds; w++) for (const [name, url] of Object.entries(targets)) await connects(name, url);
for (const threads of Object.values(threadUs)) for (const k of Object.keys(threads)) delete threads[k];
for (let r = 0; r < runs; r++) {
  for (const [name, url] of Object.entries(targets)) (results[name] ??= []).push(await connects(name, url));
  const parts: Record<string, (i: number) => unknown> = {
    authenticate: (i) => authenticate(ctx, users[i % 50]!.token),
    connection_count: (i) => hub.connectionsOf(users[i % 50]!.id),
    membership: (i) => ctx.store.conversations.membership(users[i % 50]!.id),
    conversation_list: (i) => ctx.store.conversations.listJson(users[i % 50]!.id, 50),
    connect_frame: (i) => frame("connect", { message: "Connected successfully", client_id: Bun.randomUUIDv7(), user_id: rows[i % 50]!.id, last_seq: 1, epoch: ctx.feed.epoch }),
  };
  if (partsOn) for (const [name, f] of Object.entries(parts)) (results[name] ??= []).push(await part(f));
  Bun.gc(true);
}
const out: Record<string, unknown> = { n, runs, concurrency: Number(concurrency), per_user: perUser, messages: messagesPerGroup };
for (const [name, xs] of Object.entries(results)) out[`${name}_us`] = { median: round1(median(xs)), range: [round1(Math.min(...xs)), round1(Math.max(...xs))] };
out.ratio = round1(median(results.parley!) / median(results.raw!));
for (const [name, threads] of Object.entries(threadUs))
  out[`${name}_other_threads_us`] = Object.fromEntries(Object.entries(threads).map(([t, xs]) => [t, round1(median(xs))]).filter(([, x]) => (x as number) >= 0.1));
console.log(JSON.stringify(out));

raw.stop(true);
await parley.stop();
rmSync(dataDir, { recursive: true, force: true });
