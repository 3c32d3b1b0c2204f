/**
 * What the fuzzer aims at: a valid template for every REST route and every client frame
 * type, built from the fuzzer's world (its own conversations, messages, friendships, and
 * other users' ones it must never reach). Routes are read from the app, so a route
 * without a template is reported (see missingTemplates) rather than silently skipped.
 */
import type { Account, TestServer } from "../helpers";
import { CLIENT_FRAMES, type ClientType } from "../../src/realtime/protocol";
import { createTokens } from "../../src/auth/tokens";
import { loadOrCreateSecret } from "../../src/auth/secret";
import type { Rng } from "./rng";

/** Ids the fuzzer has seen, most recent last (bounded). */
export interface Pools { convs: string[]; messages: string[]; friendships: string[]; users: string[]; cursors: string[]; attachments: string[]; links: string[]; assets: string[] }

export interface World {
  me: Account;
  /** Member of the fuzzer's groups, its friend: makes member, presence and read paths reachable. */
  peer: Account;
  /** Two users with a conversation, messages and a friendship the fuzzer is no part of. */
  victims: [Account, Account];
  own: Pools;
  /** The fuzzer's conversations that fell out of the pool, to delete. */
  retired: string[];
  /** The victims' conversation, message and friendship ids: never reachable by the fuzzer. */
  foreign: { convs: string[]; messages: string[]; friendships: string[]; users: string[]; attachments: string[] };
  /** Tokens that must all be 401: forged, wrongly signed, expired, of no user, garbage. */
  badTokens: string[];
  /** The victims' private data as the victims saw it before the run; compared at the end. */
  snapshot: () => Promise<string>;
}

const POOL_SIZE = 30;
/** Adds an id to a pool; returns the id that fell out of it, if any. */
export function remember(pool: string[], id: unknown): string | undefined {
  if (typeof id !== "string" || pool.includes(id)) return undefined;
  pool.push(id);
  return pool.length > POOL_SIZE ? pool.shift() : undefined;
}

/**
 * A conversation the fuzzer made; one that falls out of the pool is deleted at the next
 * replenish, so a long run's user does not end up in thousands of conversations (every
 * reconnect would subscribe to them all, and the run would slow down as it goes).
 */
export function rememberConversation(w: World, id: unknown) {
  const old = remember(w.own.convs, id);
  if (old !== undefined) w.retired.push(old);
}

const ok = async <T = any>(p: Promise<{ status: number; body: T }>, what: string): Promise<T> => {
  const res = await p;
  if (res.status >= 300) throw new Error(`fuzz setup: ${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
};

export async function befriend(s: TestServer, a: Account, b: Account): Promise<string> {
  const req = await ok(s.api("POST", "/api/friendships", { token: a.token, body: { friend_id: b.user.id } }), "friend request");
  await ok(s.api("PATCH", `/api/friendships/${req.id}/accept`, { token: b.token }), "accept");
  return req.id;
}

/** Gives the fuzzer fresh things to act on: a group with its peer, and two messages in it. */
export async function replenish(s: TestServer, w: World, r: Rng) {
  // Whatever the fuzzer did to them meanwhile (left, deleted already), so the answer is not checked.
  for (const id of w.retired.splice(0)) await s.api("DELETE", `/api/conversations/${id}`, { token: w.me.token });
  const g = await ok(s.api("POST", "/api/conversations", { token: w.me.token, body: { type: "group", title: `fuzz ${r.int(1e6)}`, member_ids: [w.peer.user.id] } }), "group");
  rememberConversation(w, g.id);
  for (const who of [w.me, w.peer]) {
    const m = await ok(s.api("POST", `/api/conversations/${g.id}/messages`, { token: who.token, body: { content: `hello @${w.me.user.username}` } }), "message");
    remember(w.own.messages, m.id);
  }
}

export async function makeWorld(s: TestServer, r: Rng): Promise<World> {
  const [me, peer, v1, v2] = [await s.register(), await s.register(), await s.register(), await s.register()];
  // Friends first: with CONTACT_POLICY=friends only friends can be put into a conversation.
  const vFriendship = await befriend(s, v1, v2);
  await befriend(s, me, peer);
  const vGroup = await ok(s.api("POST", "/api/conversations", { token: v1.token, body: { type: "group", title: "private", member_ids: [v2.user.id] } }), "victim group");
  const vDirect = await ok(s.api("POST", "/api/conversations", { token: v1.token, body: { type: "direct", user_id: v2.user.id } }), "victim direct");
  const vFile = await ok(upload(s, v2.token, PNG, "image/png", "secret.png"), "victim upload");
  const vMessages: string[] = [];
  for (const c of [vGroup.id, vDirect.id]) {
    const attachments = c === vGroup.id ? { attachment_ids: [vFile.id] } : {};
    const m = await ok(s.api("POST", `/api/conversations/${c}/messages`, { token: v2.token, body: { content: "secret", ...attachments } }), "victim message");
    vMessages.push(m.id);
  }
  await ok(s.api("POST", `/api/messages/${vMessages[0]}/reactions`, { token: v1.token, body: { emoji: "👍" } }), "victim reaction");
  const expired = await createTokens(loadOrCreateSecret(s.dataDir, null), -3600).issue(me.user.id);
  const foreignSigned = await createTokens("another server's secret, 32 characters or more", 3600).issue(me.user.id);
  const ofNoUser = await createTokens(loadOrCreateSecret(s.dataDir, null), 3600).issue("01a00000-0000-7000-8000-000000000000");
  const [header, payload] = me.token.split(".");
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const w: World = {
    me,
    peer,
    victims: [v1, v2],
    own: { convs: [], messages: [], friendships: [], users: [me.user.id, peer.user.id], cursors: [], attachments: [], links: [], assets: [] },
    retired: [],
    foreign: { convs: [vGroup.id, vDirect.id], messages: vMessages, friendships: [vFriendship], users: [v1.user.id, v2.user.id], attachments: [vFile.id] },
    badTokens: [
      expired.token,
      foreignSigned.token,
      ofNoUser.token,
      `${b64({ alg: "none", typ: "JWT" })}.${payload}.`,
      `${header}.${b64({ sub: v1.user.id, exp: 4102444800 })}.${me.token.split(".")[2]}`,
      me.token.slice(0, -2),
      `${me.token}x`,
      "",
      "null",
      "a.b.c",
      "\u0000",
      "x".repeat(5000),
    ],
    snapshot: async () => {
      const parts = [];
      for (const c of [vGroup.id, vDirect.id]) {
        parts.push(await ok(s.api("GET", `/api/conversations/${c}`, { token: v1.token }), "victim conversation"));
        parts.push(await ok(s.api("GET", `/api/conversations/${c}/messages`, { token: v1.token }), "victim messages"));
      }
      parts.push(await ok(s.api("GET", "/api/friendships?status=accepted", { token: v2.token }), "victim friendships"));
      // Attachment links are signed anew, with a new expiry, for every response.
      return JSON.stringify(parts).replace(/(\/api\/attachments\/[^"?]*)\?[^"]*/g, "$1");
    },
  };
  await replenish(s, w, r);
  return w;
}

/** A 1×1 PNG: the smallest image the server decodes and thumbnails. */
export const PNG = Uint8Array.from(Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64"));

/** A PNG header claiming 50,000 × 50,000 pixels (a decompression bomb's first bytes). */
function bombHeader(): Uint8Array {
  const ihdr = Buffer.alloc(17);
  ihdr.write("IHDR", 0, "latin1");
  ihdr.writeUInt32BE(50_000, 4);
  ihdr.writeUInt32BE(50_000, 8);
  ihdr.set([8, 6, 0, 0, 0], 12);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(Bun.hash.crc32(ihdr) >>> 0);
  return Uint8Array.from(Buffer.concat([PNG.subarray(0, 8), Buffer.from([0, 0, 0, 13]), ihdr, crc]));
}

const multipart = (content: string, filename: string, close = true) =>
  `--fz\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: text/plain\r\n\r\n${content}\r\n${close ? "--fz--\r\n" : ""}`;

/** A file to upload: text, an image, a damaged image, a bomb's header, multipart forms. */
function uploadBody(r: Rng): { raw: string | Uint8Array; type: string } {
  switch (r.int(6)) {
    case 0: return { raw: "hello, file", type: "text/plain" };
    case 1: return { raw: PNG, type: "image/png" };
    case 2: {
      const bytes = PNG.slice(0, r.chance(0.5) ? PNG.length : 8 + r.int(PNG.length - 8));
      for (let i = r.int(4); i > 0; i--) bytes[8 + r.int(bytes.length - 8)] = r.int(256);
      return { raw: bytes, type: r.pick(["image/png", "image/jpeg", "application/octet-stream"]) };
    }
    case 3: return { raw: bombHeader(), type: "image/png" };
    case 4: return { raw: r.pick(["<html><script>alert(1)</script>", "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", ""]), type: r.pick(["text/html", "image/svg+xml", "image/png"]) };
    default: return { raw: multipart("form file", r.pick(["a.txt", "../../etc/passwd", "\u202egnp.exe", ""]), r.chance(0.8)), type: r.pick(["multipart/form-data; boundary=fz", "multipart/form-data", "multipart/form-data; boundary=other"]) };
  }
}

/** Uploads a file; answers like TestServer.api. */
export async function upload(s: TestServer, token: string, raw: string | Uint8Array, type: string, filename: string) {
  const res = await fetch(`${s.base}/api/uploads?filename=${encodeURIComponent(filename)}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": type }, body: raw });
  const text = await res.text();
  let body: any = text;
  try { body = JSON.parse(text); } catch {}
  return { status: res.status, body };
}

/** A REST request before mutation; `raw` is a body that is not JSON (an upload). */
export interface RestInput { params?: Record<string, string>; query?: Record<string, string>; body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string>; token?: string | null }
type RestTemplate = (w: World, r: Rng) => RestInput;

const any = (r: Rng, pool: string[], fallback: string) => (pool.length ? r.pick(pool) : fallback);
const conv = (w: World, r: Rng) => any(r, w.own.convs, "no-conversation");
const msg = (w: World, r: Rng) => any(r, w.own.messages, "no-message");
const user = (w: World, r: Rng) => r.pick([...w.own.users, ...w.foreign.users]);
const friendship = (w: World, r: Rng) => any(r, w.own.friendships, "no-friendship");
const limit = (r: Rng) => String(r.pick([1, 2, 10, 50, 100]));
const content = (w: World, r: Rng) => r.pick(["hi", "hello there", `@${w.me.user.username} look`, "👍", "  padded  "]);
const cursorMaybe = (w: World, r: Rng): Record<string, string> => (w.own.cursors.length && r.chance(0.3) ? { cursor: r.pick(w.own.cursors) } : {});

/** One definition for the REST body and the `conversation.create` frame. */
const createConversation = (w: World, r: Rng) =>
  r.chance(0.5) ? { type: "direct", user_id: user(w, r) } : { type: "group", title: `g${r.int(1000)}`, member_ids: [w.peer.user.id] };
const send = (w: World, r: Rng) => ({
  content: content(w, r),
  ...(r.chance(0.3) ? { client_msg_id: `c${r.int(50)}` } : {}),
  ...(r.chance(0.2) ? { reply_to_id: msg(w, r) } : {}),
  ...(w.own.attachments.length && r.chance(0.2) ? { attachment_ids: [r.pick(w.own.attachments)] } : {}),
});

/** A download: by bearer, or by one of the signed links the fuzzer was given (no bearer). */
function download(w: World, r: Rng, thumbnail: boolean): RestInput {
  const headers = r.chance(0.3) ? { range: r.pick(["bytes=0-3", "bytes=-2", "bytes=5-", "bytes=9-1", "bytes=0-1,4-5", "bytes=x", "bytes=99999999999-"]) } : undefined;
  const links = w.own.links.filter((l) => l.includes("/thumbnail?") === thumbnail);
  if (links.length && r.chance(0.4)) {
    const link = new URL(r.pick(links), "http://x");
    const id = link.pathname.split("/")[3]!;
    return { params: { id }, query: Object.fromEntries(link.searchParams), token: null, headers };
  }
  return { params: { id: any(r, w.own.attachments, "no-attachment") }, headers };
}

export const REST_TEMPLATES: Record<string, RestTemplate> = {
  "GET /docs": () => ({ token: null }),
  "GET /docs/scalar": () => ({ token: null }),
  "GET /docs/json": () => ({ token: null }),
  "GET /docs/asyncapi.json": () => ({ token: null }),
  "GET /docs/ws": () => ({ token: null }),
  "GET /health": () => ({ token: null }),
  "GET /metrics": () => ({ token: null }),
  "POST /api/auth/register": (_w, r) => ({ token: null, body: { username: `fz${r.int(1e9).toString(36)}`, password: "password123", ...(r.chance(0.5) ? { display_name: "Fuzz" } : {}) } }),
  "POST /api/auth/refresh": () => ({}),
  "GET /": () => ({ token: null }),
  "GET /c/:id": (w, r) => ({ params: { id: conv(w, r) }, token: null }),
  "GET /assets/:file": (w, r) => ({ params: { file: any(r, w.own.assets, "index.js") }, token: null }),
  "POST /api/auth/login": (w) => ({ token: null, body: { username: w.me.user.username, password: w.me.password } }),
  "GET /api/users/me": () => ({}),
  "GET /api/contact-policy": () => ({}),
  "PATCH /api/users/me": (w, r) => ({
    body: {
      display_name: `Fuzz ${r.int(100)}`,
      ...(r.chance(0.5) ? { profile_image_url: r.pick(["https://img.example/a.png", null]) } : {}),
      // One of the fuzzer's uploads (an image, or not; attached or not) made the picture.
      ...(r.chance(0.3) ? { avatar_attachment_id: any(r, w.own.attachments, "no-attachment") } : {}),
    },
  }),
  "GET /api/users/:id": (w, r) => ({ params: { id: user(w, r) } }),
  "GET /api/users": (w, r) => ({ query: { q: r.pick(["fz", "user", "Fuzz", ""]), limit: limit(r), ...cursorMaybe(w, r) } }),
  "POST /api/friendships": (w, r) => ({ body: { friend_id: user(w, r) } }),
  "PATCH /api/friendships/:id/accept": (w, r) => ({ params: { id: friendship(w, r) } }),
  "PATCH /api/friendships/:id/reject": (w, r) => ({ params: { id: friendship(w, r) } }),
  "DELETE /api/friendships/:id": (w, r) => ({ params: { id: friendship(w, r) } }),
  "GET /api/friendships": (w, r) => ({ query: { ...(r.chance(0.5) ? { status: r.pick(["accepted", "pending", "rejected"]) } : {}), ...(r.chance(0.3) ? { direction: r.pick(["incoming", "outgoing"]) } : {}), limit: limit(r), ...cursorMaybe(w, r) } }),
  "POST /api/conversations": (w, r) => ({ body: createConversation(w, r) }),
  "GET /api/conversations": (w, r) => ({ query: { limit: limit(r), ...cursorMaybe(w, r) } }),
  "GET /api/conversations/:id": (w, r) => ({ params: { id: conv(w, r) } }),
  "PATCH /api/conversations/:id": (w, r) => ({ params: { id: conv(w, r) }, body: { title: `renamed ${r.int(100)}` } }),
  "DELETE /api/conversations/:id": (w, r) => ({ params: { id: conv(w, r) } }),
  "GET /api/conversations/:id/members": (w, r) => ({ params: { id: conv(w, r) }, query: { limit: limit(r), ...cursorMaybe(w, r) } }),
  "POST /api/conversations/:id/members": (w, r) => ({ params: { id: conv(w, r) }, body: { user_ids: [user(w, r)] } }),
  "DELETE /api/conversations/:id/members/:user_id": (w, r) => ({ params: { id: conv(w, r), user_id: user(w, r) } }),
  "PATCH /api/conversations/:id/members/:user_id": (w, r) => ({ params: { id: conv(w, r), user_id: user(w, r) }, body: { role: r.pick(["owner", "admin", "member"]) } }),
  "POST /api/conversations/:id/messages": (w, r) => ({ params: { id: conv(w, r) }, body: send(w, r) }),
  "GET /api/conversations/:id/messages": (w, r) => ({
    params: { id: conv(w, r) },
    query: { limit: limit(r), ...(r.chance(0.3) ? { [r.pick(["before", "after"])]: msg(w, r) } : {}), ...cursorMaybe(w, r) },
  }),
  "POST /api/conversations/:id/read": (w, r) => ({ params: { id: conv(w, r) }, body: { message_id: msg(w, r) } }),
  "PATCH /api/messages/:id": (w, r) => ({ params: { id: msg(w, r) }, body: { content: content(w, r) } }),
  "DELETE /api/messages/:id": (w, r) => ({ params: { id: msg(w, r) } }),
  "POST /api/messages/:id/reactions": (w, r) => ({ params: { id: msg(w, r) }, body: { emoji: r.pick(["👍", "❤️", "ok", "👨‍👩‍👧"]) } }),
  "DELETE /api/messages/:id/reactions/:emoji": (w, r) => ({ params: { id: msg(w, r), emoji: r.pick(["👍", "❤️", "ok"]) } }),
  "POST /api/uploads": (_w, r) => {
    const { raw, type } = uploadBody(r);
    return { raw, headers: { "content-type": type }, query: { filename: r.pick(["a.txt", "photo.png", "x", "ünïcode ✓.pdf"]) } };
  },
  "GET /api/avatars/:id": (w, r) => ({ params: { id: any(r, w.own.attachments, "no-attachment") }, token: null }),
  "HEAD /api/avatars/:id": (w, r) => ({ params: { id: any(r, w.own.attachments, "no-attachment") }, token: null }),
  "GET /api/attachments/:id": (w, r) => download(w, r, false),
  "HEAD /api/attachments/:id": (w, r) => download(w, r, false),
  "GET /api/attachments/:id/thumbnail": (w, r) => download(w, r, true),
  "HEAD /api/attachments/:id/thumbnail": (w, r) => download(w, r, true),
  // "secret" is the victims' word: their messages must never come back.
  "GET /api/search/messages": (w, r) => ({
    query: {
      q: r.pick(["hello", "look", "\"hello there\"", "he", "👍", "secret", "fuzz hello"]),
      ...(r.chance(0.3) ? { conversation_id: conv(w, r) } : {}),
      ...(r.chance(0.2) ? { sender_id: user(w, r) } : {}),
      ...(r.chance(0.2) ? { [r.pick(["before", "after"])]: new Date(Date.now() - r.int(3600_000)).toISOString() } : {}),
      limit: limit(r),
      ...cursorMaybe(w, r),
    },
  }),
  "GET /api/search/conversations": (w, r) => ({ query: { q: r.pick(["fuzz", "g", "renamed", "private", "user"]), limit: limit(r), ...cursorMaybe(w, r) } }),
  "GET /api/events": (_w, r) => ({ query: { since: String(r.pick([0, 1, 10])), limit: String(r.pick([1, 100, 1000])) } }),
  "POST /api/ws/ticket": () => ({}),
  "GET /ws/user": () => ({}),
};

type FrameTemplate = (w: World, r: Rng) => unknown;

export const FRAME_TEMPLATES: Record<ClientType, FrameTemplate> = {
  ping: (_w, r) => (r.chance(0.5) ? {} : undefined),
  disconnect: () => ({}),
  "message.send": (w, r) => ({ conversation_id: conv(w, r), ...send(w, r) }),
  "message.edit": (w, r) => ({ message_id: msg(w, r), content: content(w, r) }),
  "message.delete": (w, r) => ({ message_id: msg(w, r) }),
  "message.read": (w, r) => ({ conversation_id: conv(w, r), message_id: msg(w, r) }),
  "message.typing": (w, r) => ({ conversation_id: conv(w, r), is_typing: r.chance(0.5) }),
  "conversation.join": (w, r) => ({ conversation_id: conv(w, r) }),
  "conversation.leave": (w, r) => ({ conversation_id: conv(w, r) }),
  "conversation.active": (w, r) => ({ conversation_id: r.chance(0.2) ? null : conv(w, r) }),
  "conversation.create": (w, r) => createConversation(w, r),
  "conversation.load": (w, r) => ({ limit: Number(limit(r)), ...cursorMaybe(w, r) }),
  "user.status.subscribe": (w, r) => (r.chance(0.5) ? { user_id: user(w, r) } : { user_ids: [w.peer.user.id, w.me.user.id] }),
  "user.status.unsubscribe": (w, r) => (r.chance(0.5) ? { user_id: user(w, r) } : { user_ids: [w.peer.user.id] }),
};

/** Routes handled elsewhere: the WebSocket upgrade is fuzzed through frames and upgrades. */
const COVERED_BY_FRAMES = new Set(["WS /ws/user"]);

/** "METHOD /path" of every route of the app. */
export const routesOf = (s: TestServer) => s.app.app.routes.map((r) => `${r.method} ${r.path}`);

/** Routes and frame types the fuzzer has no template for: each must get one. */
export function missingTemplates(s: TestServer): string[] {
  const routes = routesOf(s).filter((k) => !COVERED_BY_FRAMES.has(k) && !REST_TEMPLATES[k]);
  const frames = Object.keys(CLIENT_FRAMES).filter((t) => !(t in FRAME_TEMPLATES)).map((t) => `frame ${t}`);
  return [...routes, ...frames];
}
