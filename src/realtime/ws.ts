/**
 * The WebSocket door: `GET /ws/user` upgrades after authentication, then every client
 * frame is validated and dispatched to the same services the REST routes call.
 */
import { Elysia } from "elysia";
import type { Server } from "bun";
import type { AppContext } from "../context";
import { AppError } from "../errors";
import { asAppError } from "../db/storage";
import { authenticate, bearerToken, type Session } from "../auth/plugin";
import { TokenBucket } from "../lib/rate-limit";
import { spendSend, spendWrite } from "../http/write-limit";
import type { UserRow } from "../db/schema";
import { errorFrame, eventFrame, frame, frameIdentity, parseFrame, rawFrame, TooDeep, type ClientType, type FrameData } from "./protocol";
import { MAX_NESTING, nestsDeeperThan } from "../lib/nesting";
import { SHUTDOWN, type Hub, type RawSocket, type SocketState } from "./hub";
import type { Arrival } from "../platform/presence";
import { andThen, drive, wait } from "../lib/awaitable";
import { OPENING_PAGE } from "../conversations/service";
import type { Tickets } from "./tickets";
import { iso } from "../lib/time";
import { asRequest, REPLY_EVENTS } from "../events/replies";
import { userTopic } from "../events/log";
import { op } from "../http/docs";
import { BODY_LIMIT } from "../http/errors";
import type { Ack, AckType, SignalData, SignalType } from "../models";

/** What a handler gets: the socket, its user (fresh from the database) and the request id. */
interface Call { state: SocketState; me: () => Promise<UserRow>; requestId?: string }
type Handler<T extends ClientType> = (call: Call, data: FrameData<T>) => void | Promise<void>;

const REPLAY_PAGE = 1000;
/** A socket waiting for its node's delivery looks every so often whether it is still open. */
const WAIT_STEP_MS = 1000;

/** Where a client resumes from: `since`, and the epoch it belongs to (none from a v1 client). */
interface Position { since: number; epoch?: string }

/**
 * Bun reads frames up to this size, so that one over the contract's 64 KiB (§4.5) is read,
 * answered with `alert {kind: "too_big"}` and closed with 1009 by the hub (§7.6: the alert
 * says whether to retry); a frame past it Bun closes with 1009 by itself, unread. Twice the
 * limit, not more: Bun holds a frame's bytes until it is whole, and a client may leave one
 * half sent on each of its sockets.
 */
export const FRAME_READ_LIMIT = 2 * BODY_LIMIT;

/** Whether a frame is over 64 KiB, in bytes as it came (a text frame arrives decoded). */
function tooBig(message: unknown): boolean {
  if (typeof message === "string") return message.length > BODY_LIMIT / 3 && Buffer.byteLength(message) > BODY_LIMIT;
  return message instanceof Uint8Array && message.byteLength > BODY_LIMIT;
}

/** JSON's whitespace: space, tab, line feed, carriage return. */
const isJsonSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

/**
 * A text frame as JSON when it can be one: it starts with `{` after JSON's whitespace (the
 * only kind that can be a frame; one led by a space or a line break is JSON too, and was
 * refused as "not one JSON object"); anything else as it came, for parseFrame to refuse alike.
 */
function asFrame(message: unknown): unknown {
  if (typeof message !== "string") return message;
  let i = 0;
  while (isJsonSpace(message.charCodeAt(i))) i++;
  if (message.charCodeAt(i) !== 123) return message;
  try {
    const parsed = JSON.parse(message);
    // One level more than a REST body: the envelope holds `data`, which is the body's equal.
    return nestsDeeperThan(message, MAX_NESTING + 1) ? new TooDeep(parsed) : parsed;
  } catch {
    return message;
  }
}

const UPGRADE_FAILED = "not a WebSocket upgrade: Upgrade: websocket, a Sec-WebSocket-Key and Sec-WebSocket-Version: 13 are required";

/** The upgrade as OpenAPI sees it; the protocol after it is in AsyncAPI (/docs/ws). */
const UPGRADE_DOC = {
  ...op("Open the WebSocket (an upgrade; the protocol: /docs/ws)", { 101: null }, {
    errors: [429],
    description: "Send `Upgrade: websocket`; a plain GET is 400. The token may also come as `?token=` or a ticket as `?ticket=`. " +
      "After the upgrade, frames are described in [/docs/ws](/docs/ws) and [/docs/asyncapi.json](/docs/asyncapi.json).",
  }),
  tags: ["realtime"],
  parameters: [
    { name: "token", in: "query" as const, required: false, schema: { type: "string" as const }, description: "the JWT, for clients that cannot set headers" },
    { name: "ticket", in: "query" as const, required: false, schema: { type: "string" as const }, description: "a single-use ticket from POST /api/ws/ticket" },
    { name: "since", in: "query" as const, required: false, schema: { type: "integer" as const, minimum: 0 }, description: "the highest seq processed: replay what came after" },
    { name: "epoch", in: "query" as const, required: false, schema: { type: "string" as const }, description: "the epoch `since` belongs to (from connect or sync.complete); another one gets sync.reset" },
  ],
};

/** How long a frame waits, in cluster mode, for the socket's frame before it to finish (see inTurn). */
export const TURN_WAIT_MS = 5000;

/** Resolves once `before` has settled, or after TURN_WAIT_MS. */
function turnOf(before: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, TURN_WAIT_MS);
    void before.then(() => (clearTimeout(timer), resolve()));
  });
}

export function wsRoutes(ctx: AppContext, hub: Hub, tickets: Tickets) {
  const reply = <T extends SignalType>(call: Call, type: T, data: SignalData<T>) => hub.send(call.state, type, frame(type, data, call.requestId));
  /**
   * Mutations answer through their events; a request id also gets an `ack` carrying the result.
   * `resultJson`: the result already serialised (a new message's, as its event stored it), put
   * into the same frame instead of serialising the result again.
   */
  const ack = <T extends AckType>(call: Call, requestType: T, result: Extract<Ack, { request_type: T }>["result"], resultJson?: string) => {
    if (call.requestId === undefined) return;
    if (resultJson === undefined) reply(call, "ack", { request_type: requestType, result } as Ack);
    else hub.send(call.state, "ack", rawFrame("ack", `{"request_type":${JSON.stringify(requestType)},"result":${resultJson}}`, call.requestId));
  };
  const member = (call: Call, conversationId: string) => ctx.store.conversations.requireMembership(conversationId, call.state.userId);

  const handlers: { [T in ClientType]: Handler<T> } = {
    ping: (call) => reply(call, "pong", {}),
    disconnect: (call) => {
      call.state.closing = true;
      call.state.ws.close(1000, "bye");
    },
    // The same per-user budgets as the REST twins (AppContext.budgets).
    "message.send": async (call, d) => {
      await spendSend(ctx, call.state.userId);
      // A retried send (known client_msg_id) publishes nothing; the ack still carries the stored message.
      const { message, json } = await ctx.store.messages.send(await call.me(), d.conversation_id, d);
      // A new message's ack carries the text its event stored, as a REST send answers with it.
      ack(call, "message.send", message, json);
    },
    "message.edit": async (call, d) => {
      await spendWrite(ctx, call.state.userId);
      ack(call, "message.edit", await ctx.store.messages.edit(await call.me(), d.message_id, d.content));
    },
    "message.delete": async (call, d) => {
      await spendWrite(ctx, call.state.userId);
      await ctx.store.messages.remove(await call.me(), d.message_id);
      ack(call, "message.delete", { message_id: d.message_id });
    },
    "message.read": async (call, d) => {
      await spendSend(ctx, call.state.userId);
      ack(call, "message.read", await ctx.store.messages.markRead(await call.me(), d.conversation_id, d.message_id));
    },
    "message.typing": async (call, d) => {
      await member(call, d.conversation_id);
      hub.typing(call.state, d.conversation_id, d.is_typing);
    },
    "conversation.join": async (call, d) => {
      await member(call, d.conversation_id);
      hub.setActive(call.state, d.conversation_id);
      reply(call, "conversation.joined", { conversation_id: d.conversation_id, success: true });
    },
    "conversation.leave": async (call, d) => {
      await member(call, d.conversation_id);
      if (call.state.active === d.conversation_id) hub.setActive(call.state, null);
      reply(call, "conversation.left", { conversation_id: d.conversation_id, success: true });
    },
    "conversation.active": async (call, d) => {
      if (d.conversation_id !== null) await member(call, d.conversation_id);
      hub.setActive(call.state, d.conversation_id);
    },
    "conversation.create": async (call, d) => {
      await spendWrite(ctx, call.state.userId);
      ack(call, "conversation.create", (await ctx.store.conversations.create(await call.me(), d)).conversation);
    },
    "conversation.load": async (call, d) =>
      hub.send(call.state, "conversation.list", rawFrame("conversation.list", await ctx.store.conversations.listJson(call.state.userId, d.limit ?? 50, d.cursor), call.requestId)),
    "user.status.subscribe": async (call, d) => {
      const ids = "user_id" in d ? [d.user_id] : [...new Set(d.user_ids)];
      const visible = await ctx.store.users.visibleAmong(call.state.userId, ids);
      const hidden = ids.filter((id) => !visible.has(id));
      if (hidden.length) throw new AppError("forbidden", "presence is visible only to friends and conversation partners", { user_ids: hidden });
      hub.follow(call.state, ids);
      return andThen(hub.statusOf(ids, call.state), (statuses) => {
        if ("user_id" in d) {
          const s = statuses[0]!;
          reply(call, s.online ? "user.online" : "user.offline", { ...s, timestamp: iso(Date.now()) });
        } else reply(call, "user.status", { statuses });
      });
    },
    "user.status.unsubscribe": (call, d) => {
      hub.unfollow(call.state, "user_id" in d ? [d.user_id] : d.user_ids);
      ack(call, "user.status.unsubscribe", null);
    },
  };

  function onMessage(ws: RawSocket, raw: unknown) {
    if (hub.defer(ws, raw)) return;
    const state = hub.stateOf(ws);
    if (!state || state.closing) return;
    const { type: rawType, request_id } = frameIdentity(raw);
    const fail = (e: unknown) => {
      const known = asAppError(e);
      if (!known) ctx.log.error({ err: e, user_id: state.userId, frame_type: rawType }, "frame handler failed");
      const err = known ?? new AppError("internal", "internal error");
      if (err.code !== "rate_limited") ctx.metrics.framesIn.inc({ type: "rejected" });
      const extra: Record<string, unknown> = {};
      if (err.details !== undefined) extra.details = err.details;
      if (err.retryAfterMs !== undefined) extra.retry_after_ms = err.retryAfterMs;
      if (state.closing) return;
      hub.send(state, "error", errorFrame(err.code, err.message, rawType, request_id, extra));
      // The user was deleted while connected: nothing more to do on this socket, nor on a new one.
      if (err.code === "unauthorized") hub.closeWith(state.ws, 4001, "unauthorized", err.message);
    };
    try {
      // Every frame counts against the limit, bad ones included; only a valid ping is exempt.
      let f: ReturnType<typeof parseFrame> | undefined;
      let invalid: unknown;
      try {
        f = parseFrame(raw);
      } catch (e) {
        invalid = e;
      }
      if (f?.type !== "ping") rateLimit(state);
      if (!f) throw invalid;
      ctx.metrics.framesInOf(f.type).inc();
      let mine: Promise<UserRow> | undefined;
      const call: Call = { state, requestId: f.request_id, me: () => (mine ??= currentUser(state.userId)) };
      const run = () => (handlers[f!.type] as Handler<ClientType>)(call, f!.data as never);
      // Every frame but a ping or a goodbye is its user's: a user deleted while connected gets
      // `unauthorized` and 4001 whatever they send (the handlers reuse the row read here).
      const handler = f.type === "ping" || f.type === "disconnect" ? run : () => call.me().then(run);
      // A request answered by its event: that event reaches this socket with the request_id.
      const reply = f.request_id === undefined ? undefined : REPLY_EVENTS[f.type];
      const start = () => (reply ? asRequest({ requestId: f!.request_id!, replyType: reply.type, socket: state, topic: reply.own && userTopic(state.userId) }, handler) : handler());
      const done = inTurn(state, f.type, start);
      if (done instanceof Promise) done.catch(fail);
    } catch (e) {
      fail(e);
    }
  }

  /**
   * A socket's frames take effect in the order they came (two sends are stored and delivered
   * in that order, the last of two edits wins, a leave after a join leaves). On SQLite they
   * do by construction: every step of a frame up to its group commit answers at once, so
   * frames enter the commit in the order they were read. In cluster mode the steps are round
   * trips (the user row, the budgets, the change's own transaction, on a pool of
   * connections), so a frame starts once the one before it has finished, or TURN_WAIT_MS
   * after it came, whichever is first: a frame stuck on PostgreSQL (a lock, a connection
   * gone quiet) holds the socket's later frames that long at most, and what waits is bounded
   * by the frame rate limit. A ping and a goodbye are answered at once.
   */
  const queued = ctx.config.databaseUrl !== null;
  function inTurn(state: SocketState, type: ClientType, start: () => unknown): unknown {
    if (!queued || type === "ping" || type === "disconnect") return start();
    const done = state.frameTail ? turnOf(state.frameTail).then(start) : start();
    if (!(done instanceof Promise)) return done;
    const tail: Promise<void> = done.then(
      () => {},
      () => {},
    );
    state.frameTail = tail;
    void tail.then(() => {
      if (state.frameTail === tail) state.frameTail = null;
    });
    return done;
  }

  /** The socket's user as stored now; a user deleted while connected is disconnected. */
  async function currentUser(userId: string): Promise<UserRow> {
    const row = await ctx.store.users.row(userId);
    if (!row) throw new AppError("unauthorized", "user no longer exists");
    return row;
  }

  /** 60 frames a minute per socket; sustained abuse at twice that closes with 1008. */
  function rateLimit(state: SocketState) {
    const wait = state.frames.take();
    if (wait === 0) return;
    const now = performance.now();
    if (now - state.refused.since > 60_000) state.refused = { count: 0, since: now };
    state.refused.count++;
    if (state.refused.count > ctx.config.wsFramesPerMinute) hub.closeWith(state.ws, 1008, "rate_limited", "too many frames; closing", wait);
    throw new AppError("rate_limited", "too many frames, slow down", undefined, wait);
  }

  /**
   * A new socket, already counted by its upgrade (`arrival`, hub.reserve): `connect`, the
   * replay of what it missed, then live events. Its live events are held from `connect` on
   * (hub.hold) and sent after the replay (hub.release), so replay and live delivery meet
   * without a gap or a duplicate on either engine: on SQLite every step answers at once; in
   * cluster mode the reads are asynchronous and the node's follower may stand behind what
   * they saw (the wait for `view.last`).
   */
  function* onOpen(ws: RawSocket, { me, expiresAtMs }: Session, position: Position | null, arrival: Arrival): Generator<unknown, void, unknown> {
    // Upgraded while the server was stopping (its upgrade waited on the store): never opened.
    if (hub.stopping) return (hub.departed(me.id), hub.closeWith(ws, 1001, "shutdown", SHUTDOWN));
    // Closed before it opened: nothing to open, the count is given back.
    if (ws.readyState !== 1) return hub.departed(me.id);
    const state: SocketState = {
      clientId: Bun.randomUUIDv7(),
      userId: me.id,
      ws,
      active: null,
      typing: new Map(),
      status: new Set(),
      frames: new TokenBucket(ctx.config.wsFramesPerMinute, ctx.config.wsFramesPerMinute),
      refused: { count: 0, since: performance.now() },
      overLimit: false,
      alive: true,
      expiresAtMs,
      closing: false,
      frameTail: null,
    };
    hub.hold(state);
    // Live delivery for this socket starts after `from`: a client connecting without `since` starts there.
    const from = ctx.feed.deliveredSeq;
    hub.send(state, "connect", frame("connect", { message: "Connected successfully", client_id: state.clientId, user_id: me.id, last_seq: from, epoch: ctx.feed.epoch }));
    try {
      const view = yield* wait(ctx.store.conversations.membership(me.id));
      // A client may have seen more than this node has delivered yet (it came from a faster node).
      let caughtUp = from;
      if (position !== null) {
        const replayed = yield* replay(state, position, from);
        if (replayed === null) return hub.drop(state); // closed as a slow consumer: never announced
        caughtUp = Math.max(from, replayed);
      }
      // Every event up to view.last, with the membership changes the view saw and those of
      // transactions still open under it, must be among the held ones before the release
      // replays their effects: released earlier, a removal the view saw would hide the
      // messages before it from this socket, an addition would show it the ones before.
      if (view.last > caughtUp && !(yield* deliveredUpTo(state, view.last)) && !state.closing)
        throw new AppError("unavailable", "this server is stopping; reconnect", undefined, 1000);
      if (state.closing) return hub.drop(state);
      hub.release(state, view.ids, caughtUp, arrival);
      hub.send(state, "conversation.list", rawFrame("conversation.list", view.firstPage?.() ?? (yield* wait(ctx.store.conversations.listJson(me.id, OPENING_PAGE)))));
      // Those held, and those that came during the list's read (queued behind them), in order.
      for (const f of hub.takeFrames(ws)) onMessage(ws, f);
      if (arrival === "first") hub.announceOnline(me.id);
    } catch (err) {
      hub.drop(state);
      const known = asAppError(err);
      if (!known) ctx.log.error({ err, user_id: me.id }, "opening a socket failed");
      hub.closeWith(ws, 1011, "unavailable", known?.message ?? "internal error", known?.retryAfterMs);
    }
  }

  /**
   * Waits until this node has delivered `seq`, as long as the socket is open: a transaction
   * held open anywhere on the PostgreSQL server holds the node's delivery (every socket's)
   * as long. False when the socket closed first, or the node's follower stopped.
   */
  function* deliveredUpTo(state: SocketState, seq: number): Generator<unknown, boolean, unknown> {
    while (!state.closing) {
      const asked = performance.now();
      if (yield* wait(ctx.feed.waitFor(seq, WAIT_STEP_MS))) return true;
      if (performance.now() - asked < WAIT_STEP_MS / 2) return false; // answered at once: stopped
    }
    return false;
  }

  /**
   * Sends the missed events up to `upTo`, then sync.complete (or sync.reset). A backlog
   * larger than the socket can take is cut short like any slow consumer: alert, close 1013,
   * and the client resumes from the last seq it received. Resolves with the position the
   * client has now (null when the socket was closed).
   */
  function* replay(state: SocketState, { since, epoch }: Position, upTo: number): Generator<unknown, number | null, unknown> {
    let cursor = since;
    try {
      for (;;) {
        const rows = yield* wait(ctx.feed.replayRaw(state.userId, cursor, REPLAY_PAGE, epoch, upTo));
        if (state.closing) return null;
        for (const r of rows) {
          state.ws.send(ctx.files.links.personalize(eventFrame(r.type, r.data, iso(r.created_at), r.seq), state.userId));
          if (state.ws.getBufferedAmount() > ctx.config.maxBufferedBytes) {
            hub.closeSlowConsumer(state);
            return null;
          }
        }
        if (rows.length < REPLAY_PAGE) break;
        cursor = rows[rows.length - 1]!.seq;
      }
      const position = Math.max(since, upTo);
      hub.send(state, "sync.complete", frame("sync.complete", { last_seq: position, epoch: ctx.feed.epoch }));
      return position;
    } catch (e) {
      if (!(e instanceof AppError && e.code === "sync_reset")) throw e;
      hub.send(state, "sync.reset", frame("sync.reset", { last_seq: upTo, epoch: ctx.feed.epoch }));
      return upTo;
    }
  }

  const direct: DirectHandlers = {
    message(ws, message) {
      hub.markAlive(ws);
      if (tooBig(message)) return hub.closeWith(ws, 1009, "too_big", `a frame is at most ${BODY_LIMIT} bytes; reconnect and send less`);
      onMessage(ws, asFrame(message));
    },
    pong: (ws) => hub.markAlive(ws),
    close(ws) {
      // Nothing above Bun catches here: a failure is logged, never thrown into the server.
      try {
        hub.close(ws);
      } catch (err) {
        ctx.log.error({ err }, "closing a socket failed");
      }
    },
  };

  /**
   * What Bun keeps on a socket between the upgrade and its `open`: the session and the
   * position, and the `open` that Bun calls (Elysia's `websocket` config calls
   * `ws.data.open?.(ws)`). Once open, the socket's data is `direct`, shared by all.
   */
  class Upgraded {
    constructor(readonly session: Session, readonly position: Position | null, readonly arrival: Arrival) {}
    open(ws: RawSocket) {
      const { session, position, arrival } = this;
      // From here on the socket carries only the shared handlers, which call the hub directly.
      ws.data = direct;
      // On SQLite the whole opening runs here, synchronously: its frames (connect, any
      // replay, conversation.list) leave in one write with the upgrade's response.
      const failed = (err: unknown) => ctx.log.error({ err, user_id: session.me.id }, "opening a socket failed");
      try {
        const opened = drive(onOpen(ws, session, position, arrival));
        if (opened instanceof Promise) opened.catch(failed);
      } catch (err) {
        failed(err);
      }
    }
  }

  return new Elysia({ name: "parley.ws", seed: ctx.instance })
    // The upgrade is an ordinary route calling Bun's `server.upgrade` itself. Elysia's `.ws()`
    // would make, for every upgrade, a copy of the whole request context, closures over it
    // and an ElysiaWS per call into the socket's handlers (about 20 µs of a connect's CPU and
    // the socket's memory until it opens, issue #17); its routing, hooks, error format and
    // request log are the same here as for any route.
    .get("/ws/user", async (c) => {
      const { query, request, set } = c;
      // A plain GET is refused before the token check, so it never spends a ticket.
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket")
        throw new AppError("bad_request", "this endpoint takes WebSocket upgrades only (Upgrade: websocket)");
      if (!request.headers.get("sec-websocket-key") || request.headers.get("sec-websocket-version") !== "13")
        throw new AppError("bad_request", UPGRADE_FAILED);
      // Tokens are checked here, not by a query schema: a bad token is 401, never 422.
      // The header is read from the request: naming `headers` in a hook would have Elysia copy
      // every request's headers into an object, on every route of the app (issue #17).
      const ticket = typeof query.ticket === "string" ? query.ticket : undefined;
      const session = ticket !== undefined ? await tickets.redeem(ctx, ticket) : await authenticate(ctx, (query.token as string | undefined) || bearerToken(request.headers.get("authorization") ?? undefined));
      // The request log names the user, as it does for every authenticated route.
      (c as { me?: UserRow }).me = session.me;
      // Counted now, before the 101: over the cap is 429, however many upgrades race (§4.5).
      const arrival = await hub.reserve(session.me.id);
      if (arrival === "full") throw new AppError("rate_limited", `at most ${ctx.config.maxConnectionsPerUser} connections per user`, undefined, 1000);
      const raw = query.since;
      // An unusable `since` is answered with sync.reset on the socket, not refused: -Infinity
      // lies before any retained log. So is an unusable `epoch`: it cannot be this log's.
      // Without `since` there is no replay, and an epoch alone is ignored.
      const since = raw === undefined || raw === "" ? null : /^\d{1,15}$/.test(String(raw)) ? Number(raw) : Number.NEGATIVE_INFINITY;
      const epoch = query.epoch === undefined || query.epoch === "" ? undefined : String(query.epoch);
      const position: Position | null = since === null ? null : { since, epoch };
      const server = (c as { server?: Server<unknown> | null }).server;
      // The response's own headers (X-Request-Id) go with the 101.
      if (!server?.upgrade(request, { headers: set.headers as Record<string, string>, data: new Upgraded(session, position, arrival) })) {
        hub.departed(session.me.id);
        throw new AppError("bad_request", UPGRADE_FAILED);
      }
      set.status = 101;
      // Bun answers an upgraded request itself; whatever is returned here is not sent.
    }, { detail: UPGRADE_DOC });
}

/** The handlers of an open socket, as Bun calls them (see the `open` above). */
interface DirectHandlers {
  message(ws: RawSocket, message: unknown): void;
  pong(ws: RawSocket): void;
  close(ws: RawSocket): void;
}
