/**
 * The Parley reference client: no dependencies, for browsers and Bun.
 *
 * - connects with a token (or a fresh ticket per connection, keeping the JWT out of URLs);
 * - reconnects with exponential backoff and full jitter, resuming from the last seq it
 *   processed and its epoch (`?since=&epoch=`), so nothing is lost and nothing is handled
 *   twice — and a server restored from a backup (another epoch) answers `sync.reset`;
 * - tells temporary ends (network, restart, slow consumer, rate limit, 429/5xx) from
 *   terminal ones (a refused or expired token, 4001/4003, its own `disconnect`) by the
 *   close-code table in ../realtime/close-codes.ts (copy it along): after a terminal one it
 *   stops and reports (`close` with `retry: false`, state "closed"). A token that expired
 *   while connected is not the end when `token` is a function that now gives another (the
 *   app refreshed it): the client reconnects with that one;
 * - notices a connection gone silent (a phone off the network, a sleeping laptop: no close
 *   ever comes): it pings one quiet for `heartbeatMs` and replaces it after twice that; an
 *   app that knows the network went (a browser's `offline`/`online` events) calls `drop()`
 *   and `reconnectNow()`;
 * - re-subscribes its presence subscriptions after every reconnect;
 * - typed handlers for every server frame, and promise-returning requests matched by
 *   request_id.
 *
 * ```ts
 * const client = new ParleyClient({ url: "https://chat.example.com", token });
 * client.on("message.receive", (m) => render(m));
 * client.on("sync.reset", () => reloadEverythingOverRest());
 * client.on("close", ({ retry }) => { if (!retry) askToLogInAgain(); });
 * await client.connect();
 * await client.request("message.send", { conversation_id, content: "hi", client_msg_id: crypto.randomUUID() });
 * ```
 */
import type { ClientRequests, ServerEventType, ServerEvents, ServerFrame } from "./types";
import { retryAfterClose, retryAfterStatus } from "../realtime/close-codes";

export type * from "./types";
export { CLOSE_CODES, retryAfterClose, retryAfterStatus, type CloseCode } from "../realtime/close-codes";

/** How a connection (or an attempt at one) ended, and what the client does next. */
export interface CloseInfo {
  /** The WebSocket close code; 0 when no socket was opened (the ticket request failed). */
  code: number;
  reason: string;
  /** true: it reconnects with backoff and resumes; false: it has stopped (state "closed"). */
  retry: boolean;
  /** The HTTP status that refused the ticket request or the token, when that is why. */
  status?: number;
}

export interface ParleyClientOptions {
  /**
   * The server's base URL, e.g. `http://localhost:8080`; or the nodes of a cluster, tried in
   * turn: after a connection or an attempt ends, the next one goes to the next URL (a node
   * that died is left for another, and resuming there loses nothing).
   */
  url: string | string[];
  /** A JWT, or a function returning the current one (asked again for every attempt). */
  token?: string | (() => string | Promise<string>);
  /** Use single-use tickets (`POST /api/ws/ticket`) instead of putting the token in the URL. */
  useTickets?: boolean;
  /** Resume from this seq on the first connection (e.g. persisted by the app)… */
  lastSeq?: number;
  /** …of this epoch (persist `client.epoch` with `client.lastSeq`). */
  epoch?: string;
  /** Reconnect backoff: first delay and cap, in ms (defaults 250 and 30000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How long a request waits for its reply (default 10000 ms). */
  requestTimeoutMs?: number;
  /**
   * A connection that has said nothing for this long gets a `ping`; one silent for twice as
   * long is given up as dead and replaced (default 20000 ms; 0: never). A phone that drops
   * off the network or a laptop that sleeps leaves a socket that never reports its close.
   */
  heartbeatMs?: number;
  /** A WebSocket implementation (defaults to the global one). */
  WebSocket?: typeof WebSocket;
}

export class ParleyError extends Error {
  constructor(readonly code: string, message: string, readonly details?: unknown, readonly status?: number, readonly retryAfterMs?: number) {
    super(message);
  }
}

type Handler<T extends ServerEventType> = (data: ServerEvents[T], frame: ServerFrame<T>) => void;
type State = "idle" | "connecting" | "open" | "closed";

export class ParleyClient {
  /** The highest seq processed; persisted events at or below it are ignored. */
  lastSeq: number;
  /** The event log's timeline that lastSeq belongs to (from connect, sync.complete, sync.reset). */
  epoch: string | undefined;
  /** Whether lastSeq is a real position (0 is one too, on a server whose log is empty). */
  private hasPosition: boolean;
  state: State = "idle";
  private ws: WebSocket | null = null;
  private handlers = new Map<string, Set<Handler<never>>>();
  private pending = new Map<string, { resolve: (f: ServerFrame) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private statusSubscriptions = new Set<string>();
  private attempt = 0;
  /** The last `alert` on the current socket: its `retry` and `retry_after_ms` shape the reconnect. */
  private alert: ServerEvents["alert"] | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  /** When the current socket last delivered a frame, and the timer that watches it (heartbeatMs). */
  private lastHeard = 0;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private counter = 0;
  private readonly WS: typeof WebSocket;
  private readonly urls: string[];
  /** Which of `urls` the current connection (or attempt) uses. */
  private current = 0;
  /** The token the current connection (or attempt) presented. */
  private presented: string | undefined;

  constructor(private options: ParleyClientOptions) {
    this.lastSeq = options.lastSeq ?? 0;
    this.epoch = options.epoch;
    this.hasPosition = options.lastSeq !== undefined;
    this.WS = options.WebSocket ?? globalThis.WebSocket;
    this.urls = (Array.isArray(options.url) ? options.url : [options.url]).map((u) => u.replace(/\/$/, ""));
    if (!this.urls.length) throw new Error("ParleyClient: no url");
  }

  /** The base URL in use now (one of `url`). */
  get baseUrl(): string {
    return this.urls[this.current]!;
  }

  /** Registers a handler for a server frame type; returns a function that removes it. */
  on<T extends ServerEventType | "open" | "close">(type: T, handler: T extends ServerEventType ? Handler<T> : T extends "close" ? (info: CloseInfo) => void : () => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => set!.delete(handler as Handler<never>);
  }

  /**
   * Connects (and keeps reconnecting until close() or a terminal end). Resolves once the
   * first connection is synced; rejects when the client stops before that (`unauthorized`
   * for a refused token, `forbidden`, else `closed`).
   */
  connect(): Promise<void> {
    if (this.state === "open" || this.state === "connecting") return Promise.resolve();
    this.state = "connecting";
    this.attempt = 0;
    return new Promise((resolve, reject) => {
      const off = this.on("conversation.list", () => {
        off();
        offClose();
        resolve();
      });
      const offClose = this.on("close", (info) => {
        if (this.state === "closed") {
          off();
          offClose();
          const code = info.status === 401 || info.code === 4001 ? "unauthorized" : info.code === 4003 ? "forbidden" : "closed";
          reject(new ParleyError(code, `closed before connecting (${info.status ?? info.code}: ${info.reason})`, undefined, info.status));
        }
      });
      void this.open();
    });
  }

  /**
   * The network is known to be gone (a browser's `offline` event): the socket is given up
   * now, as a lost connection (it reconnects with backoff), rather than when it times out.
   */
  drop(reason = "the network went away") {
    if (this.ws) this.giveUp(this.ws, reason);
  }

  /** The network is back (a browser's `online` event): the next attempt starts now, not after its backoff. */
  reconnectNow() {
    if (this.state !== "connecting" || this.ws || !this.reconnectTimer) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.attempt = 0;
    void this.open();
  }

  /** Closes for good: no reconnect; pending requests are rejected. */
  close() {
    this.state = "closed";
    this.stopHeartbeat();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    // Between attempts there is no socket whose close would settle a pending connect().
    if (this.ws) this.ws.close(1000);
    else this.emit("close", { code: 1000, reason: "client closed", retry: false } satisfies CloseInfo);
    this.failPending(new ParleyError("closed", "client closed"));
  }

  /** Sends a frame and resolves with the reply that carries its request_id (rejects on `error`). */
  request<T extends keyof ClientRequests>(type: T, data?: ClientRequests[T]): Promise<ServerFrame> {
    const id = `${Date.now().toString(36)}-${(++this.counter).toString(36)}`;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== 1) return reject(new ParleyError("disconnected", "not connected"));
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ParleyError("timeout", `${type}: no reply`));
      }, this.options.requestTimeoutMs ?? 10_000);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type, data, request_id: id }));
    });
  }

  /** Sends a frame without waiting for anything. Returns false when not connected. */
  send<T extends keyof ClientRequests>(type: T, data?: ClientRequests[T]): boolean {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify({ type, data }));
    return true;
  }

  /** Follows users' presence; remembered and renewed after every reconnect. */
  async subscribeStatus(userIds: string[]) {
    for (const id of userIds) this.statusSubscriptions.add(id);
    if (this.state === "open") await this.request("user.status.subscribe", { user_ids: userIds });
  }

  async unsubscribeStatus(userIds: string[]) {
    for (const id of userIds) this.statusSubscriptions.delete(id);
    if (this.state === "open") await this.request("user.status.unsubscribe", { user_ids: userIds });
  }

  private api(path: string) {
    return this.baseUrl + path;
  }

  private token() {
    return typeof this.options.token === "function" ? this.options.token() : this.options.token;
  }

  private async socketUrl(): Promise<string> {
    const base = this.api("/ws/user").replace(/^http/, "ws");
    const token = await this.token();
    this.presented = token;
    const params = new URLSearchParams();
    if (this.options.useTickets) {
      const res = await fetch(this.api("/api/ws/ticket"), { method: "POST", headers: token ? { authorization: `Bearer ${token}` } : {} });
      if (!res.ok) {
        const after = Number(res.headers.get("retry-after"));
        throw new ParleyError(res.status === 401 ? "unauthorized" : "ticket_failed", `ticket request answered ${res.status}`, undefined, res.status, after > 0 ? after * 1000 : undefined);
      }
      params.set("ticket", ((await res.json()) as { ticket: string }).ticket);
    } else if (token) params.set("token", token);
    if (this.hasPosition) {
      params.set("since", String(this.lastSeq));
      if (this.epoch !== undefined) params.set("epoch", this.epoch);
    }
    return `${base}?${params}`;
  }

  private async open() {
    let url: string;
    try {
      url = await this.socketUrl();
    } catch (e) {
      if (this.state === "closed") return; // close() was called meanwhile, and has reported
      // Only a 401 is final; a 429, a 5xx or a network failure is worth another try.
      const status = e instanceof ParleyError ? e.status : undefined;
      const reason = e instanceof Error ? e.message : String(e);
      return this.ended({ code: 0, reason, retry: status === undefined || retryAfterStatus(status), status }, e instanceof ParleyError ? e.retryAfterMs : undefined);
    }
    if (this.state === "closed") return;
    const ws = new this.WS(url);
    this.ws = ws;
    this.alert = undefined;
    let opened = false;
    ws.onopen = () => (opened = true);
    // A socket given up (giveUp) may still deliver what was in flight: only the current one counts.
    ws.onmessage = (ev) => this.ws === ws && this.receive(String(ev.data));
    this.watch(ws);
    ws.onclose = async (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      this.failPending(new ParleyError("disconnected", `connection closed (${ev.code})`));
      const alert = this.alert;
      const info: CloseInfo = { code: ev.code, reason: ev.reason, retry: retryAfterClose(ev.code) && alert?.retry !== false };
      if (!opened && this.state !== "closed") {
        // A refused upgrade looks like any lost connection (1006, and no status in browsers):
        // ask the server whether the token is refused, which is final.
        if (await this.tokenRefused()) Object.assign(info, { retry: false, status: 401, reason: "the token was refused" });
        if ((this.state as State) === "closed") return; // close() was called meanwhile, and has reported
      } else if (ev.code === 4001 && (await this.tokenRenewed())) {
        // The token this socket presented expired, but the app has a newer one (it refreshed
        // while connected): not the end of the session, reconnect with it and resume.
        if ((this.state as State) === "closed") return;
        info.retry = true;
      }
      this.ended(info, alert?.retry_after_ms);
    };
  }

  /** Pings a socket gone quiet, and gives it up once it stays silent (heartbeatMs). */
  private watch(ws: WebSocket) {
    this.stopHeartbeat();
    const every = this.options.heartbeatMs ?? 20_000;
    if (every <= 0) return;
    this.lastHeard = Date.now();
    this.heartbeat = setInterval(() => {
      const silent = Date.now() - this.lastHeard;
      if (silent >= 2 * every) this.giveUp(ws, `no frame from the server for ${silent} ms`);
      else if (silent >= every && ws.readyState === 1) ws.send(JSON.stringify({ type: "ping", data: {} }));
    }, every / 2);
  }

  private stopHeartbeat() {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /**
   * Ends a socket at once as a lost connection (1006, retried). Its own close event is not
   * waited for: on a dead network a browser reports it only after its closing handshake
   * times out, and it is ignored when it comes (the socket is no longer the current one).
   */
  private giveUp(ws: WebSocket, reason: string) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.stopHeartbeat();
    try {
      ws.close();
    } catch {}
    this.failPending(new ParleyError("disconnected", `connection given up (${reason})`));
    this.ended({ code: 1006, reason, retry: true });
  }

  /**
   * Whether the token option gives a token other than the one the ended connection presented,
   * which had expired (a 4001 for a deleted user is final, whatever token the app holds).
   */
  private async tokenRenewed(): Promise<boolean> {
    if (typeof this.options.token !== "function" || this.state === "closed") return false;
    if (!expired(this.presented)) return false;
    try {
      const now = await this.token();
      return !!now && now !== this.presented;
    } catch {
      return false;
    }
  }

  /** Whether the server refuses the token now (401 from GET /api/users/me); false when unsure. */
  private async tokenRefused(): Promise<boolean> {
    try {
      const token = await this.token();
      const res = await fetch(this.api("/api/users/me"), { headers: token ? { authorization: `Bearer ${token}` } : {} });
      return !retryAfterStatus(res.status);
    } catch {
      return false;
    }
  }

  /** A connection or an attempt ended: report it, then stop (terminal) or reconnect (temporary). */
  private ended(info: CloseInfo, retryAfterMs = 0) {
    if (this.state === "closed") info.retry = false; // closed by the app
    else if (!info.retry) {
      this.state = "closed";
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    }
    this.emit("close", info);
    if (this.state === "closed") return;
    this.state = "connecting";
    this.current = (this.current + 1) % this.urls.length;
    this.scheduleReconnect(retryAfterMs);
  }

  private scheduleReconnect(atLeastMs: number) {
    const initial = this.options.backoff?.initialMs ?? 250;
    const max = this.options.backoff?.maxMs ?? 30_000;
    // Full jitter: a server restart does not bring every client back in the same instant.
    // A server that named a wait (retry_after_ms, Retry-After) gets at least that.
    const delay = Math.max(atLeastMs, Math.random() * Math.min(max, initial * 2 ** this.attempt++));
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  private receive(text: string) {
    this.lastHeard = Date.now();
    let f: ServerFrame;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (f.seq !== undefined) {
      // Already handled (a replay overlapping what was live): skip.
      if (f.seq <= this.lastSeq) return;
      this.lastSeq = f.seq;
    }
    if (f.type === "alert") this.alert = f.data as ServerEvents["alert"];
    // A first connection starts at the server's position; a resume ends its replay at sync.complete.
    // Both sync frames name the epoch; after a reset the position is the server's, in its timeline.
    if (f.type === "connect" && !this.hasPosition) {
      const d = f.data as ServerEvents["connect"];
      this.lastSeq = d.last_seq;
      this.epoch = d.epoch;
      this.hasPosition = true;
    }
    if (f.type === "sync.complete") {
      const d = f.data as ServerEvents["sync.complete"];
      this.lastSeq = Math.max(this.lastSeq, d.last_seq);
      this.epoch = d.epoch;
    }
    if (f.type === "sync.reset") {
      const d = f.data as ServerEvents["sync.reset"];
      this.lastSeq = d.last_seq;
      this.epoch = d.epoch;
    }
    // Only a socket's first list (its on-connect one) opens it; a later conversation.load
    // sent without a request id answers with a list too.
    if (f.type === "conversation.list" && f.request_id === undefined && this.state === "connecting") this.onSynced();
    // A request resolves with its reply, its ack or its error; the event that answers a
    // mutating frame carries the request_id too, but comes first and has a seq.
    if (f.request_id !== undefined && f.seq === undefined) {
      const p = this.pending.get(f.request_id);
      if (p) {
        this.pending.delete(f.request_id);
        clearTimeout(p.timer);
        if (f.type === "error") p.reject(new ParleyError(f.error?.code ?? "error", f.error?.message ?? "error", f.error?.details));
        else p.resolve(f);
      }
    }
    this.emit(f.type, f.data, f);
  }

  /** The initial frames are in: the connection is usable. */
  private onSynced() {
    this.state = "open";
    this.attempt = 0;
    this.emit("open", {});
    if (this.statusSubscriptions.size) this.request("user.status.subscribe", { user_ids: [...this.statusSubscriptions] }).catch(() => {});
  }

  private emit(type: string, data: unknown, frame?: unknown) {
    for (const h of this.handlers.get(type) ?? []) (h as (d: unknown, f: unknown) => void)(data, frame);
  }

  private failPending(err: Error) {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}

/**
 * Whether a JWT's `exp` has passed (within a second of the server's clock); true for a token
 * that is no JWT or has no `exp`, as the server's 4001 is then the only word on it.
 */
function expired(token: string | undefined): boolean {
  try {
    const part = token?.split(".")[1];
    if (!part) return true;
    const { exp } = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="))) as { exp?: unknown };
    return typeof exp !== "number" || exp * 1000 <= Date.now() + 1000;
  } catch {
    return true;
  }
}
