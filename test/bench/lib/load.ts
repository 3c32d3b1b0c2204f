/**
 * The load generator: sets up users and groups through the public API, connects one real
 * WebSocket per member, sends at a fixed open-loop rate, and records for every delivered
 * `message.receive` the time from its send to its arrival at each receiver.
 */
import type { ServerUnderTest } from "./server";
import { clientCpuSeconds, clientKernelSeconds, percentiles, round } from "./stats";

export interface Member { token: string; userId: string }
export interface Group { id: string; members: Member[] }

/** Runs fn(0 … items-1) with at most `concurrency` at a time. */
export async function pool<T>(items: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(items);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items) }, async () => {
    while (next < items) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

const json = async (res: Response) => {
  if (!res.ok) throw new Error(`${res.url}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<any>;
};

/** Registers `count` users (concurrently) and returns their tokens. */
export async function registerUsers(sut: ServerUnderTest, count: number, prefix: string): Promise<Member[]> {
  const tag = Math.random().toString(36).slice(2, 7);
  return pool(count, 16, async (i) => {
    const body = await json(await fetch(`${sut.base}/api/auth/register`, { method: "POST", body: JSON.stringify({ username: `${prefix}${tag}_${i}`, password: "password123" }) }));
    return { token: body.token, userId: body.user.id };
  });
}

/** Groups of the given members (first member is the owner). Baseline groups are just names. */
export async function createGroups(sut: ServerUnderTest, memberLists: Member[][]): Promise<Group[]> {
  if (sut.kind === "baseline") return memberLists.map((members, i) => ({ id: `g${i}`, members }));
  return pool(memberLists.length, 8, async (i) => {
    const [owner, ...others] = memberLists[i]!;
    const body = await json(await fetch(`${sut.base}/api/conversations`, {
      method: "POST",
      headers: { authorization: `Bearer ${owner!.token}` },
      body: JSON.stringify({ type: "group", title: `bench ${i}`, member_ids: others.map((o) => o.userId) }),
    }));
    return { id: body.id, members: memberLists[i]! };
  });
}

export const wsUrl = (sut: ServerUnderTest, group: Group, m: Member, extra = "") =>
  sut.kind === "baseline" ? `${sut.wsBase}/ws?g=${group.id}` : `${sut.wsBase}/ws/user?token=${m.token}${extra}`;

/** Opens a socket and resolves once its first frame (connect) arrived. */
export function openSocket(url: string, onMessage?: (data: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let ready = false;
    ws.onmessage = (ev) => {
      if (!ready) {
        ready = true;
        resolve(ws);
      }
      onMessage?.(ev.data as string);
    };
    ws.onerror = () => !ready && reject(new Error("socket failed"));
    ws.onclose = (ev) => !ready && reject(new Error(`socket closed ${ev.code}`));
  });
}

/** Milliseconds since the epoch with sub-millisecond precision, comparable across threads. */
export const epochNow = () => performance.timeOrigin + performance.now();

const RECEIVE = '{"type":"message.receive"';
const MARK = '"content":"#';

/** Per (message, member) arrival bookkeeping and latency samples. */
export class Deliveries {
  readonly sendTimes: Float64Array;
  readonly seen: Uint8Array;
  readonly latencies: Float64Array;
  count = 0;
  duplicates = 0;
  lastArrival = 0;
  /** Called on each first arrival (WebSocket sends complete when the sender's own copy arrives). */
  onArrival: ((i: number, memberIndex: number) => void) | null = null;

  /**
   * With `timesInContent`, each message carries its send time (`#i#<epoch ms>#…`), so
   * receivers in other threads (whose performance clocks differ) can time it.
   */
  constructor(readonly messages: number, readonly membersPerGroup: number, readonly timesInContent = false) {
    this.sendTimes = new Float64Array(timesInContent ? 0 : messages);
    this.seen = new Uint8Array(messages * membersPerGroup);
    this.latencies = new Float64Array(messages * membersPerGroup);
  }

  /** A receiver's frame handler: finds the message number in the frame without parsing it all. */
  handler(memberIndex: number) {
    return (data: string) => {
      if (!data.startsWith(RECEIVE)) return;
      const at = data.indexOf(MARK);
      if (at < 0) return;
      const start = at + MARK.length;
      const i = parseInt(data.slice(start, start + 12), 10);
      if (!(i >= 0 && i < this.messages)) return;
      const slot = i * this.membersPerGroup + memberIndex;
      const now = this.timesInContent ? epochNow() : performance.now();
      if (this.seen[slot]!++ > 0) {
        this.duplicates++;
        return;
      }
      const sentAt = this.timesInContent ? parseFloat(data.slice(data.indexOf("#", start) + 1, data.indexOf("#", start) + 20)) : this.sendTimes[i]!;
      this.latencies[this.count++] = now - sentAt;
      this.lastArrival = now;
      this.onArrival?.(i, memberIndex);
    };
  }
}

export interface SendResult {
  sent: number;
  offered_per_s: number;
  sent_per_s: number;
  send_seconds: number;
  http_ms?: Record<string, number>;
  errors: number;
  /** Most messages the client itself fell behind its schedule while it could have sent. */
  behind_schedule: number;
  /** Most messages held back by the in-flight cap (the server not answering fast enough). */
  held_by_in_flight_cap: number;
}

/**
 * Open loop: message i is due at i / rate seconds, whatever the server's answers, with at
 * most `maxInFlight` requests outstanding (past that the schedule slips, and says so).
 */
export async function sendOpenLoop(opts: {
  rate: number;
  seconds: number;
  maxInFlight: number;
  deliveries: Deliveries;
  send: (i: number) => Promise<boolean> | boolean;
}): Promise<SendResult> {
  const total = Math.min(opts.deliveries.messages, Math.floor(opts.rate * opts.seconds));
  const http: number[] = [];
  let i = 0;
  let inFlight = 0;
  let errors = 0;
  const start = performance.now();
  let behind = 0;
  let held = 0;
  // Stops at the end of the schedule even if the server (or this client) fell behind.
  const deadline = start + opts.seconds * 1000;
  while (i < total && performance.now() < deadline) {
    const elapsed = performance.now() - start;
    const due = Math.min(total, Math.floor((elapsed / 1000) * opts.rate) + 1);
    while (i < due && inFlight < opts.maxInFlight) {
      const n = i++;
      const t0 = performance.now();
      if (!opts.deliveries.timesInContent) opts.deliveries.sendTimes[n] = t0;
      const r = opts.send(n);
      if (r instanceof Promise) {
        inFlight++;
        r.then(
          (ok) => {
            inFlight--;
            if (!ok) errors++;
            http.push(performance.now() - t0);
          },
          () => {
            inFlight--;
            errors++;
          },
        );
      } else if (!r) errors++;
    }
    if (inFlight >= opts.maxInFlight) held = Math.max(held, due - i);
    else behind = Math.max(behind, due - i);
    await Bun.sleep(1);
  }
  // Sends still unanswered 20 s after the schedule (a lost WebSocket echo, say) are errors,
  // not a hang.
  const giveUpAt = performance.now() + 20_000;
  while (inFlight > 0 && performance.now() < giveUpAt) await Bun.sleep(1);
  errors += inFlight;
  const seconds = (performance.now() - start) / 1000;
  return {
    sent: i,
    offered_per_s: opts.rate,
    sent_per_s: Math.round(i / seconds),
    send_seconds: round(seconds),
    ...(http.length ? { http_ms: percentiles(http, [50, 99]) } : {}),
    errors,
    behind_schedule: behind,
    held_by_in_flight_cap: held,
  };
}

/** Waits until every expected delivery arrived, or nothing new came for `quietMs`. */
export async function drain(d: Deliveries, expected: number, quietMs = 2000, maxMs = 20_000) {
  const start = performance.now();
  let last = d.count;
  let lastChange = performance.now();
  while (d.count < expected && performance.now() - start < maxMs) {
    await Bun.sleep(20);
    if (d.count !== last) {
      last = d.count;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > quietMs) break;
  }
}

/** Client-side CPU over a section, to tell when the load generator itself was the limit. */
export function clientMeter() {
  const cpu0 = clientCpuSeconds();
  const sys0 = clientKernelSeconds();
  const t0 = performance.now();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const cpu = clientCpuSeconds() - cpu0;
    return { client_cpu_s: round(cpu), client_kernel_s: round(clientKernelSeconds() - sys0), client_cpu_share: round(cpu / wall) };
  };
}
