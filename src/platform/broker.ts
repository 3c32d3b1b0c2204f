/**
 * The broker: live frames between nodes (PROTOCOL §11). Ephemeral frames (typing, active
 * state, presence) go to a topic (`conv:<id>`, `user:<id>`, `status:<id>`) on every node,
 * each node handing them to its own sockets through Bun's topics. Committed events never
 * travel here: every node delivers them from the event log, in `seq` order; the broker only
 * carries the wake-up "the log advanced to seq N", which saves latency, never correctness.
 *
 * Ephemeral frames may be lost between nodes (core NATS is at most once). What is lost for
 * good is typing and active state, which the next frame supersedes; presence outlives its
 * frames, so the hub sees each frame from another node before its sockets do (`screen`) and
 * re-reads presence when frames may have been lost (`onGap`).
 */
import type { Server, ServerWebSocket } from "bun";

export interface Broker {
  /** The server whose sockets this node delivers to. */
  attach(server: Server<unknown>): void;
  /**
   * Publishes an ephemeral frame on `topic` to every node, this one included. `from`, an
   * open socket, does not receive it itself (as Bun's ws.publish: the typist does not hear
   * themself).
   */
  publish(topic: string, text: string, from?: ServerWebSocket<unknown>): void;
  /** Publishes an ephemeral frame to the other nodes only (this node's sockets already know). */
  publishElsewhere(topic: string, text: string): void;
  /**
   * Sees each ephemeral frame from another node before this node's sockets get it, with the
   * id of the node that sent it (when it said); false keeps it from them. One screen per
   * broker (the hub's).
   */
  screen(check: (topic: string, text: string, origin?: string) => boolean): void;
  /**
   * Called when ephemeral frames between this node and another may have been lost: when
   * this node's connection is made (again), when another node says its own was, and every
   * so often as a safety net. Never on a single node, where nothing is lost.
   */
  onGap(listener: () => void): void;
  /** Tells the other nodes that the event log advanced to `seq`. */
  wake(seq: number): void;
  /** Called with each seq another node announced (never with this node's own). */
  onWake(listener: (seq: number) => void): void;
  /** Whether frames reach the other nodes now (for /health). */
  connected(): boolean;
  /** Resolves when the broker is connected the first time. */
  ready(): Promise<void>;
  close(): Promise<void>;
}
