/**
 * /docs/ws: the WebSocket protocol as a plain HTML page (no script, no CDN), from the
 * same catalogue as /docs/asyncapi.json.
 */
import { ACKS, EVENTS, REPLIES, REQUESTS, SERVER_FRAMES, type RequestType } from "../models";
import { CLOSES } from "./asyncapi";
import { tsType } from "./typescript";
import { code, esc, linked, modelSections, page } from "./html";
import { REPLY_EVENTS } from "../events/replies";

export function wsPage(): string {
  const answers = (type: string) =>
    [...(REPLY_EVENTS[type] ? [REPLY_EVENTS[type].type] : []), ...(REPLIES[type] ?? []), ...(type in ACKS ? ["ack"] : [])].map((a) => `<a href="#server.${esc(a)}"><code>${esc(a)}</code></a>`).join(", ") || "nothing (its events)";
  const requests = (Object.keys(REQUESTS) as RequestType[]).map(
    (type) => `<tr><th id="client.${esc(type)}"><code>${esc(type)}</code></th><td>${linked(tsType(REQUESTS[type]))}</td><td>${answers(type)}</td></tr>`,
  );
  const frames = Object.keys(SERVER_FRAMES).map(
    (type) => `<tr><th id="server.${esc(type)}"><code>${esc(type)}</code></th><td>${type in EVENTS ? "event (seq)" : "reply / live"}</td><td>${linked(tsType(SERVER_FRAMES[type]!))}</td></tr>`,
  );
  const closes = CLOSES.map((c) => `<tr><td>${c.code} <code>${esc(c.name)}</code></td><td>${c.retry ? "reconnect with backoff, resume with since and epoch" : "stop and report"}</td><td>${esc(c.when)}</td></tr>`);
  return page("Parley WebSocket protocol", `<h1>Parley WebSocket protocol</h1>
<p>Machine-readable: <a href="/docs/asyncapi.json">/docs/asyncapi.json</a> (AsyncAPI 3.0). REST: <a href="/docs">/docs</a> (<a href="/docs/json">OpenAPI</a>).</p>
<h2>Connecting</h2>
<p><code>GET /ws/user?token=&lt;jwt&gt;[&amp;since=&lt;seq&gt;&amp;epoch=&lt;epoch&gt;]</code> upgrades (or <code>Authorization: Bearer</code>, or <code>?ticket=</code> from <code>POST /api/ws/ticket</code>).
A refused upgrade is HTTP 401 (do not retry) or 429 / 5xx (retry). On open: <code>connect</code>; with <code>since</code>, the missed events in seq order, then
<code>sync.complete</code> (or <code>sync.reset</code>: reload through REST); then <code>conversation.list</code>.</p>
<h2>Envelope</h2>
${code(`// server → client
{ type: string; data: …; timestamp: string; success: boolean;
  seq?: number;         // persisted events only: remember the highest, resume with ?since=
  request_id?: string;  // replies: the request_id of the frame they answer
  error?: { code: string; message: string; details?: unknown; retry_after_ms?: number } } // type "error", success false
// client → server
{ type: string; data?: …; request_id?: string }`)}
<h2>Close codes</h2>
<p>Before a close it chooses, the server sends <code>alert {kind, message, retry, retry_after_ms?}</code>; <code>retry</code> is the code's class below.</p>
<table><tr><th>code</th><th>then</th><th>when</th></tr>${closes.join("")}</table>
<h2>Client → server</h2>
<p>Any request may be answered by <code>error</code> instead; an <code>ack</code> comes only when the request carries a <code>request_id</code>.</p>
<table><tr><th>type</th><th>data</th><th>answered by</th></tr>${requests.join("")}</table>
<h2>Server → client</h2>
<table><tr><th>type</th><th>kind</th><th>data</th></tr>${frames.join("")}</table>
<h2>Models</h2>
${modelSections()}`);
}
