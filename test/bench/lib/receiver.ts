/**
 * A receiving thread of the load generator: holds a share of the receiver sockets, so that
 * a fan-out of a million deliveries a second is not limited by one client thread. Times
 * come from the messages themselves (Deliveries with timesInContent).
 */
import { Deliveries, openSocket } from "./load";

declare const self: Worker;

let d: Deliveries;
const sockets: WebSocket[] = [];

self.onmessage = async (event: MessageEvent) => {
  const msg = event.data as
    | { kind: "open"; sockets: { url: string; member: number }[]; messages: number; members: number }
    | { kind: "count" }
    | { kind: "finish" };
  if (msg.kind === "open") {
    d = new Deliveries(msg.messages, msg.members, true);
    for (let k = 0; k < msg.sockets.length; k += 100)
      sockets.push(...(await Promise.all(msg.sockets.slice(k, k + 100).map((s) => openSocket(s.url, d.handler(s.member))))));
    postMessage({ kind: "ready" });
  } else if (msg.kind === "count") {
    postMessage({ kind: "count", count: d.count });
  } else {
    for (const ws of sockets) ws.close();
    const latencies = d.latencies.slice(0, d.count);
    postMessage({ kind: "result", count: d.count, duplicates: d.duplicates, latencies }, [latencies.buffer]);
  }
};
