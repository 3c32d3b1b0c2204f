/**
 * What cluster presence does alike on every shared store (PostgreSQL, Redis): this node's
 * own bookkeeping (its sockets per user, its grace timers, the offline listener), the
 * heartbeat's rhythm and what a beat decides, and the order of one user's calls. Each store
 * (postgres/presence.ts, redis/presence.ts) supplies only the atomic decisions, each one
 * round trip that is atomic across nodes: the store's half of Presence, as on Centrifuge's
 * broker.go beside its implementations.
 *
 * A node beats every HEARTBEAT_INTERVAL_MS / 3; a node silent for HEARTBEAT_INTERVAL_MS is
 * dead, and the next beat of any node takes it away with its users' sockets (exactly one
 * beat wins each dead node): those left with no socket anywhere go offline, announced by
 * that node. A node killed right after a beat is thus gone within 4/3 × the interval. The
 * stores hold soft state only: after one is emptied (a crash or restart), each node's next
 * beat finds its heartbeat gone and writes its users back. After a call that failed (the
 * store unreachable for a moment, with its state kept), what the store holds of this node
 * may differ from what this node knows: a disconnect not recorded kept its user online for
 * good, a connect that timed out and ran later counted a socket that never opened. The next
 * beat that succeeds then sets this node's counts in the store to its own (`storeResync`).
 */
import type { Logger } from "../log";
import type { Arrival, Presence } from "./presence";

export interface ClusterPresenceOptions {
  nodeId: string;
  graceMs: number;
  heartbeatIntervalMs: number;
  log?: Logger;
}

export abstract class ClusterPresence implements Presence {
  /** user id → sockets counted on this node. */
  protected local = new Map<string, number>();
  /** Grace timers started here. */
  private leaving = new Map<string, Timer>();
  /**
   * This node's pending call per user. On a pool, calls run on different connections, so a
   * fire-and-forget `announced` could otherwise land after the `disconnect` that follows
   * it (and the user go offline unannounced); one user's calls from one node go in order.
   */
  private turns = new Map<string, Promise<unknown>>();
  private listener: (userId: string, announced: boolean) => void = () => {};
  private returned: (userIds: string[]) => void = () => {};
  private beat: Timer | null = null;
  private beats = 0;
  /** A store call failed: the store's counts for this node may differ from `local` until a resync. */
  private unsure = false;
  private beating: Promise<void> | null = null;
  protected stopped = false;

  constructor(protected readonly o: ClusterPresenceOptions) {}

  /** Beats: whether this node's heartbeat was gone (it is written again), and the users of dead nodes that went offline announced. */
  protected abstract storeBeat(): Promise<{ fresh: boolean; offline: string[] }>;
  /** Writes this node's users and their socket counts back (after the store lost them), announced. */
  protected abstract storeReregister(users: [userId: string, sockets: number][]): Promise<void>;
  /** Counts a socket of the user on this node, unless they hold `max` anywhere. */
  protected abstract storeConnect(userId: string, max: number): Promise<Arrival>;
  /** Uncounts one: the user's generation when that was their last socket anywhere, else null. */
  protected abstract storeDisconnect(userId: string): Promise<string | null>;
  /** After the grace: removes the user unless a socket came back (another generation); whether they were announced, or null when not removed. */
  protected abstract storeSettle(userId: string, generation: string): Promise<boolean | null>;
  protected abstract storeAnnounced(userId: string): Promise<void>;
  /**
   * Sets this node's socket counts in the store to `users`' and removes its sockets of every
   * other user but those in `skip` (a call about them is in flight, or their grace runs
   * here), settling the users left with no socket anywhere; returns those, announced ones, to announce offline.
   */
  protected abstract storeResync(users: [userId: string, sockets: number][], skip: string[]): Promise<string[]>;
  /** Marks this node dead `graceMs` from now, so that the first beat of any node after that settles its users. */
  protected abstract storeLeave(graceMs: number): Promise<void>;
  abstract connections(userId: string): Promise<number>;
  abstract online(userIds: string[]): Promise<boolean[]>;
  /** The nodes the store counts as alive: beating, or dead but not yet settled by a beat. */
  abstract liveNodes(): Promise<string[]>;

  /** Starts beating; called by each store's constructor once it can reach its store. */
  protected start() {
    this.beat = setInterval(() => void this.heartbeat(), Math.max(10, Math.floor(this.o.heartbeatIntervalMs / 3)));
    this.beat.unref();
    void this.heartbeat();
  }

  /** Runs `op` after this node's earlier calls about `userId`. */
  private inTurn<T>(userId: string, op: () => Promise<T>): Promise<T> {
    const next = (this.turns.get(userId) ?? Promise.resolve()).then(op);
    const settled = next.catch(() => {});
    this.turns.set(userId, settled);
    void settled.then(() => {
      if (this.turns.get(userId) === settled) this.turns.delete(userId);
    });
    return next;
  }

  /**
   * Beats, and takes offline the users of nodes that stopped beating. One beat at a time: a
   * slow beat could otherwise finish after a later one and judge from old news.
   */
  heartbeat(): Promise<void> {
    return (this.beating ??= this.beatOnce().finally(() => (this.beating = null)));
  }

  private async beatOnce() {
    try {
      const { fresh, offline } = await this.storeBeat();
      if (this.stopped) return;
      // Announced first: this beat took them from the store, so no other node will, whatever
      // happens to the write below.
      for (const userId of offline) this.listener(userId, true);
      // Our beat was gone (the store was emptied, or we stalled past the limit): write our users back.
      if (fresh && this.beats > 0 && this.local.size) {
        const users = [...this.local];
        await this.storeReregister(users);
        this.o.log?.warn({ users: users.length }, "presence: heartbeat was lost; users registered again");
        // Another node's beat may have taken them offline, and said so: they are back.
        if (!this.stopped) this.returned(users.map(([userId]) => userId));
        this.unsure = false; // nothing of this node was left in the store to differ
      } else if (this.unsure) await this.resync();
      this.beats++;
    } catch (err) {
      this.o.log?.warn({ err }, "presence heartbeat failed");
    }
  }

  /**
   * After a failed call: this node's counts written over the store's. A user with a call in
   * flight is left to it (on one connection it runs before, and its effect on `local` lands after).
   */
  private async resync() {
    this.unsure = false;
    try {
      const skip = [...new Set([...this.turns.keys(), ...this.leaving.keys()])];
      const users = [...this.local].filter(([userId]) => !this.turns.has(userId));
      const offline = await this.storeResync(users, skip);
      if (this.stopped) return;
      for (const userId of offline) this.listener(userId, true);
      this.o.log?.warn({ users: users.length, offline: offline.length }, "presence: counts written again after a failed call");
    } catch (err) {
      this.unsure = true;
      throw err;
    }
  }

  /** A store call failed: logged, and the next beat resyncs. */
  private failed(err: unknown, message: string, userId: string) {
    this.unsure = true;
    this.o.log?.warn({ err, user_id: userId }, message);
  }

  connect(userId: string, max: number): Promise<Arrival> {
    return this.inTurn(userId, async () => {
      const arrival = await this.storeConnect(userId, max).catch((err) => {
        this.unsure = true; // it may still have counted the socket (a timeout), which never opens
        throw err;
      });
      if (arrival !== "full") {
        this.local.set(userId, (this.local.get(userId) ?? 0) + 1);
        clearTimeout(this.leaving.get(userId));
        this.leaving.delete(userId);
      }
      return arrival;
    });
  }

  disconnect(userId: string) {
    const n = this.local.get(userId);
    if (n === undefined) return;
    if (n > 1) this.local.set(userId, n - 1);
    else this.local.delete(userId);
    // Left the cluster: another node's beat takes all of this node's sockets away at once.
    if (this.stopped) return;
    this.inTurn(userId, async () => {
      const generation = await this.storeDisconnect(userId);
      if (generation === null || this.stopped) return;
      const settle = () => void this.settle(userId, generation);
      if (this.o.graceMs === 0) return settle();
      clearTimeout(this.leaving.get(userId));
      this.leaving.set(userId, setTimeout(settle, this.o.graceMs));
    }).catch((err) => this.failed(err, "presence: a disconnect was not recorded (the next beat writes the counts again)", userId));
  }

  /** After the grace period: offline unless a socket came back anywhere (a connect bumped the generation). */
  private settle(userId: string, generation: string) {
    this.leaving.delete(userId);
    return this.inTurn(userId, async () => {
      const announced = await this.storeSettle(userId, generation);
      if (announced !== null && !this.stopped) this.listener(userId, announced);
    }).catch((err) => this.failed(err, "presence: going offline failed (the next beat writes the counts again)", userId));
  }

  /** Resolves once recorded (callers need not wait: this node's later calls about the user come after it). */
  announced(userId: string): Promise<void> {
    return this.inTurn(userId, () => this.storeAnnounced(userId)).catch((err) => this.o.log?.warn({ err, user_id: userId }, "presence: announcing failed"));
  }

  onOffline(listener: (userId: string, announced: boolean) => void) { this.listener = listener; }

  onReturned(listener: (userIds: string[]) => void) { this.returned = listener; }

  localUsers() { return new Set([...this.local.keys(), ...this.leaving.keys()]); }

  localCount() { return this.localUsers().size; }

  /**
   * Leaves the cluster: marked dead at the end of the presence grace, so that its users get
   * the grace a closed socket gets (§4.4): one who reconnects to another node meanwhile (the
   * shutdown's 1001 asks them to) never goes offline; the others do at the first beat of any
   * node after it. (Marked dead at once, they went offline and online again on every
   * rolling restart.)
   */
  async stop() {
    this.stopped = true;
    if (this.beat) clearInterval(this.beat);
    for (const timer of this.leaving.values()) clearTimeout(timer);
    this.leaving.clear();
    try {
      await this.beating; // a beat in flight must not set a new deadline after this one
      await this.storeLeave(this.o.graceMs);
    } catch (err) {
      this.o.log?.warn({ err }, "presence: leaving the cluster failed; the node is taken as dead after the heartbeat interval");
    }
  }
}
