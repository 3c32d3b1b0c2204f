/**
 * The cluster broker on core NATS. One connection and three subscriptions per node, whatever
 * its number of sockets: `<prefix>.live.>` carries every ephemeral frame (the subject's tail
 * is the Bun topic, the payload the frame's text as is), `<prefix>.wake` the event log's
 * wake-ups, and `<prefix>.gap` each node's word that its connection was just made (again).
 * A frame from another node goes to this node's sockets with one server.publish (once the
 * hub's screen let it), so Bun's topics do the per-socket fan-out as on a single node. The
 * connection is made with `noEcho`: the server never sends a node its own frames back, so
 * a frame published here (and delivered here at once) is not delivered twice.
 *
 * Core NATS is at-most-once: a frame published while the server is away is lost (or sent
 * from the client's reconnect buffer). That is right for what travels here: typing frames
 * are superseded by the next ones, a lost wake-up only delays delivery until the next one
 * or the node's own periodic read of the log, and presence, which outlives its frames, is
 * re-read by every node's hub at each gap (`onGap`): when a node's connection is made
 * again, frames it sent or should have received meanwhile may be lost, so it tells its own
 * hub and, on `<prefix>.gap`, every other node's; and every `gapCheckMs` anyway.
 */
import type { Server, ServerWebSocket } from "bun";
import { connect, headers, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import type { Broker } from "../broker";
import type { Logger } from "../../log";

export interface NatsBrokerOptions {
  /** Subject prefix: nodes of one cluster share it (tests use their own). */
  prefix?: string;
  /** The connection's name, as NATS monitoring shows it. */
  name?: string;
  log?: Logger;
  /** How often to report a gap with no known cause (a safety net: core NATS may drop a frame at any time); 0: never. */
  gapCheckMs?: number;
  /** This node's id, sent with its live frames (header `n`): the hub ends what a node that died had announced. */
  nodeId?: string;
  /** How long the first connection may take before the node logs that NATS does not answer (default 3000). */
  firstConnectWarnMs?: number;
}

/** The sending node's id (header `n`), for the frames on a conversation's topic only (the hub's indicators need it); none if unreadable. */
function originOf(m: Msg): string | undefined {
  try {
    return m.headers?.get("n") || undefined;
  } catch {
    return undefined; // headers nats.js cannot decode (a foreign publisher)
  }
}

/** How long the first connection may take before the node says NATS does not answer. */
const FIRST_CONNECT_WARN_MS = 3000;

/** host:port of a NATS URL, without any credentials it holds. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "?";
  }
}

export class NatsBroker implements Broker {
  private nc: NatsConnection | null = null;
  private server: Server<unknown> | null = null;
  private up = false;
  private closed = false;
  private wakeListeners: ((seq: number) => void)[] = [];
  private gapListeners: (() => void)[] = [];
  private check: (topic: string, text: string, origin?: string) => boolean = () => true;
  /** The header each live frame of this node carries. */
  private readonly origin: MsgHdrs | undefined;
  private gapTimer: Timer | null = null;
  private readonly live: string;
  private readonly wakeSubject: string;
  private readonly gapSubject: string;
  private readonly connecting: Promise<void>;

  constructor(url: string, private options: NatsBrokerOptions = {}) {
    const prefix = options.prefix ?? "parley";
    this.live = `${prefix}.live.`;
    this.wakeSubject = `${prefix}.wake`;
    this.gapSubject = `${prefix}.gap`;
    if (options.nodeId) (this.origin = headers()).set("n", options.nodeId);
    this.connecting = this.start(url);
    // Unawaited by design (createApp is synchronous); ready() reports its failure.
    this.connecting.catch(() => {});
  }

  private async start(url: string) {
    // The first connection waits for NATS however long it takes: say so once, for the operator
    // (a node listened, answered /health 503, and logged nothing).
    let waited = false;
    const late = setTimeout(() => {
      if (this.closed) return;
      waited = true;
      this.options.log?.warn({ server: hostOf(url) }, "NATS does not answer yet; waiting for it (frames between nodes wait too, /health says nats unreachable)");
    }, this.options.firstConnectWarnMs ?? FIRST_CONNECT_WARN_MS);
    const nc = await connect({
      servers: url,
      // tls:// must mean TLS: nats.js only upgrades when the server asks, so a server without
      // TLS was talked to in clear.
      ...(url.startsWith("tls://") ? { tls: {} } : {}),
      name: this.options.name,
      noEcho: true,
      // Never give up: a node outlives a NATS restart and picks up where it was.
      maxReconnectAttempts: -1,
      waitOnFirstConnect: true,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      // A dead server (not a closed socket) noticed within seconds, not two minutes.
      pingInterval: 5000,
      maxPingOut: 2,
    }).finally(() => clearTimeout(late));
    if (waited && !this.closed) this.options.log?.info({ server: hostOf(url) }, "NATS connected");
    if (this.closed) return void (await nc.close());
    this.nc = nc;
    this.up = true;
    const skip = this.live.length;
    nc.subscribe(`${this.live}>`, {
      callback: (err, m) => {
        if (err || !this.server) return;
        try {
          const topic = m.subject.slice(skip);
          const text = m.string();
          if (this.check(topic, text, topic.startsWith("conv:") ? originOf(m) : undefined)) this.server.publish(topic, text);
        } catch (err) {
          // Thrown here, it would end the client's read loop: no frame at all until a reconnect.
          this.options.log?.warn({ err, subject: m.subject }, "a live frame from NATS could not be handled");
        }
      },
    });
    nc.subscribe(this.wakeSubject, {
      callback: (err, m) => {
        if (err) return;
        const seq = Number(m.string());
        if (!Number.isSafeInteger(seq)) return;
        for (const l of this.wakeListeners) l(seq);
      },
    });
    nc.subscribe(this.gapSubject, {
      callback: (err) => {
        if (!err) this.gap();
      },
    });
    void this.watch(nc);
    void this.joined(nc);
    if (this.options.gapCheckMs) {
      this.gapTimer = setInterval(() => this.gap(), this.options.gapCheckMs);
      this.gapTimer.unref();
    }
  }

  /**
   * The connection was made (again): frames this node sent, or should have received, while
   * it was away may be lost. Once the server has our subscriptions (the flush's round trip),
   * every node's hub, this one's included, re-reads what such frames would have told it.
   */
  private async joined(nc: NatsConnection) {
    try {
      await nc.flush();
    } catch {
      return; // away again: the next reconnect says it
    }
    if (this.closed) return;
    this.send(this.gapSubject, "");
    this.gap();
  }

  private gap() {
    for (const l of this.gapListeners) {
      try {
        l();
      } catch (err) {
        this.options.log?.error({ err }, "a gap listener failed");
      }
    }
  }

  private async watch(nc: NatsConnection) {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        this.up = false;
        this.options.log?.warn({ server: s.server }, "NATS disconnected; reconnecting");
      } else if (s.type === "reconnect") {
        this.up = true;
        this.options.log?.info({ server: s.server }, "NATS reconnected");
        void this.joined(nc);
      }
    }
  }

  attach(server: Server<unknown>) { this.server = server; }

  publish(topic: string, text: string, from?: ServerWebSocket<unknown>) {
    if (from) from.publish(topic, text);
    else this.server?.publish(topic, text);
    this.send(this.live + topic, text, this.origin);
  }

  publishElsewhere(topic: string, text: string) { this.send(this.live + topic, text, this.origin); }

  screen(check: (topic: string, text: string, origin?: string) => boolean) { this.check = check; }

  onGap(listener: () => void) { this.gapListeners.push(listener); }

  wake(seq: number) { this.send(this.wakeSubject, String(seq)); }

  onWake(listener: (seq: number) => void) { this.wakeListeners.push(listener); }

  private send(subject: string, text: string, origin?: MsgHdrs) {
    if (!this.nc) return; // not connected yet: an ephemeral frame is dropped
    try {
      this.nc.publish(subject, text, origin && { headers: origin });
    } catch (err) {
      // Closed, or the reconnect buffer is full: the frame is lost, which its kind allows.
      this.options.log?.debug({ err, subject }, "NATS publish dropped");
    }
  }

  connected() { return this.up; }

  ready() { return this.connecting; }

  async close() {
    this.closed = true;
    if (this.gapTimer) clearInterval(this.gapTimer);
    this.server = null;
    const nc = this.nc;
    this.nc = null;
    this.up = false;
    if (nc) await nc.drain().catch(() => nc.close());
  }
}
