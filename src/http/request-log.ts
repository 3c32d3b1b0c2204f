/**
 * One log line and one metrics sample per request: method, route, status, duration,
 * request id and user id. Never the query string (it may carry a token) nor bodies.
 */
import { Elysia } from "elysia";
import type { AppContext } from "../context";

interface RequestInfo { id: string; start: number }
const info = new WeakMap<Request, RequestInfo>();

export const requestInfo = (request: Request) => info.get(request);

export const requestLogging = (ctx: AppContext) =>
  new Elysia({ name: "parley.request-log", seed: ctx.instance })
    .onRequest(({ request, set }) => {
      const given = request.headers.get("x-request-id");
      const id = given && /^[\w.-]{1,64}$/.test(given) ? given : Bun.randomUUIDv7();
      info.set(request, { id, start: performance.now() });
      set.headers["x-request-id"] = id;
    })
    .onAfterResponse({ as: "global" }, (c) => {
      const { request, set } = c;
      const i = info.get(request);
      if (!i) return;
      const ms = performance.now() - i.start;
      const status = typeof set.status === "number" ? set.status : 200;
      const route = (c as { route?: string }).route || "(unmatched)";
      const method = request.method;
      ctx.metrics.httpRequests.inc({ method, route, status: String(status) });
      ctx.metrics.httpDuration.observe(ms / 1000, { route });
      const me = (c as { me?: { id: string } }).me;
      ctx.log.info({ method, route, status, ms: Math.round(ms * 100) / 100, request_id: i.id, user_id: me?.id }, "request");
    });
