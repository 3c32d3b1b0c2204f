/**
 * The catalogue: every feature's model (`src/<feature>/model.ts`) gathered into the maps
 * the rest of the app is typed and documented by:
 * - EVENTS: persisted event type → `data` (types EventLog's `emit`, /api/events, resume);
 * - SIGNALS: the other server → client frames (replies, presence, typing, alerts);
 * - REQUESTS: client → server frame type → `data` (validates frames, realtime/protocol.ts);
 * - ACKS: request type → the `result` of its `ack`.
 * A new feature adds its `model.ts` and one line to FEATURES (test/models.test.ts fails
 * until it does); its events, frames and named schemas then reach the documents, the
 * frame validation and the generated client types by themselves.
 */
import { t, type Static, type TSchema } from "elysia";
import { Int, named, Shape, Timestamp, type FeatureModel } from "./lib/model";
import { Epoch } from "./events/model";
import { model as auth } from "./auth/model";
import { model as conversations } from "./conversations/model";
import { model as events } from "./events/model";
import { model as files } from "./files/model";
import { model as friends } from "./friends/model";
import { model as http } from "./http/model";
import { model as messages } from "./messages/model";
import { model as realtime, FrameError } from "./realtime/model";
import { model as search } from "./search/model";
import { model as users } from "./users/model";

/** Every feature model, by the folder it lives in. */
export const FEATURES = { auth, conversations, events, files, friends, http, messages, realtime, search, users } as const;

type Features = (typeof FEATURES)[keyof typeof FEATURES];
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
type Gathered<K extends keyof FeatureModel> = K extends "replies" ? Record<string, string[]> : GatheredMap<K>;
type GatheredMap<K extends keyof FeatureModel> = UnionToIntersection<Features extends infer F ? (F extends { [P in K]: infer M } ? M : never) : never>;

/** One map of a kind from every feature; a type declared twice is a mistake. */
function gather<K extends keyof FeatureModel>(kind: K): Gathered<K> {
  const out: Record<string, unknown> = {};
  for (const feature of Object.values(FEATURES) as FeatureModel[]) {
    for (const [type, schema] of Object.entries(feature[kind] ?? {})) {
      if (type in out) throw new Error(`models: ${kind} "${type}" is declared twice`);
      out[type] = schema;
    }
  }
  return out as Gathered<K>;
}

export const EVENTS = gather("events");
export const SIGNALS = gather("signals");
export const REQUESTS = gather("requests");
export const ACKS = gather("acks");
/** Request type → the frames that answer it (besides `error`, and `ack` for those in ACKS). */
export const REPLIES: Record<string, string[]> = gather("replies");

export type Events = typeof EVENTS;
export type EventType = keyof Events;
export type EventData<T extends EventType> = Static<Events[T]>;
export type Signals = typeof SIGNALS;
export type SignalType = keyof Signals | "ack";
export type Requests = typeof REQUESTS;
export type RequestType = keyof Requests;
export type AckType = keyof typeof ACKS;
export type Ack = { [K in AckType]: { request_type: K; result: Static<(typeof ACKS)[K]> } }[AckType];
export type SignalData<T extends SignalType> = T extends "ack" ? Ack : T extends keyof Signals ? Static<Signals[T]> : never;

/** `ack {request_type, result}`: one branch per request type that has one. */
export const AckData = named("Ack", t.Union(Object.entries(ACKS).map(([type, result]) => Shape({ request_type: t.Literal(type), result }))));

/** Every server → client frame type → its `data`. */
export const SERVER_FRAMES: Record<string, TSchema> = { ...EVENTS, ...SIGNALS, ack: AckData };

/** A stored event as /api/events answers it: one branch per event type. */
export const StoredEvent = named(
  "StoredEvent",
  t.Union(Object.entries(EVENTS).map(([type, data]) => Shape({ seq: Int({ minimum: 1 }), type: t.Literal(type), data, timestamp: Timestamp }))),
);
export const EventPage = named(
  "EventPage",
  Shape({ items: t.Array(StoredEvent), next_cursor: t.Union([t.String({ description: "pass as ?cursor= for the next page" }), t.Null()]), epoch: Epoch }),
);

/**
 * The whole frame (envelope and data) of a server → client type: persisted events carry
 * `seq`, other frames may carry the `request_id` they answer; `error` has its own shape.
 */
export function serverFrame(type: string): TSchema {
  const data = SERVER_FRAMES[type];
  if (!data) throw new Error(`models: no server frame "${type}"`);
  const base = { type: t.Literal(type), data, timestamp: Timestamp };
  if (type in EVENTS)
    return Shape({
      ...base,
      success: t.Literal(true),
      seq: Int({ minimum: 1, description: "this event's position in the log: resume with since=<seq>" }),
      request_id: t.Optional(t.String({ description: "on the socket that asked, the request this event answers (message.send, edit, delete, read)" })),
    });
  const reply = { ...base, request_id: t.Optional(t.String({ description: "the request this answers" })) };
  if (type === "error") return Shape({ ...reply, success: t.Literal(false), error: FrameError });
  return Shape({ ...reply, success: t.Literal(true) });
}

/** A client → server frame of a type. */
export const clientFrame = (type: RequestType) =>
  t.Object({ type: t.Literal(type), data: t.Optional(REQUESTS[type]), request_id: t.Optional(t.String({ maxLength: 128, description: "echoed by the reply, the ack or the error" })), timestamp: t.Optional(t.String()) });
