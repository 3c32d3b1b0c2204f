/**
 * Misbehaving clients: frame rate, frame size, connections per user, slow consumers.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { connect as tcpConnect, type Socket } from "node:net";
import { isErrorLine, startServer, waitFor, type Account, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";

const servers: TestServer[] = [];
const server = async (overrides: Parameters<typeof startServer>[0]) => {
  const s = await startServer({ presenceGraceMs: 0, ...overrides });
  servers.push(s);
  return s;
};
// Each test's server stops after it: on PostgreSQL a running server holds its connections.
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

const upgradeHeaders = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" };

describe("frame rate", () => {
  test("over the per-socket limit: error rate_limited with retry_after_ms, the frame dropped; ping is exempt", async () => {
    const s = await server({ wsFramesPerMinute: 5 });
    const a = await s.register();
    const { body: g } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t" } });
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    for (let i = 0; i < 10; i++) expect((await ws.request("ping")).type).toBe("pong");
    for (let i = 0; i < 5; i++) expect((await ws.request("conversation.load", {})).type).toBe("conversation.list");
    const limited = await ws.request("message.send", { conversation_id: g.id, content: "dropped" });
    expect(limited.type).toBe("error");
    expect(limited.error.code).toBe("rate_limited");
    expect(limited.error.retry_after_ms).toBeGreaterThan(0);
    expect((await s.api("GET", `/api/conversations/${g.id}/messages`, { token: a.token })).body.items).toEqual([]);
    expect(ws.closed).toBeNull();
  });

  test("bad frames count against the limit too", async () => {
    const s = await server({ wsFramesPerMinute: 5 });
    const a = await s.register();
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    for (let i = 0; i < 5; i++) {
      ws.ws.send("garbage");
      expect((await ws.next("error")).error.code).toBe("bad_request");
    }
    ws.ws.send("garbage");
    expect((await ws.next("error")).error.code).toBe("rate_limited");
  });

  test("a frame that only claims to be a ping (invalid data) counts like any bad frame", async () => {
    const s = await server({ wsFramesPerMinute: 5 });
    const a = await s.register();
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    for (let i = 0; i < 5; i++) {
      ws.ws.send(JSON.stringify({ type: "ping", data: 5 }));
      expect((await ws.next("error")).error.code).toBe("validation_failed");
    }
    ws.ws.send(JSON.stringify({ type: "ping", data: 5 }));
    expect((await ws.next("error")).error.code).toBe("rate_limited");
  });

  test("a client that keeps sending at more than twice the limit is closed with 1008", async () => {
    const s = await server({ wsFramesPerMinute: 5 });
    const a = await s.register();
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    for (let i = 0; i < 20; i++) ws.send("conversation.load", {});
    const closed = await ws.waitClosed();
    expect(closed.code).toBe(1008);
    expect(ws.all("alert").map((f) => f.data.kind)).toEqual(["rate_limited"]);
  });
});

describe("deeply nested JSON", () => {
  const deep = (levels: number) => "[".repeat(levels) + "]".repeat(levels);

  test("a body nested thousands of levels deep is 422 (Elysia's error mapping overflowed: 500), with or without a token", async () => {
    const s = await server({});
    const a = await s.register();
    const cases: [string, string, string | undefined][] = [
      ["PATCH", "/api/users/me", a.token],
      ["POST", "/api/auth/register", undefined],
      ["POST", "/api/auth/login", undefined],
      ["POST", "/api/friendships", a.token],
      // Without a token the body's shape is still answered first (see the README).
      ["PATCH", "/api/users/me", undefined],
    ];
    for (const [method, path, token] of cases) {
      const field = path.includes("friend") ? "friend_id" : path.includes("users") ? "display_name" : "username";
      const res = await s.api(method, path, { token, raw: `{"${field}":${deep(6000)},"password":"password123"}` });
      expect({ path, status: res.status, code: res.body?.error?.code }).toEqual({ path, status: 422, code: "validation_failed" });
    }
    // At the limit (32 levels, the body's own object included) wrong types are still named
    // by field; one level more is the body's fault.
    const shallow = await s.api("PATCH", "/api/users/me", { token: a.token, raw: `{"display_name":${deep(31)}}` });
    expect(shallow.status).toBe(422);
    expect(shallow.body.error.details[0].field).toBe("display_name");
    const over = await s.api("PATCH", "/api/users/me", { token: a.token, raw: `{"display_name":${deep(32)}}` });
    expect(over.body.error.details[0].field).toBe("(body)");
    // Brackets inside strings are text, not nesting.
    const text = await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "[".repeat(60) } });
    expect(text.status).toBe(200);
    expect(s.logs.filter(isErrorLine)).toEqual([]);
  });

  test("a frame nested thousands of levels deep is a validation_failed error; the socket stays usable", async () => {
    const s = await server({});
    const a = await s.register();
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    ws.ws.send(`{"type":"message.send","request_id":"deep","data":{"conversation_id":"x","content":${deep(6000)}}}`);
    expect((await ws.waitFor((f) => f.request_id === "deep")).error.code).toBe("validation_failed");
    ws.ws.send(`{"type":"message.send","request_id":"deeper","data":${deep(6000)}}`);
    expect((await ws.waitFor((f) => f.request_id === "deeper")).error.code).toBe("validation_failed");
    // The REST body's limit, in an unknown field too (a message was sent and stored with one 50 deep, while REST said 422).
    const conv = (await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "deep" } })).body.id;
    ws.ws.send(`{"type":"message.send","request_id":"extra","data":{"conversation_id":"${conv}","content":"deep","extra":${deep(50)}}}`);
    const refused = await ws.waitFor((f) => f.request_id === "extra");
    expect([refused.type, refused.error?.code, refused.error?.details?.[0]?.field]).toEqual(["error", "validation_failed", "(frame)"]);
    const rest = await s.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, raw: `{"content":"deep","extra":${deep(50)}}` });
    expect(rest.status).toBe(422);
    // At the limit (32 levels from `data`, as from a REST body's own object), the unknown field is dropped and the message goes.
    ws.ws.send(`{"type":"message.send","request_id":"shallow","data":{"conversation_id":"${conv}","content":"shallow","extra":${deep(31)}}}`);
    expect((await ws.waitFor((f) => f.request_id === "shallow" && f.type === "message.receive")).data.content).toBe("shallow");
    expect((await s.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, raw: `{"content":"rest","extra":${deep(31)}}` })).status).toBe(201);
    ws.ws.send(`{"type":"message.send","request_id":"over","data":{"conversation_id":"${conv}","content":"over","extra":${deep(32)}}}`);
    expect((await ws.waitFor((f) => f.request_id === "over")).error.code).toBe("validation_failed");
    expect((await s.api("GET", `/api/conversations/${conv}/messages`, { token: a.token })).body.items.map((m: any) => m.content)).toEqual(["rest", "shallow"]);
    expect((await ws.request("ping")).type).toBe("pong");
    expect(s.logs.filter(isErrorLine)).toEqual([]);
    ws.ws.close();
  });
});

describe("frame size and connection count", () => {
  test("a frame over 64 KiB closes the socket with 1009, told first by alert too_big (retry: the close table's); 64 KiB exactly is served", async () => {
    const s = await server({});
    const a = await s.register();
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    // Counted in bytes, not characters: 65,536 bytes of which ~2/3 are in three-byte characters.
    const frameOf = (bytes: number) => {
      const shell = JSON.stringify({ type: "ping", request_id: "big", data: { pad: "" } });
      const wide = Math.floor((bytes - shell.length) / 3 / 1.5);
      const text = JSON.stringify({ type: "ping", request_id: "big", data: { pad: "€".repeat(wide) + "x".repeat(bytes - shell.length - 3 * wide) } });
      expect(Buffer.byteLength(text)).toBe(bytes);
      return text;
    };
    ws.ws.send(frameOf(64 * 1024));
    expect((await ws.waitFor((f) => f.request_id === "big")).type).toBe("pong");
    ws.ws.send(frameOf(64 * 1024 + 1));
    expect((await ws.waitClosed()).code).toBe(1009);
    expect(ws.all("alert").map((f) => f.data)).toEqual([{ kind: "too_big", message: expect.stringContaining("65536 bytes"), retry: true }]);
    // Past twice the limit Bun itself closes, with the same code (no alert: the frame is never read).
    const huge = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    huge.ws.send(JSON.stringify({ type: "ping", data: { pad: "x".repeat(200 * 1024) } }));
    expect((await huge.waitClosed()).code).toBe(1009);
    expect(s.logs.filter(isErrorLine)).toEqual([]);
  });

  test("MAX_CONNECTIONS_PER_USER: the next upgrade is refused with 429", async () => {
    const s = await server({ maxConnectionsPerUser: 2 });
    const a = await s.register();
    const open = [await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`), await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`)];
    const res = await fetch(`${s.base}/ws/user?token=${a.token}`, { headers: upgradeHeaders });
    expect(res.status).toBe(429);
    expect(((await res.json()) as any).error.code).toBe("rate_limited");
    expect(res.headers.get("retry-after")).toBeString();
    // Upgrades racing each other cannot get past the cap either.
    const racing = await Promise.all(
      Array.from({ length: 4 }, () =>
        new Promise<number>((resolve) => {
          const w = new WebSocket(`${s.wsBase}/ws/user?token=${a.token}`);
          w.onclose = (ev) => resolve(ev.code);
          w.onerror = () => {};
        }),
      ),
    );
    expect(racing.every((code) => code === 1013 || code === 1006 || code === 1002)).toBe(true);
    expect(s.app.hub.connectionsOf(a.user.id)).toBe(2);
    open[0]!.close();
    await open[0]!.waitClosed();
    await Bun.sleep(50);
    const again = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    again.close();
    open[1]!.close();
  });

  test("upgrades racing through a slow count (cluster mode: a round trip each) are refused with 429, never opened and then closed", async () => {
    const s = await server({ maxConnectionsPerUser: 2 });
    const a = await s.register();
    const first = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    // The count answers later, as PostgreSQL's does: every upgrade is past its checks before any is counted.
    const presence = s.app.ctx.presence as unknown as { connect: (...args: unknown[]) => unknown };
    const count = presence.connect.bind(presence);
    presence.connect = async (...args: unknown[]) => (await Bun.sleep(30), count(...args));
    const racing = await Promise.all(
      Array.from({ length: 4 }, () =>
        new Promise<{ opened: boolean; code: number }>((resolve) => {
          const w = new WebSocket(`${s.wsBase}/ws/user?token=${a.token}`);
          let opened = false;
          w.onopen = () => (opened = true);
          w.onclose = (ev) => resolve({ opened, code: ev.code });
          w.onerror = () => {};
          setTimeout(() => resolve({ opened, code: -1 }), 2000); // still open: the one that fits
        }),
      ),
    );
    expect(racing.filter((r) => r.opened)).toEqual([{ opened: true, code: -1 }]);
    expect(racing.filter((r) => !r.opened).map((r) => r.code)).toEqual([1006, 1006, 1006]); // refused before any 101
    first.close();
  });
});

/** A WebSocket client over raw TCP that can stop reading, to play a stalled phone. */
async function rawSocket(port: number, path: string): Promise<{ sock: Socket; received: () => Buffer }> {
  const sock = tcpConnect({ host: "127.0.0.1", port });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.once("connect", () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    });
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      if (Buffer.concat(chunks).includes("\r\n\r\n")) resolve();
    });
  });
  return { sock, received: () => Buffer.concat(chunks) };
}

/** Server frames (unmasked) in a byte stream after the HTTP response: [opcode, payload]. */
function parseFrames(bytes: Buffer): [number, Buffer][] {
  let i = bytes.indexOf("\r\n\r\n") + 4;
  const out: [number, Buffer][] = [];
  while (i + 2 <= bytes.length) {
    const opcode = bytes[i]! & 0x0f;
    let len = bytes[i + 1]! & 0x7f;
    let head = 2;
    if (len === 126) { len = bytes.readUInt16BE(i + 2); head = 4; }
    else if (len === 127) { len = Number(bytes.readBigUInt64BE(i + 2)); head = 10; }
    if (i + head + len > bytes.length) break;
    out.push([opcode, bytes.subarray(i + head, i + head + len)]);
    i += head + len;
  }
  return out;
}

/** Frames of one connection, until it closes or its replay completes. */
function collectUntilClosedOrSynced(url: string): Promise<any[]> {
  return new Promise((resolve) => {
    const frames: any[] = [];
    const ws = new WebSocket(url);
    ws.onmessage = (ev) => {
      const f = JSON.parse(String(ev.data));
      frames.push(f);
      if (f.type === "sync.complete") {
        ws.close();
        resolve(frames);
      }
    };
    ws.onclose = () => resolve(frames);
  });
}

describe("heartbeat", () => {
  test("a dead peer (no pongs) goes offline within 2 × HEARTBEAT_INTERVAL_MS", async () => {
    const s = await server({ heartbeatIntervalMs: 1000 });
    const [dead, watcher] = [await s.register(), await s.register()];
    const { body: f } = await s.api("POST", "/api/friendships", { token: watcher.token, body: { friend_id: dead.user.id } });
    await s.api("PATCH", `/api/friendships/${f.id}/accept`, { token: dead.token });
    const w = await TestSocket.connect(`${s.wsBase}/ws/user?token=${watcher.token}`);
    await w.request("user.status.subscribe", { user_id: dead.user.id });
    // A raw client that completes the handshake and then never answers a ping.
    const peer = await rawSocket(Number(new URL(s.base).port), `/ws/user?token=${dead.token}`);
    await w.waitFor((x) => x.type === "user.online" && x.request_id === undefined);
    peer.sock.pause();
    const started = performance.now();
    await w.waitFor((x) => x.type === "user.offline" && x.request_id === undefined, 15_000);
    const seconds = (performance.now() - started) / 1000;
    if (process.env.SHOW_HEARTBEAT) console.log("offline after", seconds.toFixed(2), "s");
    // The contract's bound is 2 × the interval (plus the time to notice and announce).
    expect(seconds).toBeLessThan(2 * 1 + 1);
    peer.sock.destroy();
    w.close();
  }, 30_000);
});

/**
 * A backlog of `count` messages of 16 KB each in UTF-8 (3,990 characters of 4 bytes, about
 * the most one message may hold): few sends for many bytes. Sent 50 at a time into four
 * groups of `owner` with `members`, since PostgreSQL takes one conversation's sends in turn.
 */
async function backlog(s: TestServer, owner: Account, members: Account[], count: number) {
  const groups: string[] = [];
  for (let k = 0; k < 4; k++) groups.push((await s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title: `t${k}`, member_ids: members.map((m) => m.user.id) } })).body.id);
  const text = "😀".repeat(3990);
  return {
    async send() {
      for (let i = 0; i < count; i += 50)
        await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => s.api("POST", `/api/conversations/${groups[j % 4]}/messages`, { token: owner.token, body: { content: `${i + j} ${text}` } })));
    },
  };
}

describe("slow consumers", () => {
  test("a socket that stops reading gets alert slow_consumer and close 1013; the others receive at full speed", async () => {
    const s = await server({ maxBufferedBytes: 1024 * 1024, slowConsumerCheckMs: 100, sendsPerMinute: 10_000_000 });
    const [sender, stalled, healthy] = [await s.register(), await s.register(), await s.register()];
    // ~21 MB, past the kernel's socket buffers and MAX_BUFFERED_BYTES.
    const COUNT = 1300;
    const messages = await backlog(s, sender, [stalled, healthy], COUNT);
    const good = await TestSocket.connect(`${s.wsBase}/ws/user?token=${healthy.token}`);
    const port = Number(new URL(s.base).port);
    const slow = await rawSocket(port, `/ws/user?token=${stalled.token}`);
    await Bun.sleep(50);
    slow.sock.pause(); // stop reading: the kernel buffers fill, then the server's.

    const sending = messages.send();

    // The server gives up on the stalled socket while the sends go on; reading again shows
    // the alert and 1013. (Read soon: a closing socket whose peer reads nothing is cut by
    // Bun after a few seconds, its last frames with it.)
    await waitFor(() => s.logs.some((l) => l.msg === "closing slow consumer"), 50_000);
    const metrics = await (await fetch(`${s.base}/metrics`)).text();
    expect(metrics).toMatch(/parley_ws_slow_consumers_total [1-9]/);
    slow.sock.resume();
    await new Promise<void>((resolve) => slow.sock.once("close", () => resolve()));
    await sending;

    // The healthy socket got everything, while the stalled one was still open or being closed.
    await good.waitFor(() => good.all("message.receive").length === COUNT, 10_000).catch(() => {});
    expect(good.all("message.receive")).toHaveLength(COUNT);
    expect(good.closed).toBeNull();

    const frames = parseFrames(slow.received());
    const texts = frames.filter(([op]) => op === 1).map(([, p]) => JSON.parse(p.toString()));
    expect(texts.some((f) => f.type === "alert" && f.data.kind === "slow_consumer")).toBe(true);
    const close = frames.find(([op]) => op === 8);
    expect(close?.[1].readUInt16BE(0)).toBe(1013);

    // It recovers everything with since: a backlog bigger than the buffer limit comes in
    // pieces (each cut with 1013), each resuming from the last seq received.
    let since = Math.max(...texts.filter((f) => f.seq).map((f) => f.seq), texts.find((f) => f.type === "connect").data.last_seq);
    let got = texts.filter((f) => f.type === "message.receive").length;
    for (let attempt = 0; attempt < 50; attempt++) {
      const frames = await collectUntilClosedOrSynced(`${s.wsBase}/ws/user?token=${stalled.token}&since=${since}`);
      got += frames.filter((f) => f.type === "message.receive").length;
      since = Math.max(since, ...frames.filter((f) => f.seq).map((f) => f.seq));
      if (frames.some((f) => f.type === "sync.complete")) break;
    }
    expect(got).toBe(COUNT);
    good.close();
  }, 90_000);
  test("a first socket cut short in its replay announces nothing; a reconnect within the grace announces online", async () => {
    const s = await server({ maxBufferedBytes: 64 * 1024, sendsPerMinute: 10_000_000, presenceGraceMs: 3000 });
    const [user, watcher] = [await s.register(), await s.register()];
    // ~14 MB, far larger than the socket buffers.
    const messages = await backlog(s, watcher, [user], 900);
    const w = await TestSocket.connect(`${s.wsBase}/ws/user?token=${watcher.token}`);
    expect((await w.request("user.status.subscribe", { user_id: user.user.id })).type).toBe("user.offline");
    const since = w.frames.find((f) => f.type === "connect")!.data.last_seq;
    // A backlog far larger than the socket buffers: the replay is cut short with 1013.
    await messages.send();
    const code = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${s.wsBase}/ws/user?token=${user.token}&since=${since}`);
      ws.onclose = (ev) => resolve(ev.code);
    });
    expect(code).toBe(1013);
    const back = await TestSocket.connect(`${s.wsBase}/ws/user?token=${user.token}`);
    const online = await w.waitFor((f) => f.type === "user.online", 5000);
    expect(online.data.user_id).toBe(user.user.id);
    expect(w.all("user.offline")).toHaveLength(1); // only the reply to the subscription
    back.close();
  }, 90_000);
});
