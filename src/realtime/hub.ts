/**
 * The hub owns the live side: which sockets each user has open, their topic
 * subscriptions, presence, typing timers and active conversations. It publishes committed
 * events on Bun's pub/sub topics (`user:<id>`, `conv:<id>`, `status:<id>`) and follows
 * membership changes by the events themselves: a `conversation.create` on a user's topic
 * subscribes that user's sockets before it is published, a `conversation.delete`
 * unsubscribes them after. It knows no business rules; the few it needs (who may see whose
 * presence) are asked of the services.
 */
import type { Server, ServerWebSocket } from "bun";
import type { AppContext } from "../context";
import { convTopic, userTopic, type StoredEvent } from "../events/log";
import { TokenBucket } from "../lib/rate-limit";
import { iso } from "../lib/time";
import { canSeePresence } from "../users/service";
import { eventFrame, frame } from "./protocol";
import { LastActive } from "./last-active";
import { CLOSE_CODES, type CloseCode } from "./close-codes";
import { UNSIGNED_LINK } from "../files/links";
import type { Static } from "../lib/model";
import type { SignalData } from "../models";
import type { AlertKind as AlertKindModel } from "./model";

export const statusTopic = (userId: string) => `status:${userId}`;

export type RawSocket = ServerWebSocket<unknown>;

/** Why the server closes a socket, as `alert.kind` tells the client. */
export type AlertKind = Static<typeof AlertKindModel>;

/** What the server keeps per open socket. */
export interface SocketState {
  clientId: string;
  userId: string;
  ws: RawSocket;
  /** The conversation the client has on screen, if any. */
  active: string | null;
  /** conversation id → the timer that ends this socket's typing indicator there. */
  typing: Map<string, Timer>;
  /** Users whose presence this socket follows. */
  status: Set<string>;
  frames: TokenBucket;
  /** Frames refused by the rate limit in the current minute (for the 1008 close). */
  refused: { count: number; since: number };
  /** The output buffer was over MAX_BUFFERED_BYTES at the last check. */
  overLimit: boolean;
  /** Heard from (pong or frame) since the last heartbeat round. */
  alive: boolean;
  /** When the token (or the ticket's token) it connected with expires: then it is closed with 4001. */
  expiresAtMs: number;
  closing: boolean;
}

export interface PresenceStatus { user_id: string; online: boolean; last_active_at: string }

export class Hub {
  private server: Server<unknown> | null = null;
  private sockets = new Map<RawSocket, SocketState>();
  private byUser = new Map<string, Set<SocketState>>();
  /** Users whose last socket closed, within PRESENCE_GRACE_MS of going offline. */
  private leaving = new Map<string, Timer>();
  /** Users whose user.online went out and whose user.offline has not: only they can go offline. */
  private announced = new Set<string>();
  /** target user id → sockets following its presence. */
  private followers = new Map<string, Set<SocketState>>();
  private stopped = false;
  private lastActive: LastActive;
  /** Sockets between their open and the end of their catch-up: the events they would have had live meanwhile. */
  private holding = new Map<RawSocket, { state: SocketState; events: StoredEvent[] }>();

  private sweeper: Timer;
  private heartbeat: Timer;

  constructor(private ctx: AppContext) {
    this.lastActive = new LastActive(ctx);
    ctx.feed.onCommit((events) => this.publishCommitted(events));
    this.sweeper = setInterval(() => this.closeSlowConsumers(), ctx.config.slowConsumerCheckMs);
    this.sweeper.unref();
    this.heartbeat = setInterval(() => this.checkHeartbeats(), ctx.config.heartbeatIntervalMs);
    this.heartbeat.unref();
    const { metrics } = ctx;
    metrics.gauge("parley_ws_connections", "Open WebSocket connections.", () => this.sockets.size);
    metrics.gauge("parley_online_users", "Users with at least one open socket (or within the presence grace period).", () => this.onlineCount());
  }

  attach(server: Server<unknown>) {
    this.server = server;
  }

  /** Open sockets of a user, and those still catching up. */
  connectionsOf(userId: string) {
    let held = 0;
    for (const { state } of this.holding.values()) if (state.userId === userId) held++;
    return (this.byUser.get(userId)?.size ?? 0) + held;
  }
  stateOf(ws: RawSocket) { return this.sockets.get(ws); }
  isOnline(userId: string) { return this.byUser.has(userId) || this.leaving.has(userId); }
  private onlineCount() {
    let n = this.byUser.size;
    for (const id of this.leaving.keys()) if (!this.byUser.has(id)) n++;
    return n;
  }

  /**
   * Registers an open socket and subscribes it to its user's topic and to every
   * conversation of the user. Returns true when the user just came online.
   */
  open(state: SocketState, conversationIds: string[]): boolean {
    this.sockets.set(state.ws, state);
    state.ws.subscribe(userTopic(state.userId));
    for (const id of conversationIds) state.ws.subscribe(convTopic(id));
    let mine = this.byUser.get(state.userId);
    const first = !mine;
    if (!mine) this.byUser.set(state.userId, (mine = new Set()));
    mine.add(state);
    if (!first) return false;
    // A socket within the grace period of the last one (a reload): still the same presence.
    const pending = this.leaving.get(state.userId);
    if (pending) {
      clearTimeout(pending);
      this.leaving.delete(state.userId);
    }
    // Unless the last one closed before it was ever announced (cut short in its replay).
    if (this.announced.has(state.userId)) return false;
    this.lastActive.touch(state.userId);
    return true;
  }

  /**
   * Starts holding a new socket's live events while it catches up (replay, the wait for
   * the log to be delivered up to its view): they are sent by `release`, after the replay.
   * A held socket is not yet open: no topics, no presence.
   */
  hold(state: SocketState) {
    this.holding.set(state.ws, { state, events: [] });
  }

  /** Stops holding a socket that will not be opened (closed during its catch-up). */
  drop(state: SocketState) {
    this.holding.delete(state.ws);
  }

  /**
   * Opens a held socket (see `open`) at `position`, the seq up to which its catch-up went:
   * the held events after it are sent first, in seq order, to the conversations it was in
   * as each came. `memberOf` is the user's conversations as stored when the catch-up read
   * them, which may already include the effects of held events: a conversation.create
   * among them was not yet theirs before it, a conversation.delete still was.
   */
  release(state: SocketState, memberOf: string[], position: number): boolean {
    const held = this.holding.get(state.ws)?.events ?? [];
    this.holding.delete(state.ws);
    const mine = userTopic(state.userId);
    const topics = new Set(memberOf);
    const changes = held.filter((e) => e.seq > position && e.topic === mine);
    for (const e of changes) if (e.type === "conversation.create") topics.delete((e.data as { id: string }).id);
    for (const e of changes) if (e.type === "conversation.delete") topics.add((e.data as { conversation_id: string }).conversation_id);
    for (const e of held) {
      if (e.seq <= position) continue;
      const ownTopic = e.topic === mine;
      if (ownTopic && e.type === "conversation.create") topics.add((e.data as { id: string }).id);
      if (ownTopic || topics.has(e.topic.slice(5))) this.send(state, e.type, eventFrame(e.type, e.json, e.timestamp, e.seq));
      if (ownTopic && e.type === "conversation.delete") topics.delete((e.data as { conversation_id: string }).conversation_id);
    }
    return this.open(state, [...topics]);
  }

  /** Unregisters a closed socket: ends its typing and active state, starts the presence grace. */
  close(ws: RawSocket): SocketState | undefined {
    const held = this.holding.get(ws);
    if (held) {
      // Closed during its catch-up: it was never open, so there is nothing to undo.
      held.state.closing = true;
      this.holding.delete(ws);
      return undefined;
    }
    const state = this.sockets.get(ws);
    if (!state) return undefined;
    this.sockets.delete(ws);
    if (this.stopped) return state; // shutting down: nobody is left to tell
    for (const [conversationId, timer] of state.typing) {
      clearTimeout(timer);
      this.publish(convTopic(conversationId), frame("message.typing", { conversation_id: conversationId, user_id: state.userId, is_typing: false }));
    }
    state.typing.clear();
    if (state.active) this.publish(convTopic(state.active), frame("conversation.user_inactive", { conversation_id: state.active, user_id: state.userId }));
    for (const target of state.status) {
      const set = this.followers.get(target);
      set?.delete(state);
      if (set?.size === 0) this.followers.delete(target);
    }
    const mine = this.byUser.get(state.userId);
    mine?.delete(state);
    if (mine && mine.size === 0) {
      this.byUser.delete(state.userId);
      const grace = this.ctx.config.presenceGraceMs;
      if (grace === 0) this.goOffline(state.userId);
      else this.leaving.set(state.userId, setTimeout(() => this.goOffline(state.userId), grace));
    }
    return state;
  }

  private goOffline(userId: string) {
    this.leaving.delete(userId);
    if (this.byUser.has(userId)) return;
    const lastActive = this.lastActive.touch(userId);
    if (!this.announced.delete(userId)) return; // never announced online: nothing to take back
    this.publish(statusTopic(userId), frame("user.offline", { user_id: userId, online: false, timestamp: iso(Date.now()), last_active_at: lastActive }));
  }

  /** Announces that a user came online (after their first socket got its initial frames). */
  announceOnline(userId: string) {
    this.announced.add(userId);
    this.publish(statusTopic(userId), frame("user.online", { user_id: userId, online: true, timestamp: iso(Date.now()), last_active_at: this.lastActive.of(userId) }));
  }

  /** Publishes committed events, adjusting subscriptions around membership changes. */
  private publishCommitted(events: StoredEvent[]) {
    const started = performance.now();
    for (const { state, events: held } of this.holding.values())
      for (const e of events) if (e.topic.startsWith("conv:") || e.topic === userTopic(state.userId)) held.push(e);
    for (const e of events) {
      try {
        this.publishOne(e);
      } catch (err) {
        // One event's trouble must not keep the rest of the batch from live sockets.
        this.ctx.log.error({ err, seq: e.seq, type: e.type }, "publishing an event failed");
      }
    }
    this.ctx.metrics.publishLatency.observe((performance.now() - started) / 1000);
  }

  private publishOne(e: StoredEvent) {
    if (e.type === "conversation.create" && e.topic.startsWith("user:")) {
      // Subscribe first, so the member's sockets see everything from this event on.
      const id = (e.data as { id: string }).id;
      for (const s of this.byUser.get(e.topic.slice(5)) ?? []) s.ws.subscribe(convTopic(id));
    }
    const text = eventFrame(e.type, e.json, e.timestamp, e.seq);
    if (e.json.includes(UNSIGNED_LINK)) this.publishSigned(e.topic, text);
    else this.publish(e.topic, text);
    this.ctx.metrics.eventsPublished.inc({ type: e.type });
    if (e.type === "conversation.delete") this.leaveConversation(e.topic.slice(5), (e.data as { conversation_id: string }).conversation_id);
    else if (e.type === "friend.remove") {
      const { user_id, friend_id } = e.data as { user_id: string; friend_id: string };
      // Published once, to the other side; the pair is re-checked both ways.
      this.revalidatePresence(user_id, friend_id);
    }
  }

  /** After a user left (or lost) a conversation: their sockets stop receiving it. */
  private leaveConversation(userId: string, conversationId: string) {
    for (const s of this.byUser.get(userId) ?? []) {
      s.ws.unsubscribe(convTopic(conversationId));
      const timer = s.typing.get(conversationId);
      if (timer) {
        clearTimeout(timer);
        s.typing.delete(conversationId);
        this.publish(convTopic(conversationId), frame("message.typing", { conversation_id: conversationId, user_id: userId, is_typing: false }));
      }
      if (s.active === conversationId) {
        s.active = null;
        this.publish(convTopic(conversationId), frame("conversation.user_inactive", { conversation_id: conversationId, user_id: userId }));
      }
    }
    // Sharing this conversation may have been what let them see each other's presence.
    const related = new Set<string>();
    for (const s of this.byUser.get(userId) ?? []) for (const t of s.status) related.add(t);
    for (const s of this.followers.get(userId) ?? []) related.add(s.userId);
    for (const other of related) this.revalidatePresence(userId, other);
  }

  /** Drops presence subscriptions between two users who may no longer see each other. */
  private revalidatePresence(a: string, b: string) {
    if (a === b) return;
    for (const [viewer, target] of [[a, b], [b, a]] as const) {
      const followers = this.followers.get(target);
      if (!followers || ![...followers].some((s) => s.userId === viewer)) continue;
      if (canSeePresence(this.ctx.db, viewer, target)) continue;
      for (const s of [...followers]) if (s.userId === viewer) this.unfollow(s, [target]);
    }
  }

  follow(state: SocketState, targets: string[]) {
    for (const t of targets) {
      state.ws.subscribe(statusTopic(t));
      state.status.add(t);
      let set = this.followers.get(t);
      if (!set) this.followers.set(t, (set = new Set()));
      set.add(state);
    }
  }

  unfollow(state: SocketState, targets: string[]) {
    for (const t of targets) {
      state.ws.unsubscribe(statusTopic(t));
      state.status.delete(t);
      const set = this.followers.get(t);
      set?.delete(state);
      if (set?.size === 0) this.followers.delete(t);
    }
  }

  statusOf(userIds: string[]): PresenceStatus[] {
    return userIds.map((id) => ({ user_id: id, online: this.isOnline(id), last_active_at: this.lastActive.of(id) ?? iso(0) }));
  }

  /** Sets or refreshes (is_typing true) or ends a socket's typing indicator in a conversation. */
  typing(state: SocketState, conversationId: string, isTyping: boolean) {
    const existing = state.typing.get(conversationId);
    if (existing) clearTimeout(existing);
    const data = { conversation_id: conversationId, user_id: state.userId, is_typing: isTyping };
    if (!isTyping) {
      state.typing.delete(conversationId);
      if (!existing) return;
    } else {
      state.typing.set(conversationId, setTimeout(() => this.typing(state, conversationId, false), this.ctx.config.typingTtlMs));
    }
    // ws.publish skips the sending socket: the typist does not hear themself.
    if (this.sockets.has(state.ws)) state.ws.publish(convTopic(conversationId), frame("message.typing", data));
    else this.publish(convTopic(conversationId), frame("message.typing", data));
  }

  /** Sets (or clears, with null) the conversation a socket has on screen. */
  setActive(state: SocketState, conversationId: string | null) {
    if (state.active === conversationId) return;
    if (state.active) state.ws.publish(convTopic(state.active), frame("conversation.user_inactive", { conversation_id: state.active, user_id: state.userId }));
    state.active = conversationId;
    if (conversationId) {
      state.ws.subscribe(convTopic(conversationId));
      state.ws.publish(convTopic(conversationId), frame("conversation.user_active", { conversation_id: conversationId, user_id: state.userId }));
    }
  }

  /** Sends a frame to one socket (its attachment links signed for its user). */
  send(state: SocketState, type: string, text: string) {
    this.ctx.metrics.framesOut.inc({ type });
    state.ws.send(this.ctx.files.links.personalize(text, state.userId));
  }

  /**
   * A frame with attachment links goes to each subscriber with the links signed for its
   * user (PROTOCOL §9: a link names one viewer), in place of one shared publish. Sent
   * synchronously like a publish, so it keeps its place among the topic's frames.
   */
  private publishSigned(topic: string, text: string) {
    const signed = new Map<string, string>();
    for (const s of this.sockets.values()) {
      if (!s.ws.isSubscribed(topic)) continue;
      let mine = signed.get(s.userId);
      if (mine === undefined) signed.set(s.userId, (mine = this.ctx.files.links.personalize(text, s.userId)));
      s.ws.send(mine);
    }
  }

  publish(topic: string, text: string) {
    this.server?.publish(topic, text);
  }

  /** Every open socket. */
  allSockets(): IterableIterator<SocketState> {
    return this.sockets.values();
  }

  /**
   * A socket whose outgoing buffer is over MAX_BUFFERED_BYTES is not keeping up: it gets
   * `alert {kind:"slow_consumer"}` and close 1013, and resumes later with `since`. Publishing
   * never waits for it, so the others are not delayed.
   */
  private closeSlowConsumers() {
    const limit = this.ctx.config.maxBufferedBytes;
    for (const s of this.sockets.values()) {
      if (s.closing) continue;
      // A burst (a group commit's worth of frames) may pass the limit for a moment; a socket
      // is slow when its buffer is still over it at the next check.
      if (s.ws.getBufferedAmount() <= limit) s.overLimit = false;
      else if (!s.overLimit) s.overLimit = true;
      else this.closeSlowConsumer(s);
    }
  }

  /**
   * Every HEARTBEAT_INTERVAL_MS each socket is pinged; one that has not answered (pong or
   * any frame) since the previous round is dead and is terminated. A dead peer is thus
   * gone within 2 × the interval, whatever the granularity of Bun's own idle timeout.
   * A socket whose token has expired is closed in the same round (4001, terminal).
   */
  private checkHeartbeats() {
    const now = performance.now();
    // After an event-loop stall, pongs may be waiting unread in socket buffers: no verdicts.
    const late = now - this.lastBeat > 1.5 * this.ctx.config.heartbeatIntervalMs;
    this.lastBeat = now;
    const wallClock = Date.now();
    for (const s of this.sockets.values()) {
      if (s.expiresAtMs <= wallClock && !s.closing) {
        this.closeWith(s.ws, 4001, "unauthorized", "your token expired; log in again and reconnect");
        continue;
      }
      // With output still queued, our ping is queued behind it: the slow-consumer check (and
      // Bun's idle timeout) judge such a socket, not the heartbeat.
      if (!s.alive && !late && s.ws.getBufferedAmount() === 0) {
        s.closing = true;
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      s.ws.ping();
    }
  }

  private lastBeat = performance.now();

  /** The peer answered a ping or sent a frame: it is alive. */
  markAlive(ws: RawSocket) {
    const s = this.sockets.get(ws);
    if (s) s.alive = true;
  }

  closeSlowConsumer(s: SocketState) {
    this.ctx.metrics.slowConsumers.inc();
    this.ctx.log.warn({ user_id: s.userId, client_id: s.clientId, buffered: s.ws.getBufferedAmount() }, "closing slow consumer");
    this.closeWith(s.ws, 1013, "slow_consumer", "you are not keeping up; reconnect with since");
  }

  /**
   * Ends a socket the server's way: `alert {kind, message, retry, retry_after_ms?}` — `retry`
   * from the close-code table, so the alert and the code always agree — then the close.
   */
  closeWith(ws: RawSocket, code: CloseCode, kind: AlertKind, message: string, retryAfterMs?: number) {
    const state = this.sockets.get(ws);
    if (state) state.closing = true;
    const data: SignalData<"alert"> = { kind, message, retry: CLOSE_CODES[code].retry };
    if (retryAfterMs !== undefined) data.retry_after_ms = retryAfterMs;
    this.ctx.metrics.framesOut.inc({ type: "alert" });
    ws.send(frame("alert", data));
    ws.close(code, CLOSE_CODES[code].name);
  }

  /** Shutdown: every socket gets `alert {kind:"shutdown"}` and close 1001; timers stop. */
  stop() {
    this.stopped = true;
    clearInterval(this.sweeper);
    clearInterval(this.heartbeat);
    for (const timer of this.leaving.values()) clearTimeout(timer);
    // Everyone online (or in their grace period) was last active now.
    for (const userId of new Set([...this.byUser.keys(), ...this.leaving.keys()])) this.lastActive.touch(userId);
    this.lastActive.close();
    this.leaving.clear();
    this.announced.clear();
    for (const s of this.sockets.values()) {
      for (const timer of s.typing.values()) clearTimeout(timer);
      s.typing.clear();
      s.active = null;
      this.closeWith(s.ws, 1001, "shutdown", "the server is restarting; reconnect with since");
    }
  }
}
