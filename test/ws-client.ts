/**
 * A small test WebSocket client over Bun's WebSocket: records every frame, and waits for
 * frames matching a predicate.
 */
import { checkFrame, frameViolations } from "./contract";

export type Frame = { type: string; data: any; seq?: number; request_id?: string; success: boolean; error?: any; timestamp: string };

export class TestSocket {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: { pred: (f: Frame) => boolean; from: number; resolve: (f: Frame) => void }[] = [];
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];
  private counter = 0;

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (ev) => {
      const f = JSON.parse(String(ev.data)) as Frame;
      // Every frame is checked against its documented model (test/setup.ts fails the test).
      const wrong = checkFrame(f);
      if (wrong) frameViolations.push(wrong);
      this.frames.push(f);
      const index = this.frames.length - 1;
      this.waiters = this.waiters.filter((w) => {
        if (index >= w.from && w.pred(f)) {
          w.resolve(f);
          return false;
        }
        return true;
      });
    };
    ws.onclose = (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      for (const w of this.closeWaiters) w(this.closed);
    };
  }

  /**
   * Opens a socket and waits for the `connect` frame (and `conversation.list`, within `ms`).
   * `early` frames are sent the moment it opens, before the server's `connect`.
   */
  static async connect(url: string, options?: { headers?: Record<string, string>; ms?: number; early?: object[] }): Promise<TestSocket> {
    const s = await TestSocket.open(url, options);
    await s.waitFor((f) => f.type === "conversation.list", options?.ms);
    return s;
  }

  /** Resolves once the socket is open (the upgrade done), before any frame. */
  static async open(url: string, options?: { headers?: Record<string, string>; early?: object[] }): Promise<TestSocket> {
    const ws = new WebSocket(url, options?.headers ? ({ headers: options.headers } as never) : undefined);
    const s = new TestSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => {
        for (const f of options?.early ?? []) ws.send(JSON.stringify(f));
        resolve();
      };
      ws.onerror = () => reject(new Error(`could not connect to ${url.replace(/token=[^&]+/, "token=…")}`));
    });
    return s;
  }

  /** Resolves with the first frame (from index `from`) that matches. */
  waitFor(pred: (f: Frame) => boolean, ms = 3000, from = 0): Promise<Frame> {
    const found = this.frames.slice(from).find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a frame; got: ${this.frames.map((f) => f.type).join(", ")}`)), ms);
      this.waiters.push({ pred, from, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /** The next frame of a type received after now. */
  next(type: string, ms = 3000): Promise<Frame> {
    return this.waitFor((f) => f.type === type, ms, this.frames.length);
  }

  send(type: string, data?: unknown, requestId?: string) {
    this.ws.send(JSON.stringify({ type, data, request_id: requestId }));
  }

  /** Sends with a fresh request id and resolves with the first reply carrying it. */
  async request(type: string, data?: unknown, ms = 3000): Promise<Frame> {
    const id = `r${++this.counter}`;
    const from = this.frames.length;
    this.send(type, data, id);
    // The reply or ack, not the event that also answers a mutating frame (it carries a seq).
    return this.waitFor((f) => f.request_id === id && f.seq === undefined, ms, from);
  }

  /** Frames of a type received so far. */
  all(type: string) {
    return this.frames.filter((f) => f.type === type);
  }

  /** Waits `ms` and asserts no matching frame arrived from now on. */
  async none(pred: (f: Frame) => boolean, ms = 300): Promise<boolean> {
    const from = this.frames.length;
    await Bun.sleep(ms);
    return !this.frames.slice(from).some(pred);
  }

  waitClosed(ms = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("socket did not close")), ms);
      this.closeWaiters.push((c) => (clearTimeout(timer), resolve(c)));
    });
  }

  close() {
    this.ws.close();
  }
}
