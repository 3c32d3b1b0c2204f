/**
 * The WebSocket protocol (PROTOCOL §4): client frame schemas and server frame builders.
 * Frames are validated here with typebox, not by Elysia, so that every failure becomes
 * this protocol's `error` frame.
 *
 * Frame schemas (in the feature models) are strict (test/schema-audit.ts checks every one): `Value.Check` runs no
 * Transform, so a coercing type such as Elysia's `t.Integer` (a string-or-integer union
 * whose range is only checked when decoding) would let "0" or "1e3" past its bounds; and
 * an object that is one branch of a union allows no other fields.
 */
import type { Static } from "elysia";
import { wellFormed } from "../lib/text";
import { tooDeep } from "../lib/nesting";
import { iso } from "../lib/time";
import { validationDetails } from "../http/errors";
import { Value } from "@sinclair/typebox/value";
import { AppError, type ErrorCode } from "../errors";
import { REQUESTS, type SignalData, type SignalType } from "../models";

/** `data` schema of each client frame type: the catalogue's requests (each feature's model). */
export const CLIENT_FRAMES = REQUESTS;

export type ClientType = keyof typeof CLIENT_FRAMES;
export type FrameData<T extends ClientType> = Static<(typeof CLIENT_FRAMES)[T]>;

/** A checked frame: its data has the type its schema gives (and nothing else, see parseFrame). */
export type ClientFrame = { [T in ClientType]: { type: T; data: FrameData<T>; request_id?: string } }[ClientType];

/** A frame whose JSON nests deeper than REST bodies may (lib/nesting): refused as they are, with its identity echoed. */
export class TooDeep {
  constructor(readonly frame: unknown) {}
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Checks the envelope and the frame's data. `raw` is what Elysia handed over: an object
 * when the text was JSON, else the text itself. The data handed on is the checked value
 * with every field its schema does not name removed: handlers see only validated fields.
 */
export function parseFrame(raw: unknown): ClientFrame {
  if (raw instanceof Uint8Array || raw instanceof ArrayBuffer) throw new AppError("bad_request", "binary frames are not accepted: send each frame as JSON text");
  if (raw instanceof TooDeep) throw tooDeep("frame");
  if (!isObject(raw)) throw new AppError("bad_request", "a frame is one JSON object");
  const { type, request_id } = raw;
  if (request_id !== undefined && (typeof request_id !== "string" || request_id.length > 128))
    throw new AppError("validation_failed", "request_id: a string of at most 128 characters", [{ field: "request_id", message: "invalid" }]);
  if (typeof type !== "string" || !Object.hasOwn(CLIENT_FRAMES, type)) throw new AppError("bad_request", `unknown frame type ${JSON.stringify(type ?? null)}`);
  const schema = CLIENT_FRAMES[type as ClientType];
  // As REST bodies are: no lone surrogates reach the services (see lib/text). A frame whose
  // data fields are all optional may leave its data out (`conversation.load`: `{cursor?, limit?}`).
  const data = wellFormed(raw.data == null && Value.Check(schema, {}) ? {} : raw.data);
  if (!Value.Check(schema, data)) {
    const details = validationDetails(Value.Errors(schema, data), "data", 10);
    throw new AppError("validation_failed", `invalid data for ${type}`, details);
  }
  return { type, data: Value.Clean(schema, data), request_id } as ClientFrame;
}

/**
 * The request id and type of a frame, read leniently, so that errors can echo them. A
 * request id over the limit is refused but echoed whole, or the client could not tell
 * which request the error answers (the frame size bounds it).
 */
export function frameIdentity(raw: unknown): { type: string | null; request_id?: string } {
  if (raw instanceof TooDeep) return frameIdentity(raw.frame);
  if (!isObject(raw)) return { type: null };
  return {
    type: typeof raw.type === "string" ? raw.type.slice(0, 64) : null,
    request_id: typeof raw.request_id === "string" ? raw.request_id : undefined,
  };
}

const now = () => iso(Date.now());

/** A server frame that is not a persisted event (reply, presence, typing, alert). */
export function frame<T extends SignalType>(type: T, data: SignalData<T>, requestId?: string): string {
  const f: Record<string, unknown> = { type, data, timestamp: now(), success: true };
  if (requestId !== undefined) f.request_id = requestId;
  return JSON.stringify(f);
}

/** A reply frame whose data is already JSON. */
export function rawFrame(type: string, dataJson: string, requestId?: string): string {
  const id = requestId === undefined ? "" : `,"request_id":${JSON.stringify(requestId)}`;
  return `{"type":${JSON.stringify(type)},"data":${dataJson},"timestamp":"${now()}","success":true${id}}`;
}

/** A persisted event's frame; its data is already JSON, so nothing is serialised twice. */
export function eventFrame(type: string, dataJson: string, timestamp: string, seq: number): string {
  return `{"type":${JSON.stringify(type)},"data":${dataJson},"timestamp":"${timestamp}","success":true,"seq":${seq}}`;
}

/** An event's frame for the socket whose request it answers: with its request_id (§4). */
export const answering = (eventFrameText: string, requestId: string) => `${eventFrameText.slice(0, -1)},"request_id":${JSON.stringify(requestId)}}`;

export function errorFrame(code: ErrorCode, message: string, requestType: string | null, requestId?: string, extra?: Record<string, unknown>): string {
  const f: Record<string, unknown> = {
    type: "error",
    success: false,
    error: { code, message, ...extra },
    data: { request_type: requestType },
    timestamp: now(),
  };
  if (requestId !== undefined) f.request_id = requestId;
  return JSON.stringify(f);
}
