/**
 * The broker: live frames between nodes (PROTOCOL §11). Ephemeral frames (typing, active
 * state, presence) go to a topic (`conv:<id>`, `user:<id>`, `status:<id>`) on every node,
 * each node handing them to its own sockets through Bun's topics. Committed events never
 * travel here: every node delivers them from the event log, in `seq` order; the broker only
 * carries the wake-up "the log advanced to seq N", which saves latency, never correctness.
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
