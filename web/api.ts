/** REST calls with the session's token. A 401 anywhere ends the session (drafts stay). */
import type { Attachment, ContactPolicy, Conversation, Member, Message, Role, User } from "../src/client/types";

export type { Attachment, ContactPolicy, Conversation, Member, Message, Role, User };
/** `issued_at` (ms, this client's clock) is when the client received the token. */
export interface Session { token: string; expires_at: string; user: User; issued_at?: number }
export interface Friendship { id: string; user_id: string; friend_id: string; status: "pending" | "accepted" | "rejected"; requested_at: string; accepted_at: string | null; user: User; friend: User }
export interface Page<T> { items: T[]; next_cursor: string | null }

export class ApiError extends Error {
  /** `retryAfter`: seconds, from a 429's or 503's Retry-After. */
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown, readonly retryAfter?: number) {
    super(message);
  }
}

let token: string | null = null;
let onUnauthorized: () => void = () => {};

export function setToken(t: string | null) {
  token = t;
}
export function handleUnauthorized(fn: () => void) {
  onUnauthorized = fn;
}

/** A REST call; `timeoutMs`: no answer by then counts as the server not reached (status 0). */
export function api<T = unknown>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  return request<T>(method, path, headers, body === undefined ? undefined : JSON.stringify(body), timeoutMs);
}

/** An upload under way: its result, and `abort()` (the promise then fails with code "aborted"). */
export interface Upload { done: Promise<Attachment>; abort: () => void }

/**
 * A file as the request body (PROTOCOL §9), streamed by the browser, never read into a string.
 * XMLHttpRequest, not fetch: only it reports upload progress. `progress` gets 0..1.
 */
export function upload(file: File, progress: (fraction: number) => void): Upload {
  const xhr = new XMLHttpRequest();
  const path = `/api/uploads?filename=${encodeURIComponent(file.name)}`;
  const done = new Promise<Attachment>((resolve, reject) => {
    xhr.open("POST", path);
    xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
    if (token) xhr.setRequestHeader("authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && progress(e.loaded / e.total);
    xhr.onerror = () => reject(unreached());
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Cancelled."));
    xhr.onload = () => {
      let data: any = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {}
      if (xhr.status >= 200 && xhr.status < 300) resolve(data as Attachment);
      else reject(failure(xhr.status, data, path, Number(xhr.getResponseHeader("retry-after")) || undefined));
    };
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

/**
 * A kept attachment (a reload's composer, the outbox) whose signed thumbnail link has passed
 * its expiry (`e`, seconds) would show a broken picture: it shows as a file instead.
 */
export function withoutExpiredThumbnail(a: Attachment): Attachment {
  let e = 0;
  try {
    e = a.thumbnail_url ? Number(new URL(a.thumbnail_url, location.href).searchParams.get("e")) : 0;
  } catch {
    return { ...a, thumbnail_url: null }; // not a link at all
  }
  return e && e * 1000 <= Date.now() ? { ...a, thumbnail_url: null } : a;
}

/**
 * Whether an upload kept across a reload is still on the server (one no message holds is
 * swept after UPLOAD_ORPHAN_TTL): its first byte asked for. Not known (offline, an error) counts as there.
 */
export async function uploadStillThere(a: Attachment): Promise<boolean> {
  try {
    const res = await fetch(`/api/attachments/${encodeURIComponent(a.id)}`, { headers: { range: "bytes=0-0", ...(token && { authorization: `Bearer ${token}` }) } });
    void res.body?.cancel();
    return res.status !== 404;
  } catch {
    return true;
  }
}

/** A request that did not reach the server: said as the user knows it (offline), else the server's side. */
const unreached = () => new ApiError(0, "network", navigator.onLine ? "The server cannot be reached." : "You are offline.");

async function request<T>(method: string, path: string, headers: Record<string, string>, body: BodyInit | undefined, timeoutMs?: number): Promise<T> {
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined });
  } catch {
    throw unreached();
  }
  if (res.status === 204) return undefined as T;
  const data = await res.json().catch(() => undefined);
  if (!res.ok) throw failure(res.status, data, path, Number(res.headers.get("retry-after")) || undefined);
  // A success whose JSON did not arrive whole (cut off, timed out): what happened is not known.
  if (data === undefined && /json/.test(res.headers.get("content-type") ?? "")) throw new ApiError(0, "network", "The server's answer did not arrive.");
  return data as T;
}

/** The contract's error body as an ApiError (one parser for fetch and XMLHttpRequest). */
function failure(status: number, data: any, path: string, retryAfter?: number): ApiError {
  const e = data?.error ?? {};
  // Register/login answer 401 for a wrong password: that is not a lost session.
  if (status === 401 && token && !path.startsWith("/api/auth/")) onUnauthorized();
  return new ApiError(status, e.code ?? "error", e.message ?? `HTTP ${status}`, e.details, retryAfter);
}

/** Every page of a list (bounded, so a huge list cannot hang the tab). */
export async function allPages<T>(path: string, maxPages = 10): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < maxPages; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page: Page<T> = await api("GET", `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    out.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/** How the person reading a form calls the fields the server names in a 422's details. */
const FIELD_NAMES: Record<string, string> = {
  title: "The group name", display_name: "The display name", content: "The message", profile_image_url: "The avatar URL",
  username: "The username", password: "The password", q: "The search", filename: "The file name",
};

/**
 * A server's error as a sentence for the person who caused it: a 422 names the field as the
 * form does ("The group name must not be blank."), not the wire's "invalid body: title".
 */
/** No answer, or a proxy's instead of the server's (502–504 without our error body): the request never reached Parley. */
export const notReached = (e: unknown) => e instanceof ApiError && (e.status === 0 || ((e.status === 502 || e.status === 503 || e.status === 504) && e.code === "error"));

/** The first field a validation error names, and what it says of it. */
export const faultOf = (e: ApiError) => (Array.isArray(e.details) ? (e.details[0] as { field?: unknown; message?: unknown } | undefined) : undefined);

// "2 MB", not "2.0 MB": the upload limit reads as it is configured.
export const size = (n: number) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB` : `${+(n / 1048576).toFixed(1)} MB`);

export function explain(e: unknown, fallback = "That did not work."): string {
  if (!(e instanceof ApiError)) return fallback;
  const detail = faultOf(e);
  if (e.code === "validation_failed" && typeof detail?.field === "string" && typeof detail.message === "string") {
    const name = FIELD_NAMES[detail.field.split(".").at(-1)!];
    if (name) return sentence(`${name} ${reword(detail.message)}`);
  }
  // The server's own sentences are lower case without a full stop ("not a member of this
  // conversation"); its byte counts are for programs ("your quota of 20971520 bytes": 20 MB).
  return sentence(e.message.replace(/^[a-z_.]+: /, "").replace(/\b(\d{4,}) bytes\b/g, (_, n: string) => size(Number(n))));
}

/** TypeBox's and the server's wording of a field's fault, as the rest of a sentence about it. */
function reword(message: string): string {
  const m = message.match(/^Expected string length (less|greater) or equal to (\d+)$/);
  if (m) return m[1] === "less" ? `may have at most ${m[2]} characters` : m[2] === "1" ? "must not be blank" : `must have at least ${m[2]} characters`;
  if (/^at most \d+ characters$/.test(message)) return `may have ${message}`;
  if (/^Expected string to match/.test(message)) return "is not valid";
  // The server names the code points for API clients; a person is told what to do.
  if (/^must not contain invisible format characters/.test(message)) return "must not contain invisible characters (such as zero-width spaces or direction marks): type it again without them";
  return /^(must|may|is|cannot|should)\b/.test(message) ? message : `is not valid (${message})`;
}

const sentence = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s);
