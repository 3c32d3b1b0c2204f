/**
 * Typing and active state that other nodes told this node's sockets about (§4.2, §11). The
 * node of the typist ends its indicator (the TTL, the socket's close); when that node dies,
 * nothing would: its timers and its sockets went with it, and an indicator stuck on every
 * other node's screens (found by an acceptance pass with a node killed). So each node also
 * ends what it relayed: a typing indicator TYPING_TTL_MS (and a second's margin) after the
 * last that refreshed it, a user's typing and active state when the user goes offline, and
 * the active state a node announced once presence finds that node gone (the user may still be
 * online through another node: nothing else would end it).
 */
import { frame } from "./protocol";

/** The frames it follows, told apart by their start (every frame is `{"type":…` first). */
const TYPING = '{"type":"message.typing"';
const ACTIVE = '{"type":"conversation.user_active"';
const INACTIVE = '{"type":"conversation.user_inactive"';

/** After the typist's node's own TTL: its `is_typing: false` normally comes first. */
const MARGIN_MS = 1000;

export class RemoteIndicators {
  /** "conversation user" → the timer that ends that typing indicator here. */
  private typing = new Map<string, Timer>();
  /** user → the conversations they were announced active in → the node that announced it (when it said). */
  private active = new Map<string, Map<string, string | undefined>>();
  /** Announcing nodes that presence did not list, since when (ms). */
  private missingSince = new Map<string, number>();
  /** When each node was last heard announcing (ms): a node heard after a word on the live nodes was read is alive, whatever it says. */
  private lastHeard = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    /** Sends an ending frame to this node's sockets on the conversation's topic. */
    private readonly end: (conversationId: string, text: string) => void,
  ) {}

  /**
   * Another node's frame on a conversation's topic, on its way to this node's sockets; `origin`:
   * that node's id; `now` in ms. A `user_inactive` answers whose and where, for the hub to
   * weigh against this node's own sockets.
   */
  heard(text: string, origin?: string, now = performance.now()): { conversationId: string; userId: string } | undefined {
    if (!text.startsWith(TYPING) && !text.startsWith(ACTIVE) && !text.startsWith(INACTIVE)) return;
    if (origin !== undefined) this.lastHeard.set(origin, now);
    let data: { conversation_id?: unknown; user_id?: unknown; is_typing?: unknown };
    try {
      data = (JSON.parse(text) as { data: typeof data }).data ?? {};
    } catch {
      return;
    }
    const { conversation_id: c, user_id: u } = data;
    if (typeof c !== "string" || typeof u !== "string") return;
    if (text.startsWith(TYPING)) {
      const key = `${c} ${u}`;
      clearTimeout(this.typing.get(key));
      if (data.is_typing !== true) return void this.typing.delete(key);
      const timer = setTimeout(() => this.stopTyping(key, c, u), this.ttlMs + MARGIN_MS);
      timer.unref();
      this.typing.set(key, timer);
    } else if (text.startsWith(ACTIVE)) {
      let mine = this.active.get(u);
      if (!mine) this.active.set(u, (mine = new Map()));
      mine.set(c, origin);
    } else {
      this.active.get(u)?.delete(c);
      if (this.active.get(u)?.size === 0) this.active.delete(u);
      return { conversationId: c, userId: u };
    }
  }

  /** The user went offline (everywhere): what they were shown doing here ends. */
  userGone(userId: string) {
    for (const [key, timer] of this.typing) {
      const [c, u] = key.split(" ") as [string, string];
      if (u !== userId) continue;
      clearTimeout(timer);
      this.stopTyping(key, c, u);
    }
    for (const c of this.active.get(userId)?.keys() ?? []) this.endActive(c, userId);
    this.active.delete(userId);
  }

  /** The nodes that announced active state still shown here. */
  announcers(): Set<string> {
    const nodes = new Set<string>();
    for (const convs of this.active.values()) for (const origin of convs.values()) if (origin) nodes.add(origin);
    return nodes;
  }

  /**
   * Presence's word on which nodes are alive, read from `readAt` and answered at `now` (ms):
   * the active state a node announced ends once it has been missing from every word for
   * `settleMs` (a store restarted empty lists no node until each one's next beat writes it
   * back). A node heard since the word was read is alive: a node back from a stall says its
   * active state again, and a word read before that (answered after it) ended it for good.
   */
  nodesAlive(listed: ReadonlySet<string>, now: number, settleMs: number, readAt = now) {
    const alive = new Set(listed);
    for (const [node, at] of this.lastHeard) if (at > readAt) alive.add(node);
    const announcing = this.announcers();
    for (const node of this.lastHeard.keys()) if (!alive.has(node) && !announcing.has(node)) this.lastHeard.delete(node);
    for (const node of this.missingSince.keys()) if (alive.has(node)) this.missingSince.delete(node);
    for (const node of this.announcers()) if (!alive.has(node) && !this.missingSince.has(node)) this.missingSince.set(node, now);
    const gone = (node: string) => now - (this.missingSince.get(node) ?? now) >= settleMs;
    for (const [u, convs] of this.active) {
      for (const [c, origin] of convs) {
        if (origin === undefined || !gone(origin)) continue;
        convs.delete(c);
        this.endActive(c, u);
      }
      if (convs.size === 0) this.active.delete(u);
    }
    for (const node of this.missingSince.keys()) if (gone(node)) this.missingSince.delete(node);
  }

  stop() {
    for (const timer of this.typing.values()) clearTimeout(timer);
    this.typing.clear();
    this.active.clear();
    this.missingSince.clear();
    this.lastHeard.clear();
  }

  private endActive(c: string, u: string) {
    this.end(c, frame("conversation.user_inactive", { conversation_id: c, user_id: u }));
  }

  private stopTyping(key: string, c: string, u: string) {
    this.typing.delete(key);
    this.end(c, frame("message.typing", { conversation_id: c, user_id: u, is_typing: false }));
  }
}
