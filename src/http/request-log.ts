/**
 * One log line and one metrics sample per request: method, route, status, duration,
 * request id and user id. Never the query string (it may carry a token) nor bodies.
 *
 * Per request this costs what it must (a clock, an id, the line, two increments): the
 * request's id and start are kept on Elysia's context (the same object from onRequest to
 * onAfterResponse; the id is also the response's X-Request-Id header, which is where the
 * error handler reads it), and each route and method has its fields (method and route
 * serialised once) and its metric series, made on first use; the line is written without
 * pino's per-line work (log.ts infoLines; issue #17).
 */
import { Elysia } from "elysia";
import type { AppContext } from "../context";
import { infoLines } from "../log";
import type { CounterSeries, HistogramSeries } from "../metrics";

/** What onRequest leaves on the request's context. */
interface Timed { requestId?: string; startedAt?: number }

/** The id given by the client in X-Request-Id, when it is one we may repeat in logs and headers. */
const GIVEN_ID = /^[\w.-]{1,64}$/;

/** Methods whose line fields and series are kept per route. */
const STANDARD_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** `fields`: the line's method and route, serialised once. */
interface RouteStats { fields: string; duration: HistogramSeries; byStatus: Map<number, CounterSeries> }

export const requestLogging = (ctx: AppContext) => {
  /** route → method → its line fields and series (routes are the app's own, plus "(unmatched)"). */
  const routes = new Map<string, Map<string, RouteStats>>();
  const statsOf = (route: string, method: string): RouteStats => {
    let methods = routes.get(route);
    if (!methods) routes.set(route, (methods = new Map()));
    let stats = methods.get(method);
    if (!stats) methods.set(method, (stats = { fields: `,"method":${JSON.stringify(method)},"route":${JSON.stringify(route)}`, duration: ctx.metrics.httpDuration.series({ route }), byStatus: new Map() }));
    return stats;
  };
  const line = infoLines(ctx.log);
  return new Elysia({ name: "parley.request-log", seed: ctx.instance })
    .onRequest((c) => {
      const given = c.request.headers.get("x-request-id");
      const id = given !== null && GIVEN_ID.test(given) ? given : Bun.randomUUIDv7();
      (c as Timed).requestId = id;
      (c as Timed).startedAt = performance.now();
      c.set.headers["x-request-id"] = id;
    })
    .onAfterResponse({ as: "global" }, (c) => {
      const { requestId, startedAt } = c as Timed;
      if (startedAt === undefined) return;
      const ms = performance.now() - startedAt;
      const status = typeof c.set.status === "number" ? c.set.status : 200;
      const route = (c as { route?: string }).route || "(unmatched)";
      const method = c.request.method;
      const me = (c as { me?: { id: string } }).me;
      const rounded = Math.round(ms * 100) / 100;
      if (!STANDARD_METHODS.has(method)) {
        // Whatever a client sent as its method: counted and logged, but nothing kept for it.
        ctx.metrics.httpRequests.inc({ method, route, status: String(status) });
        ctx.metrics.httpDuration.observe(ms / 1000, { route });
        ctx.log.info({ method, route, status, ms: rounded, request_id: requestId, user_id: me?.id }, "request");
        return;
      }
      const stats = statsOf(route, method);
      let requests = stats.byStatus.get(status);
      if (!requests) stats.byStatus.set(status, (requests = ctx.metrics.httpRequests.series({ method, route, status: String(status) })));
      requests.inc();
      stats.duration.observe(ms / 1000);
      line(`${stats.fields},"status":${status},"ms":${rounded},"request_id":${JSON.stringify(requestId)}${me ? `,"user_id":${JSON.stringify(me.id)}` : ""}`, "request");
    });
};
