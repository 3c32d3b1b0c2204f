/**
 * Presence (PROTOCOL §6, §11): which users have a socket open, on this node or any. The
 * hub keeps its own sockets; this seam keeps the counts, the grace period after a user's
 * last socket closes, and whether user.online went out, so that a user comes online and
 * goes offline once for everybody, whichever nodes their sockets are on. Single node: in
 * memory, synchronous. Cluster: PostgreSQL, or Redis with REDIS_URL, with node heartbeats
 * so that a node that died takes its users offline.
 *
 * Methods answer a value or a promise of it (Awaitable): the single-node implementation
 * answers at once, so its callers keep today's synchronous path.
 */
import type { Awaitable } from "../lib/awaitable";

/**
 * What a new socket is: refused (`full`: the user already has MAX_CONNECTIONS_PER_USER
 * sockets), the user's `first` (they were offline: announce them online once the socket
 * is set up), or one `more`.
 */
export type Arrival = "full" | "first" | "more";

export interface Presence {
  /** Counts a new socket of the user, unless they already hold `max` sockets anywhere. */
  connect(userId: string, max: number): Awaitable<Arrival>;
  /** The user's open sockets, on every node. */
  connections(userId: string): Awaitable<number>;
  /**
   * A counted socket of the user closed. After their last one anywhere and the grace
   * period (PRESENCE_GRACE_MS) without a new one, the offline listener is called.
   */
  disconnect(userId: string): void;
  /** user.online went out for the user (after their first socket's replay). */
  announced(userId: string): void;
  /** For each user: whether they are online (a socket anywhere, or within the grace period). */
  online(userIds: string[]): Awaitable<boolean[]>;
  /**
   * Called on one node, once, when a user went offline: after the grace period, or because
   * the node that held their sockets died. `announced`: user.online had gone out for them,
   * so user.offline must.
   */
  onOffline(listener: (userId: string, announced: boolean) => void): void;
  /**
   * Cluster: this node found its heartbeat gone (it stalled past HEARTBEAT_INTERVAL_MS, or
   * the store lost its state) and wrote its users back: another node may have taken them
   * offline meanwhile, and announced it, so they are announced online again (each node's
   * followers are told only what is news to them).
   */
  onReturned(listener: (userIds: string[]) => void): void;
  /**
   * Cluster: the nodes alive, as presence judges them (a node that stopped beating is gone
   * once a beat settled it, within 2 × HEARTBEAT_INTERVAL_MS). None on a single node.
   */
  liveNodes?(): Promise<string[]>;
  /** Users online through this node: with a socket here, or in a grace period started here. */
  localUsers(): Iterable<string>;
  localCount(): number;
  /** Stops timers; a cluster node leaves (its users go offline unless they reconnect elsewhere). */
  stop(): Promise<void>;
}
