/**
 * The hub owns the live side of this node: which sockets each user has open here, their
 * topic subscriptions, typing timers and active conversations. It publishes committed
 * events on Bun's pub/sub topics (`user:<id>`, `conv:<id>`, `status:<id>`) to its own
 * sockets, and ephemeral frames (typing, active, presence) through the broker, which
 * carries them to every node (platform/broker.ts). Who is online, cluster-wide, and the
 * connection cap are the presence seam's (platform/presence.ts); what this node's sockets
 * were last told of it, the PresenceView's (every presence frame for them passes it, and
 * in cluster mode the store's word corrects it where a frame was lost). It follows
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
import { answering, eventFrame, frame } from "./protocol";
import { LastActive } from "./last-active";
import { CLOSE_CODES, type CloseCode } from "./close-codes";
import { UNSIGNED_LINK } from "../files/links";
import type { Static } from "../lib/model";
import type { SignalData } from "../models";
import type { AlertKind as AlertKindModel } from "./model";
import type { Broker } from "../platform/broker";
import type { Arrival, Presence } from "../platform/presence";
import { andThen, type Awaitable } from "../lib/awaitable";
import { PresenceView } from "./presence-view";
import { Listeners } from "./listeners";
import { RemoteIndicators } from "./remote-indicators";

/** Users per read of the presence store when re-reading all those followed here. */
const REREAD_BATCH = 1000;

export const statusTopic = (userId: string) => `status:${userId}`;

/** The alert's message when the server shuts down. */
export const SHUTDOWN = "the server is restarting; reconnect with since";

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
  /**
   * Cluster mode: the handling of this socket's frames so far, which the next frame waits
   * for (null when none is running). See wsRoutes' inTurn.
   */
  frameTail: Promise<void> | null;
}

export interface PresenceStatus { user_id: string; online: boolean; last_active_at: string }

/** Users whose existence one query of the heartbeat checks. */
const DELETED_USERS_CHUNK = 1000;

export class Hub {
  private server: Server<unknown> | null = null;
  private sockets = new Map<RawSocket, SocketState>();
  private byUser = new Map<string, Set<SocketState>>();
  /** Who hears each conversation here: where a frame with attachment links goes (publishSigned). */
  private listeners = new Listeners();
  /** Typing and active state other nodes announced here: ended here too, should their node die. */
  private remote: RemoteIndicators;
  /** target user id → sockets following its presence. */
  private followers = new Map<string, Set<SocketState>>();
  /** "viewer target" → presence checks in flight for the pair (cluster mode; see revalidatePresence). */
  private checking = new Map<string, number>();
  private stopped = false;
  /** Whether stop() has begun: a socket that opens after it is closed at once (1001), never opened. */
  get stopping(): boolean {
    return this.stopped;
  }
  private lastActive: LastActive;
  /** Sockets between their open and the end of their catch-up: the events they would have had live meanwhile. */
  private holding = new Map<RawSocket, { state: SocketState; events: StoredEvent[]; frames: unknown[] }>();
  /**
   * Frames of sockets released but not yet served: between the release and its
   * conversation.list (read from PostgreSQL in cluster mode: a wait) new frames queue behind
   * those held, in arrival order. Served, they were overtaken (a ping sent first answered last).
   */
  private draining = new Map<RawSocket, unknown[]>();
  private broker: Broker;
  private presence: Presence;
  /** What this node's sockets were last told of the presence of the users they follow. */
  private view = new PresenceView();
  /** A re-read of the presence store is running; another is due after it. */
  private rereading = false;
  private rereadAgain = false;
  /**
   * Users whose followers here were told online and whom a read of the store found offline,
   * and when: they are told offline only if a read `confirmOfflineMs` later agrees. The
   * store may be being rebuilt (after a PostgreSQL crash or a Redis restart it is empty
   * until each node's next heartbeat writes its users back, within a third of
   * HEARTBEAT_INTERVAL_MS), and users seen offline then are not.
   */
  private suspects = new Map<string, number>();
  private confirmTimer: Timer | null = null;
  private readonly confirmOfflineMs: number;

  private sweeper: Timer;
  private heartbeat: Timer;
  private nodeCheck: Timer;
  private checkingNodes = false;

  constructor(private ctx: AppContext) {
    this.lastActive = new LastActive(ctx);
    this.remote = new RemoteIndicators(ctx.config.typingTtlMs, (conversationId, text) => this.publish(convTopic(conversationId), text));
    this.broker = ctx.broker;
    this.presence = ctx.presence;
    this.presence.onOffline((userId, announced) => this.goOffline(userId, announced));
    this.presence.onReturned((userIds) => {
      for (const userId of userIds) {
        this.tellOnline(userId);
        this.tellActiveAgain(userId);
      }
    });
    this.broker.screen((topic, text, origin) => this.screenRemote(topic, text, origin));
    this.broker.onGap(() => void this.rereadPresence());
    this.confirmOfflineMs = Math.ceil(ctx.config.heartbeatIntervalMs / 2);
    ctx.feed.onCommit((events) => this.publishCommitted(events));
    this.sweeper = setInterval(() => this.closeSlowConsumers(), ctx.config.slowConsumerCheckMs);
    this.sweeper.unref();
    this.heartbeat = setInterval(() => this.checkHeartbeats(), ctx.config.heartbeatIntervalMs);
    this.heartbeat.unref();
    // As often as presence beats (a third of the interval), and only while another node's active state is shown.
    this.nodeCheck = setInterval(() => this.endWhatDeadNodesAnnounced(), Math.max(10, Math.floor(ctx.config.heartbeatIntervalMs / 3)));
    this.nodeCheck.unref();
    const { metrics } = ctx;
    metrics.gauge("parley_ws_connections", "Open WebSocket connections.", () => this.sockets.size);
    metrics.gauge("parley_online_users", "Users online through this node: with an open socket here (or within the presence grace period).", () => this.presence.localCount());
  }

  attach(server: Server<unknown>) {
    this.server = server;
    this.broker.attach(server);
  }

  /** The user's open sockets on every node (MAX_CONNECTIONS_PER_USER counts them all, those still catching up too). */
  connectionsOf(userId: string): Awaitable<number> { return this.presence.connections(userId); }
  stateOf(ws: RawSocket) { return this.sockets.get(ws); }

  /**
   * Keeps a frame that a socket sent during its catch-up, for after its release, in order (a
   * frame served now could subscribe it to a topic before its replay is done); false when
   * the socket is not catching up.
   */
  defer(ws: RawSocket, frame: unknown): boolean {
    const frames = this.holding.get(ws)?.frames ?? this.draining.get(ws);
    if (!frames) return false;
    frames.push(frame);
    // More than twice the per-minute frame limit before it is even open: it would be closed
    // with 1008 once they are served, so it is now, before they pile up in memory.
    if (frames.length > 2 * this.ctx.config.wsFramesPerMinute) {
      frames.length = 0;
      this.closeWith(ws, 1008, "rate_limited", "too many frames before the connection was ready; closing");
    }
    return true;
  }

  /**
   * Counts a new socket of the user, before its upgrade: "full" when they hold enough on
   * every node (the upgrade is then refused with 429, §4.5). Counted at the socket's open
   * instead, two upgrades racing on two nodes both passed a check and one was closed after
   * its 101 (1013).
   */
  reserve(userId: string): Awaitable<Arrival> {
    return this.presence.connect(userId, this.ctx.config.maxConnectionsPerUser);
  }

  /** A socket counted by reserve() that will not be opened (its upgrade failed, or it closed first). */
  departed(userId: string) { this.presence.disconnect(userId); }

  /**
   * Registers an open socket (counted by reserve()) and subscribes it to its user's topic and
   * to every conversation of the user.
   */
  open(state: SocketState, conversationIds: string[], arrival: Arrival) {
    this.sockets.set(state.ws, state);
    state.ws.subscribe(userTopic(state.userId));
    for (const id of conversationIds) this.hear(state, id);
    let mine = this.byUser.get(state.userId);
    if (!mine) this.byUser.set(state.userId, (mine = new Set()));
    mine.add(state);
    if (arrival === "first") this.lastActive.touch(state.userId);
  }

  /**
   * Starts holding a new socket's live events while it catches up (replay, the wait for
   * the log to be delivered up to its view): they are sent by `release`, after the replay.
   * A held socket is not yet open: no topics, no presence.
   */
  hold(state: SocketState) {
    this.holding.set(state.ws, { state, events: [], frames: [] });
  }

  /** Stops holding a socket that will not be opened (closed during its catch-up): its count is given back. */
  drop(state: SocketState) {
    this.draining.delete(state.ws);
    // Still held, or closed while held: never opened, so never counted out by close().
    if (this.holding.delete(state.ws) || state.closing) this.departed(state.userId);
  }

  /**
   * Opens a held socket (see `open`) at `position`, the seq up to which its catch-up went:
   * the held events after it are sent first, in seq order, to the conversations it was in
   * as each came. `memberOf` is the user's conversations as stored when the catch-up read
   * them, which may already include the effects of held events: a conversation.create
   * among them was not yet theirs before it, a conversation.delete still was.
   */
  release(state: SocketState, memberOf: string[], position: number, arrival: Arrival): void {
    const { events: held = [], frames = [] } = this.holding.get(state.ws) ?? {};
    this.holding.delete(state.ws);
    const mine = userTopic(state.userId);
    const topics = new Set(memberOf);
    // A conversation's first change after `position` says whether it was theirs there: a
    // create, not yet; a delete, still. (Added and removed again meanwhile: not theirs.)
    const firstChange = new Map<string, boolean>();
    for (const e of held) {
      if (e.seq <= position || e.topic !== mine) continue;
      const id = e.type === "conversation.create" ? (e.data as { id: string }).id : e.type === "conversation.delete" ? (e.data as { conversation_id: string }).conversation_id : null;
      if (id !== null && !firstChange.has(id)) firstChange.set(id, e.type === "conversation.delete");
    }
    for (const [id, wasMember] of firstChange) wasMember ? topics.add(id) : topics.delete(id);
    for (const e of held) {
      if (e.seq <= position) continue;
      const ownTopic = e.topic === mine;
      if (ownTopic && e.type === "conversation.create") topics.add((e.data as { id: string }).id);
      if (ownTopic || topics.has(e.topic.slice(5))) this.send(state, e.type, eventFrame(e.type, e.json, e.timestamp, e.seq));
      if (ownTopic && e.type === "conversation.delete") topics.delete((e.data as { conversation_id: string }).conversation_id);
    }
    this.open(state, [...topics], arrival);
    this.draining.set(state.ws, frames);
  }

  /** The frames a released socket received until now, in order; from here on its frames are served as they come. */
  takeFrames(ws: RawSocket): unknown[] {
    const frames = this.draining.get(ws) ?? [];
    this.draining.delete(ws);
    return frames;
  }

  /** Unregisters a closed socket: ends its typing and active state, starts the presence grace. */
  close(ws: RawSocket): SocketState | undefined {
    this.draining.delete(ws);
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
      this.broker.publish(convTopic(conversationId), frame("message.typing", { conversation_id: conversationId, user_id: state.userId, is_typing: false }));
    }
    state.typing.clear();
    if (state.active && !this.activeElsewhere(state, state.active)) this.broker.publish(convTopic(state.active), frame("conversation.user_inactive", { conversation_id: state.active, user_id: state.userId }));
    for (const target of state.status) this.dropFollower(state, target);
    const mine = this.byUser.get(state.userId);
    mine?.delete(state);
    if (mine && mine.size === 0) this.byUser.delete(state.userId);
    this.presence.disconnect(state.userId);
    return state;
  }

  /** Presence decided that the user went offline (once, on one node of the cluster). */
  private goOffline(userId: string, announced: boolean) {
    if (this.stopped) return;
    const lastActive = this.lastActive.touch(userId);
    this.remote.userGone(userId);
    if (!announced) return; // never announced online: nothing to take back
    this.publishStatus(userId, false, frame("user.offline", { user_id: userId, online: false, timestamp: iso(Date.now()), last_active_at: lastActive }));
  }

  /** Announces that a user came online (after their first socket got its initial frames). */
  announceOnline(userId: string) {
    this.presence.announced(userId);
    this.tellOnline(userId);
  }

  /** user.online to the user's followers on every node (with their last activity). */
  private tellOnline(userId: string) {
    const tell = (at: string | null) => {
      if (!this.stopped) this.publishStatus(userId, true, frame("user.online", { user_id: userId, online: true, timestamp: iso(Date.now()), last_active_at: at }));
    };
    const at = this.lastActive.of(userId);
    if (!(at instanceof Promise)) return tell(at);
    // In cluster mode the time is read from PostgreSQL. A failed read (the database
    // restarting, this node stopping) was an unhandled rejection; the followers still
    // hear that the user is online, active now.
    at.then(tell, (err) => {
      if (this.stopped) return;
      this.ctx.log.warn({ err, user_id: userId }, "could not read last_active_at; announced online as active now");
      tell(iso(Date.now()));
    }).catch((err) => this.ctx.log.error({ err, user_id: userId }, "announcing a user online failed"));
  }

  /**
   * A presence change decided here goes to every node; to this node's followers only if it
   * tells them something new (a re-read of the store may have told them already).
   */
  private publishStatus(userId: string, online: boolean, text: string) {
    if (this.view.tell(userId, online)) this.broker.publish(statusTopic(userId), text);
    else this.broker.publishElsewhere(statusTopic(userId), text);
  }

  /**
   * Another node's ephemeral frame, before this node's sockets get it: a presence frame
   * that tells them nothing new (they were told already, by a re-read of the store) is kept
   * from them.
   */
  private screenRemote(topic: string, text: string, origin?: string): boolean {
    if (topic.startsWith("conv:")) {
      const inactive = this.remote.heard(text, origin);
      return !inactive || !this.stillActiveHere(inactive.userId, inactive.conversationId);
    }
    if (!topic.startsWith("status:")) return true;
    let online: unknown;
    try {
      online = (JSON.parse(text) as { data?: { online?: unknown } }).data?.online;
    } catch {
      return true;
    }
    if (online === false) this.remote.userGone(topic.slice(7));
    return typeof online !== "boolean" || this.view.tell(topic.slice(7), online);
  }

  /**
   * Reads from the presence store whether each user followed here is online, in batches,
   * and tells the followers where it differs from what they were told: presence frames from
   * other nodes may have been lost (platform/broker.ts, onGap). Concurrent calls run as one
   * more read after the current one.
   */
  private async rereadPresence() {
    if (this.rereading) return void (this.rereadAgain = true);
    this.rereading = true;
    try {
      do {
        this.rereadAgain = false;
        this.ctx.metrics.presenceRereads.inc();
        const users = this.view.followed();
        for (let i = 0; i < users.length && !this.stopped; i += REREAD_BATCH) {
          const batch = users.slice(i, i + REREAD_BATCH);
          const mark = this.view.mark();
          const online = await this.presence.online(batch);
          if (this.stopped) return;
          this.readSays(batch, online, mark);
        }
      } while (this.rereadAgain && !this.stopped);
    } catch (err) {
      this.ctx.log.warn({ err }, "re-reading presence failed; the next gap or period tries again");
    } finally {
      this.rereading = false;
    }
  }

  /**
   * A read of the store begun at `mark` says whether each user is online: corrections where
   * this node's followers were told otherwise, to online at once, to offline once confirmed
   * (`suspects`).
   */
  private readSays(userIds: string[], online: boolean[], mark: number, except?: RawSocket) {
    const now = performance.now();
    userIds.forEach((id, i) => {
      if (!online[i] && this.view.says(id) === true) {
        const since = this.suspects.get(id);
        if (since === undefined) this.suspects.set(id, now);
        if (since === undefined || now - since < this.confirmOfflineMs) return this.confirmLater();
      }
      this.suspects.delete(id);
      this.correct(id, online[i]!, mark, except);
    });
  }

  /** A re-read `confirmOfflineMs` from now, for the suspects. */
  private confirmLater() {
    if (this.confirmTimer || this.stopped) return;
    this.confirmTimer = setTimeout(() => {
      this.confirmTimer = null;
      void this.rereadPresence();
    }, this.confirmOfflineMs);
    this.confirmTimer.unref();
  }

  /**
   * The store, read from `mark` on, says whether the user is online: where this node's
   * followers were told otherwise (and nothing about the user came meanwhile), they get a
   * corrected frame, all of them but `except` (the socket whose reply this read was).
   */
  private correct(userId: string, online: boolean, mark: number, except?: RawSocket) {
    const c = this.view.correct(userId, online, mark);
    if (!c || (except && c.was === null)) return; // nothing to correct; or the first follower's reply, now what they were told
    const send = (lastActive: string | null) => {
      if (this.stopped || !this.view.current(userId, c.at)) return; // a frame about the user came meanwhile
      const type = online ? "user.online" : "user.offline";
      const text = frame(type, { user_id: userId, online, timestamp: iso(Date.now()), last_active_at: lastActive ?? iso(0) });
      this.ctx.metrics.presenceCorrections.inc({ type });
      if (except && except.readyState === 1) except.publish(statusTopic(userId), text);
      else this.server?.publish(statusTopic(userId), text);
    };
    try {
      const at = this.lastActive.of(userId);
      if (at instanceof Promise) at.then(send, (err) => this.ctx.log.warn({ err, user_id: userId }, "a presence correction was not sent"));
      else send(at);
    } catch (err) {
      this.ctx.log.warn({ err, user_id: userId }, "a presence correction was not sent");
    }
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
      for (const s of this.byUser.get(e.topic.slice(5)) ?? []) this.hear(s, id);
    }
    const text = eventFrame(e.type, e.json, e.timestamp, e.seq);
    // The socket that asked (if it still hears the topic) gets the frame with its request_id.
    const asker = e.replyTo && (e.replyTo.socket as SocketState);
    const answer = asker && !asker.closing && asker.ws.isSubscribed(e.topic) ? { to: asker, text: answering(text, e.replyTo!.requestId) } : undefined;
    if (e.json.includes(UNSIGNED_LINK)) this.publishSigned(e.topic, text, answer);
    else if (answer) {
      answer.to.ws.publish(e.topic, text); // to the topic's other sockets (Bun leaves out the publishing one)
      answer.to.ws.send(answer.text);
    } else this.publish(e.topic, text);
    this.ctx.metrics.eventsPublishedOf(e.type).inc();
    if (e.type === "conversation.delete") this.leaveConversation(e.topic.slice(5), (e.data as { conversation_id: string }).conversation_id);
    else if (e.type === "friend.remove") {
      const { user_id, friend_id } = e.data as { user_id: string; friend_id: string };
      // Published once, to the other side; the pair is re-checked both ways.
      this.revalidatePresence(user_id, friend_id);
    }
  }

  /** After a user left (or lost) a conversation: their sockets stop receiving it. */
  private leaveConversation(userId: string, conversationId: string) {
    this.listeners.leave(userId, conversationId);
    for (const s of this.byUser.get(userId) ?? []) {
      s.ws.unsubscribe(convTopic(conversationId));
      const timer = s.typing.get(conversationId);
      if (timer) {
        clearTimeout(timer);
        s.typing.delete(conversationId);
        this.broker.publish(convTopic(conversationId), frame("message.typing", { conversation_id: conversationId, user_id: userId, is_typing: false }));
      }
      if (s.active === conversationId) {
        s.active = null;
        if (!this.activeElsewhere(s, conversationId)) this.broker.publish(convTopic(conversationId), frame("conversation.user_inactive", { conversation_id: conversationId, user_id: userId }));
      }
    }
    // Sharing this conversation may have been what let them see each other's presence.
    const related = new Set<string>();
    for (const s of this.byUser.get(userId) ?? []) for (const t of s.status) related.add(t);
    for (const s of this.followers.get(userId) ?? []) related.add(s.userId);
    for (const other of related) this.revalidatePresence(userId, other);
  }

  /**
   * Drops presence subscriptions between two users who may no longer see each other. Runs
   * as the event that may have ended it (friend.remove, conversation.delete) is published,
   * so that the viewer's sockets get no presence frame of the target after that event.
   */
  private revalidatePresence(a: string, b: string) {
    if (a === b) return;
    for (const [viewer, target] of [[a, b], [b, a]] as const) {
      const sockets = [...(this.followers.get(target) ?? [])].filter((s) => s.userId === viewer);
      if (!sockets.length) continue;
      // Answered at once on SQLite: the unfollow happens in this turn.
      const visible = this.ctx.store.users.visibleAmong(viewer, [target]);
      if (!(visible instanceof Promise)) {
        if (!visible.has(target)) for (const s of sockets) this.unfollow(s, [target]);
        continue;
      }
      // Cluster mode answers later: until then these sockets hear nothing of the target (they
      // may not see it any more), then follow it again if they still may. A presence change
      // within the check is then missed by them until the target's next change (the node's
      // other followers heard it, so re-reading the store finds nothing to correct); seeing
      // what one may not never happens.
      const key = `${viewer} ${target}`;
      this.checking.set(key, (this.checking.get(key) ?? 0) + 1);
      for (const s of sockets) s.ws.unsubscribe(statusTopic(target));
      const settle = (stillVisible: boolean) => {
        const left = this.checking.get(key)! - 1;
        if (left) this.checking.set(key, left);
        else this.checking.delete(key);
        for (const s of sockets) {
          if (!s.status.has(target) || !this.sockets.has(s.ws)) continue; // unsubscribed or closed meanwhile
          if (!stillVisible) this.unfollow(s, [target]);
          else if (!left) s.ws.subscribe(statusTopic(target)); // a later check decides otherwise
        }
      };
      visible.then(
        (v) => settle(v.has(target)),
        (err) => {
          this.ctx.log.warn({ err }, "presence check failed; the subscription is dropped");
          settle(false);
        },
      );
    }
  }

  follow(state: SocketState, targets: string[]) {
    // A socket closed while its frame waited (cluster mode: a frame waits its turn) follows nobody.
    if (!this.sockets.has(state.ws)) return;
    for (const t of targets) {
      state.ws.subscribe(statusTopic(t));
      state.status.add(t);
      let set = this.followers.get(t);
      if (!set) {
        this.followers.set(t, (set = new Set()));
        this.view.follow(t);
      }
      set.add(state);
    }
  }

  unfollow(state: SocketState, targets: string[]) {
    for (const t of targets) {
      state.ws.unsubscribe(statusTopic(t));
      state.status.delete(t);
      this.dropFollower(state, t);
    }
  }

  private dropFollower(state: SocketState, target: string) {
    const set = this.followers.get(target);
    set?.delete(state);
    if (set?.size === 0) {
      this.followers.delete(target);
      this.view.unfollow(target);
      this.suspects.delete(target);
    }
  }

  /**
   * The presence of users that `viewer` just followed, for its reply. Where the read
   * differs from what the users' other followers here were told, they are told too.
   */
  statusOf(userIds: string[], viewer?: SocketState): Awaitable<PresenceStatus[]> {
    const mark = this.view.mark();
    return andThen(this.presence.online(userIds), (online) => {
      if (viewer) this.readSays(userIds, online, mark, viewer.ws);
      const times = userIds.map((id) => this.lastActive.of(id));
      const build = (at: (string | null)[]) => userIds.map((id, i) => ({ user_id: id, online: online[i]!, last_active_at: at[i] ?? iso(0) }));
      return times.some((t) => t instanceof Promise) ? Promise.all(times).then(build) : build(times as (string | null)[]);
    }) as Awaitable<PresenceStatus[]>;
  }

  /** Sets or refreshes (is_typing true) or ends a socket's typing indicator in a conversation. */
  typing(state: SocketState, conversationId: string, isTyping: boolean) {
    // A socket that does not hear the conversation (its user removed since the frame's
    // membership check, which leaveConversation unsubscribed) does not start typing there.
    if (isTyping && !state.ws.isSubscribed(convTopic(conversationId))) return;
    const existing = state.typing.get(conversationId);
    if (existing) clearTimeout(existing);
    const data = { conversation_id: conversationId, user_id: state.userId, is_typing: isTyping };
    if (!isTyping) {
      state.typing.delete(conversationId);
      if (!existing) return;
    } else {
      state.typing.set(conversationId, setTimeout(() => this.typing(state, conversationId, false), this.ctx.config.typingTtlMs));
    }
    // Published from the socket, which skips it: the typist does not hear themself.
    this.broker.publish(convTopic(conversationId), frame("message.typing", data), this.sockets.has(state.ws) ? state.ws : undefined);
  }

  /**
   * Whether another of the user's sockets here still has the conversation on screen: the
   * others hear `user_inactive` when the user's last one leaves it (two tabs open on it, one
   * closed, is still a user looking at it). Sockets on other nodes of a cluster are not seen
   * here; a node that still has one says so when it hears the `user_inactive` (stillActiveHere).
   */
  private activeElsewhere(state: SocketState, conversationId: string): boolean {
    for (const s of this.byUser.get(state.userId) ?? []) if (s !== state && s.active === conversationId) return true;
    return false;
  }

  /**
   * Another node says a user left a conversation's screen, while a socket of theirs here still
   * shows it: being active is the user's (a tab on another node closing is still a user
   * looking at it), so this node's sockets are not told, and the other nodes hear it active
   * again from here (theirs saw `user_inactive` a moment; a node cannot count the sockets of
   * the others without a round trip per switch of conversation).
   */
  private stillActiveHere(userId: string, conversationId: string): boolean {
    // A node that is stopping says nothing more: its sockets' close would not end it.
    if (this.stopped) return false;
    for (const s of this.byUser.get(userId) ?? []) {
      if (s.active !== conversationId || s.closing) continue;
      this.broker.publishElsewhere(convTopic(conversationId), frame("conversation.user_active", { conversation_id: conversationId, user_id: userId }));
      return true;
    }
    return false;
  }

  /**
   * After this node's presence was lost (it stalled past the heartbeat limit): the other nodes
   * ended the active state it had announced (RemoteIndicators, once it left the live nodes),
   * so each conversation a user's sockets here have on screen is announced active again.
   */
  private tellActiveAgain(userId: string) {
    const said = new Set<string>();
    for (const s of this.byUser.get(userId) ?? []) {
      if (!s.active || said.has(s.active)) continue;
      said.add(s.active);
      this.broker.publish(convTopic(s.active), frame("conversation.user_active", { conversation_id: s.active, user_id: userId }), s.ws);
    }
  }

  /** Sets (or clears, with null) the conversation a socket has on screen. */
  setActive(state: SocketState, conversationId: string | null) {
    if (state.active === conversationId) return;
    // Not for a conversation the socket does not hear (its user removed since the frame's
    // membership check, which leaveConversation unsubscribed): nobody is told it is active.
    if (conversationId !== null && !state.ws.isSubscribed(convTopic(conversationId))) return;
    if (state.active && !this.activeElsewhere(state, state.active)) this.broker.publish(convTopic(state.active), frame("conversation.user_inactive", { conversation_id: state.active, user_id: state.userId }), state.ws);
    state.active = conversationId;
    // No subscription here: a member's sockets hear their conversations from open() or the
    // conversation.create on; subscribing again let a socket whose user was removed between
    // its frame's membership check and this call hear the conversation on.
    if (conversationId) {
      this.broker.publish(convTopic(conversationId), frame("conversation.user_active", { conversation_id: conversationId, user_id: state.userId }), state.ws);
    }
  }

  /** Subscribes an open socket to a conversation's topic (and notes that its user hears it). */
  private hear(state: SocketState, conversationId: string) {
    this.listeners.join(state.userId, conversationId);
    state.ws.subscribe(convTopic(conversationId));
  }

  /** The users whose sockets here may hear a topic (each socket's own subscription is still checked). */
  private usersFor(topic: string): Iterable<string> {
    if (topic.startsWith("conv:")) return this.listeners.usersOf(topic.slice(5));
    if (topic.startsWith("user:")) return [topic.slice(5)];
    return this.byUser.keys();
  }

  /** Sends a frame to one socket (its attachment links signed for its user). */
  send(state: SocketState, type: string, text: string) {
    this.ctx.metrics.framesOutOf(type).inc();
    state.ws.send(this.ctx.files.links.personalize(text, state.userId));
  }

  /**
   * A frame with attachment links goes to each user who hears the topic with the links
   * signed for them (PROTOCOL §9: a link names one viewer). When all of a user's sockets here
   * hear the topic (the usual case) it is published on the user's own topic, so that it
   * leaves with the turn's other frames as any publish does (one write a socket, not one a
   * frame; issue #17); else it is sent to each of their sockets that hears it. Bun keeps a
   * socket's frames in the order they were published or sent, whatever the topic, so it
   * keeps its place among the topic's.
   */
  private publishSigned(topic: string, text: string, answer?: { to: SocketState; text: string }) {
    const links = this.ctx.files.links;
    const signedFor = links.personalizer(text);
    for (const userId of this.usersFor(topic)) {
      const sockets = this.byUser.get(userId);
      if (!sockets) continue; // gone since; swept at the next heartbeat
      let hearing = 0;
      for (const s of sockets) if (s.ws.isSubscribed(topic)) hearing++;
      if (hearing === 0) continue;
      const theirs = signedFor(userId);
      const asking = answer?.to.userId === userId ? answer : undefined;
      if (hearing < sockets.size) {
        for (const s of sockets) if (s.ws.isSubscribed(topic)) s.ws.send(s === asking?.to ? links.personalize(asking.text, userId) : theirs);
      } else if (!asking) this.publish(userTopic(userId), theirs);
      else {
        asking.to.ws.publish(userTopic(userId), theirs); // the user's other sockets (not the publishing one)
        asking.to.ws.send(links.personalize(asking.text, userId));
      }
    }
  }

  /** A committed event to this node's sockets (every node delivers the log to its own). */
  private publish(topic: string, text: string) {
    this.server?.publish(topic, text);
  }

  /** The users kept as hearing a conversation here (for tests). */
  listenersOf(conversationId: string): string[] {
    return [...this.listeners.usersOf(conversationId)];
  }

  /** Forgets, as listeners, the users whose last socket here has closed (each heartbeat). */
  sweepListeners() {
    this.listeners.sweep((userId) => this.byUser.has(userId));
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
   * Ends the active state that nodes presence now finds gone had announced (killed, they
   * ended none of it): the user may still be online through another node, so going offline
   * would never end it.
   */
  private endWhatDeadNodesAnnounced() {
    const { liveNodes } = this.presence;
    if (!liveNodes || this.checkingNodes || this.stopped || this.remote.announcers().size === 0) return;
    this.checkingNodes = true;
    const readAt = performance.now();
    liveNodes
      .call(this.presence)
      .then(
        (alive) => this.stopped || this.remote.nodesAlive(new Set(alive), performance.now(), this.ctx.config.heartbeatIntervalMs, readAt),
        (err) => this.ctx.log.debug({ err }, "could not read the live nodes"),
      )
      .finally(() => (this.checkingNodes = false));
  }

  /**
   * Every HEARTBEAT_INTERVAL_MS each socket is pinged; one that has not answered (pong or
   * any frame) since the previous round is dead and is terminated. A dead peer is thus
   * gone within 2 × the interval, whatever the granularity of Bun's own idle timeout.
   * A socket whose token has expired is closed in the same round (4001, terminal).
   */
  private checkHeartbeats() {
    this.sweepListeners();
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
    void this.closeDeletedUsers();
  }

  private lastBeat = performance.now();

  /** A heartbeat's check for deleted users is under way (a slow one is not started twice). */
  private checkingUsers = false;

  /**
   * The sockets of users deleted while connected (an operator's doing: no route deletes
   * users) are closed with 4001 in the heartbeat round that finds them gone, so that a silent
   * socket stops hearing its conversations too. The ids are read in chunks, each turn of the
   * event loop one, so that many sockets do not stall it.
   */
  private async closeDeletedUsers() {
    if (this.checkingUsers || this.byUser.size === 0) return;
    this.checkingUsers = true;
    try {
      const ids = [...this.byUser.keys()];
      for (let i = 0; i < ids.length; i += DELETED_USERS_CHUNK) {
        if (i > 0) await new Promise((resolve) => setImmediate(resolve));
        if (this.stopped) return; // the store may be closing
        for (const userId of await this.ctx.store.users.missing(ids.slice(i, i + DELETED_USERS_CHUNK)))
          for (const s of this.byUser.get(userId) ?? []) if (!s.closing) this.closeWith(s.ws, 4001, "unauthorized", "user no longer exists");
      }
    } catch (err) {
      if (!this.stopped) this.ctx.log.warn({ err }, "the heartbeat's check for deleted users failed; trying again next round");
    } finally {
      this.checkingUsers = false;
    }
  }

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

  /**
   * Shutdown: every socket gets `alert {kind:"shutdown"}` and close 1001, those still opening
   * (being counted, or catching up) too; timers stop. Resolves when presence has let go of
   * this node. A socket left open would keep Bun's stop waiting for as long as its client
   * stays, and in cluster mode a socket's opening spans round trips to PostgreSQL.
   */
  stop(): Promise<void> {
    this.stopped = true;
    this.remote.stop();
    clearInterval(this.sweeper);
    clearInterval(this.heartbeat);
    clearInterval(this.nodeCheck);
    if (this.confirmTimer) clearTimeout(this.confirmTimer);
    // Everyone online here (or in their grace period) was last active now.
    for (const userId of this.presence.localUsers()) this.lastActive.touch(userId);
    this.lastActive.close();
    const left = this.presence.stop();
    for (const s of this.sockets.values()) {
      for (const timer of s.typing.values()) clearTimeout(timer);
      s.typing.clear();
      s.active = null;
      this.closeWith(s.ws, 1001, "shutdown", SHUTDOWN);
    }
    for (const { state } of this.holding.values()) {
      state.closing = true;
      this.closeWith(state.ws, 1001, "shutdown", SHUTDOWN);
    }
    return left;
  }
}
