/**
 * The seeded fuzzer (issue #19): drives a real server (startServer: real SQLite, real
 * fetch and WebSocket) with mutated requests to every REST route and every client frame
 * type, and with forged upgrades. Any of these is a failure:
 * - an HTTP 5xx (but the contract's 503 `unavailable` / 507 `storage_full`), an error
 *   status without the contract's error body, an `error internal` frame, a socket closed
 *   with anything but 1000 (asked for), 1008 (policy) or 1009 (too big);
 * - an error-level log line, an uncaught exception, a request or ping left unanswered;
 * - one of another user's conversations, messages or friendships reached (a 2xx or a
 *   non-error reply to a request naming it), or the victims' data changed;
 * - afterwards: /health not ok, a plain send not received, `PRAGMA integrity_check` not ok.
 * The same seed makes the same choices, so a failure's seed and op number reproduce it.
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { isErrorLine, startServer, TEST_BACKEND, type TestServer } from "../helpers";
import { dropTestDatabaseOf } from "../services";
import { TestSocket, type Frame } from "../ws-client";
import { Rng } from "./rng";
import { fieldPaths, hugeString, mutate, oddString, NUMERIC_STRINGS, type MutationContext } from "./mutate";
import { FRAME_TEMPLATES, REST_TEMPLATES, makeWorld, missingTemplates, remember, rememberConversation, replenish, routesOf, type RestInput, type World } from "./targets";
import type { ClientType } from "../../src/realtime/protocol";

export interface Failure { op: number; target: string; mutations: string[]; input: unknown; problem: string }

export interface Summary {
  seed: number;
  ops: number;
  ms: number;
  /** REST statuses, `ws <reply type or error code>`, `close <code>`, `upgrade ok|refused`. */
  outcomes: Record<string, number>;
  mutations: Record<string, number>;
  /** Operations per route, frame type and `upgrade`. */
  targets: Record<string, number>;
  /** Share of operations answered with success (the templates reach past validation). */
  successRate: number;
  failureCount: number;
  /** The first failures (each with what was sent). */
  failures: Failure[];
  integrity: string;
}

export interface FuzzOptions {
  seed: number;
  ops: number;
  /** Called every `progressEvery` operations. */
  onProgress?: (done: number, summary: Summary) => void;
  progressEvery?: number;
  /** Called with each failure as it is found. */
  onFailure?: (f: Failure) => void;
  /** Called after each operation (for --trace). */
  trace?: (op: number, target: string, ms: number) => void;
}

const MAX_KEPT_FAILURES = 50;
const ANSWER_MS = 10_000;
const ACCEPTED_CLOSES = new Set([1000, 1008, 1009]);
const DOCUMENTED_5XX: Record<number, string> = { 503: "unavailable", 507: "storage_full" };
/**
 * Targets whose success reaches nothing: unsubscribing from any id is acknowledged, and
 * the web client's deep link serves the same page for any id.
 */
const REACHES_NOTHING = new Set(["frame user.status.unsubscribe", "GET /c/:id"]);
/** What a header can carry at all (fetch refuses the rest before sending). */
const HEADER_SAFE = /^[\x20-\x7e]*$/;
const PERCENT_GARBAGE = ["%", "%zz", "%E0%A4%A", "%ED%A0%80", "%00", "%2F", "%2e%2e", "%C0%AF", "%FF%FE", "a%20b"];
const RAW_BODIES = ["not json", "{", "[]", "\"x\"", "123", "null", "", " ", "{\"a\":1}garbage", "\u0000", "{\"__proto__\":{\"admin\":true}}"];
/** Methods a route was not made for (Bun's fetch refuses CONNECT and TRACE, and sends unknown ones as GET). */
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", "M-SEARCH", "PROPFIND"];
const ODD_HEADERS: Record<string, string[]> = {
  "x-request-id": ["", "x".repeat(65), "a b", "../../x", "%00", "req-1"],
  "content-type": ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "", "*/*"],
  "accept": ["text/html", "application/xml", "*/*;q=0"],
  "content-encoding": ["gzip", "br", "deflate", "identity, gzip"],
  "transfer-encoding": ["chunked"],
};
const QUERY_KEYS = ["limit", "cursor", "since", "q", "status", "direction", "before", "after", "token", "ticket"];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => (v === undefined ? v : structuredClone(v));
const encode = (v: string) => encodeURIComponent(v.toWellFormed());

export async function fuzz(options: FuzzOptions): Promise<Summary> {
  const started = performance.now();
  const r = new Rng(options.seed);
  // Odd seeds run the default contact policy, even ones the open one (more reaches the services).
  const contactPolicy = options.seed % 2 ? "friends" : "open";
  const s = await startServer({ wsFramesPerMinute: 1e9, sendsPerMinute: 1e9, writesPerMinute: 1e9, uploadsPerMinute: 1e9, searchesPerMinute: 1e8, presenceGraceMs: 0, maxConnectionsPerUser: 1000, typingTtlMs: 200, contactPolicy });
  const summary: Summary = { seed: options.seed, ops: 0, ms: 0, outcomes: {}, mutations: {}, targets: {}, successRate: 0, failureCount: 0, failures: [], integrity: "not checked" };
  let successes = 0;
  const count = (bag: Record<string, number>, key: string) => (bag[key] = (bag[key] ?? 0) + 1);
  const fail = (f: Failure) => {
    summary.failureCount++;
    const kept = { ...f, input: shorten(f.input) };
    if (summary.failures.length < MAX_KEPT_FAILURES) summary.failures.push(kept);
    options.onFailure?.(kept);
  };
  const crashed = (e: unknown) => fail({ op: summary.ops, target: "process", mutations: [], input: null, problem: `uncaught: ${(e as Error)?.stack ?? e}` });
  process.on("uncaughtException", crashed);
  process.on("unhandledRejection", crashed);

  try {
    const missing = missingTemplates(s);
    if (missing.length) throw new Error(`no fuzz template for: ${missing.join(", ")} (add one to test/fuzz/targets.ts)`);
    const w = await makeWorld(s, r);
    const m: MutationContext = { foreignIds: [...w.foreign.convs, ...w.foreign.messages, ...w.foreign.friendships, ...w.foreign.users, ...w.foreign.attachments], depths: [40, 1000, 5000] };
    const privateIds = new Set([...w.foreign.convs, ...w.foreign.messages, ...w.foreign.friendships, ...w.foreign.attachments]);
    const before = await w.snapshot();
    const targets = [...routesOf(s).filter((k) => REST_TEMPLATES[k]), ...Object.keys(FRAME_TEMPLATES).map((t) => `frame ${t}`), "upgrade"];

    /**
     * Whether a foreign private id still sits, after all mutations, in an id field that the
     * template has (an extra field is dropped unread, so it reaches nothing).
     */
    const namesPrivate = (input: unknown, paths: (string | number)[][], template: unknown) =>
      paths.some((p) => {
        if (!fieldPaths(template).some((t) => t.join("/") === p.join("/"))) return false;
        let v: unknown = input;
        for (const k of p) v = isObj(v) || Array.isArray(v) ? (v as Record<string, unknown>)[k as string] : undefined;
        const key = String(p.findLast((k) => typeof k === "string") ?? "");
        return typeof v === "string" && privateIds.has(v) && /(^id|_id|_ids)$/.test(key) && key !== "client_msg_id";
      });

    /** Log lines since the last look; an error-level one is a failure of the op that caused it. */
    const checkLogs = (op: number, target: string, mutations: string[], input: unknown) => {
      for (const line of s.logs.splice(0)) if (isErrorLine(line)) fail({ op, target, mutations, input, problem: `error log: ${JSON.stringify(line).slice(0, 600)}` });
    };

    // ---- REST ----
    async function rest(op: number, key: string) {
      const [templateMethod, path] = key.split(" ") as [string, string];
      let method = templateMethod;
      const t: RestInput = REST_TEMPLATES[key]!(w, r);
      const extraHeaders: Record<string, string> = { ...t.headers };
      const template = { body: clone(t.body), params: { ...t.params } };
      const params = { ...t.params };
      const rawParams = new Set<string>();
      const query: [string, string][] = Object.entries(t.query ?? {});
      let body = clone(t.body);
      let rawBody: string | Uint8Array | undefined = t.raw;
      let authorization: string | undefined = t.token === null ? undefined : `Bearer ${w.me.token}`;
      const mutations: string[] = [];
      const privatePaths: (string | number)[][] = [];
      for (let n = r.pick([0, 0, 1, 1, 1, 2, 3]); n > 0; n--) {
        const kind = r.pick(["body", "body", "param", "query", "token", "raw", "method", "header"]);
        if (kind === "body" && body !== undefined) {
          const res = mutate(r, body, m);
          body = res.value;
          mutations.push(`body.${res.name}`);
          if (res.name === "foreignId" && res.path) privatePaths.push(["body", ...res.path]);
        } else if (kind === "param" && Object.keys(params).length) {
          const name = r.pick(Object.keys(params));
          const how = r.pick(["foreign", "odd", "garbage", "long", "empty"]);
          params[name] = how === "foreign" ? r.pick(m.foreignIds) : how === "odd" ? oddString(r) : how === "garbage" ? r.pick(PERCENT_GARBAGE) : how === "long" ? "x".repeat(r.pick([65, 2000])) : "";
          if (how === "garbage") rawParams.add(name);
          if (how === "foreign") privatePaths.push(["params", name]);
          mutations.push(`param.${how}`);
        } else if (kind === "query") {
          const name = r.chance(0.6) && query.length ? r.pick(query)[0] : r.pick(QUERY_KEYS);
          const value = r.pick([() => r.pick(NUMERIC_STRINGS), () => oddString(r), () => r.pick(m.foreignIds), () => "x".repeat(3000), () => r.pick(PERCENT_GARBAGE)])();
          if (r.chance(0.3)) query.push([name, value]);
          else {
            const i = query.findIndex(([k]) => k === name);
            if (i >= 0) query[i] = [name, value];
            else query.push([name, value]);
          }
          mutations.push("query");
        } else if (kind === "token") {
          const how = r.pick(["forged", "missing", "scheme"]);
          authorization = how === "forged" ? `Bearer ${r.pick(w.badTokens.filter((t) => HEADER_SAFE.test(t)))}` : how === "missing" ? undefined : r.pick([`bearer  ${w.me.token}`, `Basic ${w.me.token}`, `Bearer ${w.me.token} extra`, "Bearer", w.me.token]);
          mutations.push(`token.${how}`);
        } else if (kind === "method") {
          method = r.pick(METHODS);
          mutations.push("method");
        } else if (kind === "header") {
          const [name, values] = r.pick(Object.entries(ODD_HEADERS));
          extraHeaders[name] = r.pick(values);
          mutations.push(`header.${name}`);
        } else if (kind === "raw") {
          rawBody = r.chance(0.2) ? deepText(r.pick([33, 5000, 40_000]), r.chance(0.5)) : r.chance(0.1) ? `{"content":"${"a".repeat(r.chance(0.1) ? 2_000_000 : 70_000)}"}` : r.pick(RAW_BODIES);
          mutations.push("rawBody");
        }
      }
      for (const mu of mutations) count(summary.mutations, mu);
      const url =
        s.base +
        path.replace(/:(\w+)/g, (_, name: string) => (rawParams.has(name) ? params[name]! : encode(params[name] ?? ""))) +
        (query.length ? `?${query.map(([k, v]) => `${encode(k)}=${PERCENT_GARBAGE.includes(v) ? v : encode(v)}`).join("&")}` : "");
      const headers: Record<string, string> = { "content-type": "application/json", ...extraHeaders };
      if (authorization !== undefined) headers.authorization = authorization;
      const text = rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
      const shownBody = typeof text === "string" || text === undefined ? text : `(${text.length} bytes) ${Buffer.from(text.subarray(0, 64)).toString("base64")}`;
      const input = { method, url: url.slice(s.base.length), authorization: authorization === `Bearer ${w.me.token}` ? "(valid)" : authorization, headers: Object.keys(extraHeaders).length ? extraHeaders : undefined, body: shownBody };
      let status: number;
      let resBody: any;
      try {
        const res = await fetch(url, { method, headers, body: /^(get|head)$/i.test(method) ? undefined : text, signal: AbortSignal.timeout(ANSWER_MS) });
        status = res.status;
        const raw = await res.text();
        try { resBody = JSON.parse(raw); } catch { resBody = raw; }
      } catch (e) {
        fail({ op, target: key, mutations, input, problem: `no answer: ${(e as Error).message}` });
        return;
      }
      count(summary.outcomes, `${method} ${status}`);
      if (status < 300) successes++;
      if (status >= 500 && resBody?.error?.code !== DOCUMENTED_5XX[status]) fail({ op, target: key, mutations, input, problem: `HTTP ${status} ${JSON.stringify(resBody).slice(0, 300)}` });
      // An unsatisfiable Range gets a bare 416 (documented in the README); a HEAD answer has no body at all.
      else if (status >= 400 && status !== 416 && !/^head$/i.test(method) && !(typeof resBody?.error?.code === "string" && typeof resBody.error.message === "string"))
        fail({ op, target: key, mutations, input, problem: `HTTP ${status} without the error body: ${String(JSON.stringify(resBody)).slice(0, 300)}` });
      // Under another method another route may answer (GET /api/conversations ignores a body).
      if (status < 300 && method.toUpperCase() === templateMethod && !REACHES_NOTHING.has(key) && namesPrivate({ body, params }, privatePaths, template)) fail({ op, target: key, mutations, input, problem: `another user's conversation, message or friendship was reached: ${status}` });
      if (status < 300) harvestRest(key, resBody);
      // A search answers from the caller's conversations only: no hit names another's.
      if (status < 300 && key.startsWith("GET /api/search/") && Array.isArray(resBody?.items)) {
        const named = (o: any): unknown[] => (isObj(o) ? [o.id, o.conversation_id, ...named(o.message)] : []);
        const leaked = resBody.items.flatMap(named).find((id: unknown) => typeof id === "string" && privateIds.has(id));
        if (leaked) fail({ op, target: key, mutations, input, problem: `a search returned another user's ${leaked}` });
      }
      checkLogs(op, key, mutations, input);
    }

    function harvestRest(key: string, body: any) {
      // The web client's page names its hashed assets.
      if (key === "GET /" && typeof body === "string") for (const [, file] of body.matchAll(/\/assets\/([\w.-]+)/g)) remember(w.own.assets, file);
      if (!isObj(body)) return;
      if (key === "POST /api/conversations") rememberConversation(w, body.id);
      else if (key === "POST /api/conversations/:id/messages") remember(w.own.messages, body.id);
      else if (key === "POST /api/friendships") remember(w.own.friendships, body.id);
      else if (key === "POST /api/auth/register" && isObj(body.user)) remember(w.own.users, body.user.id);
      else if (key === "POST /api/uploads") {
        remember(w.own.attachments, body.id);
        for (const link of [body.url, body.thumbnail_url]) remember(w.own.links, link);
      }
      if (typeof body.next_cursor === "string") remember(w.own.cursors, body.next_cursor);
    }

    // ---- WebSocket ----
    let socket: TestSocket | null = null;
    /** What each request id of the current batch carried, to name the op that failed. */
    let sent = new Map<string, { op: number; target: string; mutations: string[]; input: unknown; private: boolean }>();
    let pending = 0;
    let batch = 1;
    let pings = 0;

    const open = async () => {
      if (socket && !socket.closed) return socket;
      socket = await TestSocket.connect(`${s.wsBase}/ws/user?token=${w.me.token}`);
      return socket;
    };

    /** Waits until the server has handled everything sent so far, then checks the replies. */
    async function sync() {
      if (!socket) return;
      const ws = socket;
      if (!ws.closed) {
        const id = `p${++pings}`;
        const answered = answerOrClose(ws, id);
        ws.send("ping", {}, id);
        if ((await answered) === "timeout") fail({ op: summary.ops, target: "ws", mutations: [], input: [...sent.values()].map((x) => x.input), problem: "a ping went unanswered" });
      }
      checkFrames(ws.frames.splice(0));
      if (ws.closed) {
        count(summary.outcomes, `close ${ws.closed.code}`);
        if (!ACCEPTED_CLOSES.has(ws.closed.code)) fail({ op: summary.ops, target: "ws", mutations: [], input: [...sent.values()].map((x) => x.input), problem: `socket closed with ${ws.closed.code} ${ws.closed.reason}` });
        socket = null;
      }
      const last = [...sent.values()].at(-1);
      checkLogs(last?.op ?? summary.ops, last?.target ?? "ws", last?.mutations ?? [], [...sent.values()].map((x) => x.input));
      sent = new Map();
      pending = 0;
    }

    function checkFrames(frames: Frame[]) {
      for (const f of frames) {
        const origin = f.request_id !== undefined ? sent.get(f.request_id) : undefined;
        if (f.request_id?.startsWith("p")) continue;
        if (origin) {
          count(summary.outcomes, f.type === "error" ? `ws error ${f.error?.code}` : `ws ${f.type}`);
          if (f.type !== "error") successes++;
        }
        const blame = origin ?? { op: summary.ops, target: "ws", mutations: [], input: [...sent.values()].map((x) => x.input) };
        if (f.type === "error" && f.error?.code === "internal") fail({ ...blame, problem: `error internal: ${JSON.stringify(f).slice(0, 300)}` });
        if (origin?.private && f.type !== "error") fail({ ...origin, problem: `another user's conversation or message was reached: ${JSON.stringify(f).slice(0, 300)}` });
        if (f.type === "ack" && isObj(f.data)) {
          const result = (f.data as { result?: { id?: string } }).result;
          if (f.data.request_type === "message.send") remember(w.own.messages, result?.id);
          if (f.data.request_type === "conversation.create") rememberConversation(w, result?.id);
        }
        if (f.type === "conversation.list" && typeof f.data?.next_cursor === "string") remember(w.own.cursors, f.data.next_cursor);
      }
    }

    async function frame(op: number, type: ClientType) {
      const ws = await open();
      const requestId = `f${op}`;
      const template = FRAME_TEMPLATES[type](w, r);
      let data = clone(template);
      const mutations: string[] = [];
      const privatePaths: (string | number)[][] = [];
      let envelope: Record<string, unknown> = { type, data, request_id: requestId };
      let raw: string | Uint8Array | undefined;
      for (let n = r.pick([0, 0, 1, 1, 1, 2, 3]); n > 0; n--) {
        if (r.chance(0.85)) {
          const res = mutate(r, data, m);
          data = envelope.data = res.value;
          mutations.push(`data.${res.name}`);
          if (res.name === "foreignId" && res.path) privatePaths.push(res.path);
          continue;
        }
        const how = r.pick(["type", "requestId", "noData", "extra", "text", "binary", "oversize"]);
        mutations.push(`envelope.${how}`);
        if (how === "type") envelope.type = r.pick([oddString(r), 1, null, ["ping"], "PING", "message.send ", "__proto__", "constructor", "toString"]);
        else if (how === "requestId") envelope.request_id = r.pick([1, null, {}, "x".repeat(129), oddString(r)]);
        else if (how === "noData") delete envelope.data;
        else if (how === "extra") envelope = { ...envelope, timestamp: oddString(r), seq: -1, success: "yes", error: {} };
        else if (how === "text") raw = r.pick(["not json", "123", "\"str\"", "[]", "null", "true", "{\"type\":", " {\"type\":\"ping\"}", "\u0000", deepText(5000, false)]);
        else if (how === "binary") raw = new TextEncoder().encode(JSON.stringify(envelope));
        else envelope.padding = hugeString(r).repeat(3);
      }
      for (const mu of mutations) count(summary.mutations, mu);
      const text = raw ?? JSON.stringify(envelope);
      const input = typeof text === "string" ? text : `(binary) ${new TextDecoder().decode(text)}`;
      const answerable = raw === undefined && envelope.request_id === requestId;
      if (answerable) sent.set(requestId, { op, target: `frame ${type}`, mutations, input, private: privatePaths.length > 0 && namesPrivate(data, privatePaths, template) && !REACHES_NOTHING.has(`frame ${type}`) });
      else sent.set(`op${op}`, { op, target: `frame ${type}`, mutations, input, private: false });
      ws.ws.send(text);
      if (++pending >= batch || type === "disconnect") {
        batch = 1 + r.int(8);
        await sync();
      }
    }

    // ---- upgrades ----
    async function upgrade(op: number) {
      await sync();
      const how = r.pick(["valid", "forged", "ticket", "usedTicket", "none"]);
      const since = r.chance(0.5) ? `&since=${encode(r.pick(["", "0", "-1", "abc", "1e3", "99999999999999999999", "1", oddString(r)]))}` : "";
      let query = "";
      if (how === "valid") query = `token=${w.me.token}`;
      else if (how === "forged") query = `token=${encode(r.pick(w.badTokens))}`;
      else if (how === "ticket" || how === "usedTicket") {
        const res = await fetch(`${s.base}/api/ws/ticket`, { method: "POST", headers: { authorization: `Bearer ${w.me.token}` } });
        const { ticket } = (await res.json()) as { ticket: string };
        if (how === "usedTicket") (await TestSocket.connect(`${s.wsBase}/ws/user?ticket=${ticket}`)).close();
        query = `ticket=${ticket}`;
      }
      const url = `${s.wsBase}/ws/user?${query}${since}`;
      const input = { upgrade: url.slice(s.wsBase.length).replace(w.me.token, "(valid)") };
      const shouldOpen = how === "valid" || how === "ticket";
      const ws = new WebSocket(url);
      const frames: Frame[] = [];
      ws.onmessage = (e) => frames.push(JSON.parse(String(e.data)));
      const opened = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ANSWER_MS);
        ws.onopen = () => (clearTimeout(timer), resolve(true));
        ws.onerror = () => (clearTimeout(timer), resolve(false));
      });
      if (opened) {
        const deadline = Date.now() + ANSWER_MS;
        // A long replay (since=0) may be cut as a slow consumer (close 1013) before the list.
        while (!frames.some((f) => f.type === "conversation.list") && ws.readyState === WebSocket.OPEN && Date.now() < deadline) await Bun.sleep(2);
        ws.close();
      }
      count(summary.outcomes, `upgrade ${opened ? "ok" : "refused"}`);
      if (opened) successes++;
      if (opened !== shouldOpen) fail({ op, target: "upgrade", mutations: [how], input, problem: opened ? "a bad token or ticket opened a socket" : "a valid token or ticket was refused" });
      for (const f of frames) if (f.type === "error" && f.error?.code === "internal") fail({ op, target: "upgrade", mutations: [how], input, problem: "error internal" });
      checkLogs(op, "upgrade", [how], input);
    }

    for (let op = 0; op < options.ops; op++) {
      summary.ops = op + 1;
      if (op % 25 === 0) {
        const t0 = performance.now();
        await sync();
        await replenish(s, w, r);
        options.trace?.(op, "replenish", Math.round(performance.now() - t0));
      }
      const target = r.pick(targets);
      count(summary.targets, target);
      const t0 = performance.now();
      if (target === "upgrade") await upgrade(op);
      else if (target.startsWith("frame ")) await frame(op, target.slice(6) as ClientType);
      else {
        await sync();
        await rest(op, target);
      }
      options.trace?.(op, target, Math.round(performance.now() - t0));
      if (options.onProgress && (op + 1) % (options.progressEvery ?? 10_000) === 0) options.onProgress(op + 1, finish(summary, successes, started));
    }
    await sync();
    await Bun.sleep(300);
    await sync();
    socket = null;
    await afterChecks(s, w, before, fail);
    checkLogs(summary.ops, "after the run", [], null);
  } finally {
    process.off("uncaughtException", crashed);
    process.off("unhandledRejection", crashed);
    const counts = await memberCounts(s);
    await s.stop(false);
    // PostgreSQL checks its own pages and constraints; SQLite's file is checked once closed.
    summary.integrity = [TEST_BACKEND === "sqlite" ? integrity(s.dataDir) : "ok", counts].filter((x) => x !== "ok").join("; ") || "ok";
    if (summary.integrity !== "ok") fail({ op: summary.ops, target: "database", mutations: [], input: null, problem: `integrity: ${summary.integrity}` });
    await import("node:fs").then((fs) => fs.rmSync(s.dataDir, { recursive: true, force: true }));
    await dropTestDatabaseOf(s.dataDir);
  }
  return finish(summary, successes, started);
}

function finish(summary: Summary, successes: number, started: number): Summary {
  summary.ms = Math.round(performance.now() - started);
  summary.successRate = summary.ops ? successes / summary.ops : 0;
  return summary;
}

/** Resolves when the frame answering `id` arrives, or the socket closes, or after ANSWER_MS. */
function answerOrClose(ws: TestSocket, id: string): Promise<"answered" | "closed" | "timeout"> {
  return new Promise((resolve) => {
    const done = (how: "answered" | "closed" | "timeout") => {
      clearTimeout(timer);
      ws.ws.removeEventListener("close", onClose);
      resolve(how);
    };
    const onClose = () => done("closed");
    const timer = setTimeout(() => done("timeout"), ANSWER_MS);
    ws.ws.addEventListener("close", onClose);
    ws.waitFor((f) => f.request_id === id, ANSWER_MS, ws.frames.length).then(() => done("answered"), () => {});
  });
}

/** The server still works: health, and a message sent by one socket reaches another. */
async function afterChecks(s: TestServer, w: World, before: string, fail: (f: Failure) => void) {
  const problem = (p: string) => fail({ op: -1, target: "after the run", mutations: [], input: null, problem: p });
  const health = await fetch(`${s.base}/health`);
  if (health.status !== 200) problem(`/health answered ${health.status}`);
  const { body: g, status } = await s.api("POST", "/api/conversations", { token: w.me.token, body: { type: "group", title: "after the fuzz", member_ids: [w.peer.user.id] } });
  if (status !== 201) return problem(`creating a group answered ${status} ${JSON.stringify(g)}`);
  const [a, b] = [await TestSocket.connect(`${s.wsBase}/ws/user?token=${w.me.token}`), await TestSocket.connect(`${s.wsBase}/ws/user?token=${w.peer.token}`)];
  try {
    const reply = await a.request("message.send", { conversation_id: g.id, content: "still here" });
    if (reply.type !== "ack") problem(`a plain message.send answered ${JSON.stringify(reply)}`);
    await b.waitFor((f) => f.type === "message.receive" && f.data.content === "still here");
  } catch (e) {
    problem(`a plain send and receive failed: ${(e as Error).message}`);
  } finally {
    a.close();
    b.close();
  }
  const after = await w.snapshot();
  if (after !== before) {
    let i = 0;
    while (before[i] === after[i]) i++;
    problem(`the victims' conversations, messages or friendships changed: …${before.slice(Math.max(0, i - 80), i + 80)}… became …${after.slice(Math.max(0, i - 80), i + 80)}…`);
  }
}

/** Whether every conversation's member_count (kept by triggers, on both engines) is its number of members. */
async function memberCounts(s: TestServer): Promise<string> {
  const wrong = await s.rows<{ id: string }>(
    "SELECT c.id FROM conversations c WHERE c.member_count <> (SELECT count(*) FROM conversation_members m WHERE m.conversation_id = c.id)",
  );
  return wrong.length ? `member_count wrong for ${wrong.length} conversations` : "ok";
}

/** `PRAGMA integrity_check` and `foreign_key_check` of the stopped server's database file. */
function integrity(dataDir: string): string {
  const db = new Database(join(dataDir, "parley.db"), { readonly: true });
  try {
    const rows = db.query("PRAGMA integrity_check").all() as { integrity_check: string }[];
    const verdict = rows.map((x) => x.integrity_check).join("; ");
    const orphans = db.query("PRAGMA foreign_key_check").all();
    return orphans.length ? `${verdict}; ${orphans.length} foreign key violations` : verdict;
  } finally {
    db.close();
  }
}

/** JSON text nested `levels` deep, written directly (Bun's JSON.stringify takes seconds past ~10,000 levels). */
const deepText = (levels: number, asObject: boolean) => (asObject ? '{"a":'.repeat(levels) + "1" + "}".repeat(levels) : "[".repeat(levels) + "1" + "]".repeat(levels));

/** Inputs can be 70 KB: keep what identifies them. */
function shorten(input: unknown): unknown {
  const text = typeof input === "string" ? input : (JSON.stringify(input) ?? "undefined");
  return text.length <= 2000 ? input : `${text.slice(0, 1000)} …(${text.length} chars)… ${text.slice(-300)}`;
}
