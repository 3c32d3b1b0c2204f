/**
 * PROTOCOL §4: "`request_id` echoes the client's when the frame answers a request", and the
 * answer to a mutating frame is its event (`message.send` → `message.receive` to the
 * conversation, "the sending connection included"). An event is one frame for every
 * subscriber; the socket that asked gets its own copy with its request_id, in the same
 * place among the topic's frames (realtime/hub.ts).
 *
 * A frame's handler runs inside `asRequest`; the change it makes carries the request to the
 * event log, which marks the change's first event of the awaited type as its reply
 * (`StoredEvent.replyTo`). On SQLite the mark is made on the event itself (a change that
 * rolls back takes its events with it); PostgreSQL's events reach the hub through the
 * follower, as rows, so there it is kept by seq until they do (`ExpectedReplies`).
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface Request {
  requestId: string;
  /** The event type that answers it. */
  replyType: string;
  /** The socket that asked: opaque here, the hub's SocketState. */
  socket: unknown;
  /** Set once an event has been marked as its reply. */
  answered?: boolean;
  /**
   * The one topic whose event answers it, when a change emits that type to several (a
   * `conversation.create` goes to every member's own topic: the asker's answers); any when absent.
   */
  topic?: string;
}

/**
 * The frames answered by an event of their change (§4.2): that event's type, and whether
 * only the asker's own copy answers (`own`: the change sends one to each member's own topic).
 * The AsyncAPI document lists each as its frame's reply, before the `ack`.
 */
export const REPLY_EVENTS: Readonly<Record<string, { type: string; own?: true }>> = {
  "message.send": { type: "message.receive" },
  "message.edit": { type: "message.edit" },
  "message.delete": { type: "message.delete" },
  "message.read": { type: "message.read" },
  "conversation.create": { type: "conversation.create", own: true },
};

const current = new AsyncLocalStorage<Request>();

/** Runs a frame's handler as the answer to `request`. */
export const asRequest = <T>(request: Request, handler: () => T): T => current.run(request, handler);

/** The request the running code answers, if any. */
export const currentRequest = (): Request | undefined => current.getStore();

/** Whether an event of `type` is the reply to `request` (the first one of its change is). */
export function claimsReply(request: Request | null | undefined, type: string, topic: string): request is Request {
  if (!request || request.answered || request.replyType !== type || (request.topic !== undefined && request.topic !== topic)) return false;
  request.answered = true;
  return true;
}

/**
 * Replies expected by seq (PostgreSQL: the follower delivers the events, as rows), until
 * delivered, or forgotten with the change that rolled back. Bounded: a node that never
 * delivers one (its follower stopped) forgets the oldest.
 */
export class ExpectedReplies {
  private bySeq = new Map<number, Request>();
  expect(seq: number, request: Request) {
    if (this.bySeq.size >= 10_000) this.bySeq.delete(this.bySeq.keys().next().value!);
    this.bySeq.set(seq, request);
  }
  take(seq: number): Request | undefined {
    const request = this.bySeq.get(seq);
    if (request) this.bySeq.delete(seq);
    return request;
  }
  forget(seqs: Iterable<number>) {
    for (const seq of seqs) this.bySeq.delete(seq);
  }
}
