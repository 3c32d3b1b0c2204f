/**
 * The single-node broker: Bun's own pub/sub, exactly what the hub did before the seam. No
 * other node exists, so wake-ups go nowhere, nothing comes from elsewhere and nothing is lost.
 */
import type { Server, ServerWebSocket } from "bun";
import type { Broker } from "../broker";

export class MemoryBroker implements Broker {
  private server: Server<unknown> | null = null;
  attach(server: Server<unknown>) { this.server = server; }
  publish(topic: string, text: string, from?: ServerWebSocket<unknown>) {
    if (from) from.publish(topic, text);
    else this.server?.publish(topic, text);
  }
  publishElsewhere() {}
  screen() {}
  onGap() {}
  wake() {}
  onWake() {}
  connected() { return true; }
  ready() { return Promise.resolve(); }
  async close() { this.server = null; }
}
