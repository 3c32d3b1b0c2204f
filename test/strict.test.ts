/**
 * Strict input (issue #19): no schema coerces a string into a number past its range, no
 * union branch lets an unchecked field through, and handlers see only checked fields.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { t } from "elysia";
import { isErrorLine, startServer, TEST_BACKEND, type Account, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";
import { looseSpots } from "./schema-audit";
import { CLIENT_FRAMES, parseFrame } from "../src/realtime/protocol";

let s: TestServer;
let a: Account;
let b: Account;
let ws: TestSocket;
beforeAll(async () => {
  s = await startServer({ wsFramesPerMinute: 10_000, presenceGraceMs: 0 });
  [a, b] = [await s.register(), await s.register()];
  // a and b share a conversation, so each may follow the other's presence.
  await s.api("POST", "/api/conversations", { token: a.token, body: { type: "direct", user_id: b.user.id } });
  ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
});
afterAll(async () => {
  ws.close();
  await s.stop();
});

/** Nothing any of these tests sends may end in an internal error. */
afterAll(() => {
  expect(ws.frames.filter((f) => f.type === "error" && f.error.code === "internal")).toEqual([]);
  expect(s.logs.filter(isErrorLine)).toEqual([]);
});

describe("schemas", () => {
  test("the audit finds both patterns", () => {
    expect(looseSpots(t.Object({ limit: t.Integer({ minimum: 1, maximum: 100 }) }))).toHaveLength(1);
    expect(looseSpots(t.Union([t.Object({ user_id: t.String() }), t.Object({ user_ids: t.Array(t.String()) })]))).toHaveLength(2);
    expect(looseSpots(t.Union([t.Object({ a: t.String() }), t.Null()]))).toEqual([]);
  });

  test("every client frame's schema is strict", () => {
    const spots = Object.entries(CLIENT_FRAMES).flatMap(([type, schema]) => looseSpots(schema, type));
    expect(spots).toEqual([]);
  });

  test("every REST route's body, query, params and headers schemas are strict", () => {
    const spots = s.app.app.routes.flatMap((r) =>
      (["body", "query", "params", "headers"] as const).flatMap((part) => looseSpots((r.hooks as Record<string, never>)[part], `${r.method} ${r.path} ${part}`)),
    );
    expect(spots).toEqual([]);
  });

  test("a checked frame carries only the fields its schema names", () => {
    const f = parseFrame({ type: "message.send", data: { conversation_id: "c", content: "hi", sender_id: "someone else", extra: { deep: 1 } } });
    expect(f.data).toEqual({ conversation_id: "c", content: "hi" });
    expect(parseFrame({ type: "ping", data: { anything: 1 } }).data).toEqual({});
  });
});

describe("conversation.load limit", () => {
  // Found by an outside fuzzer: these reached the database (internal errors), or were served past 100.
  for (const limit of [" ", "0", "-1", "-0", "\t\n", "\u3000", "101", "100000", "1e3", "50", 0, 101, 1.5, -1, null, true, [5], { n: 5 }])
    test(`limit ${JSON.stringify(limit)} is validation_failed`, async () => {
      const reply = await ws.request("conversation.load", { limit });
      expect(reply.type).toBe("error");
      expect(reply.error).toMatchObject({ code: "validation_failed", details: [{ field: "data.limit" }] });
    });

  test("a whole number of 1–100 is a page", async () => {
    for (const limit of [1, 100]) expect((await ws.request("conversation.load", { limit })).type).toBe("conversation.list");
  });
});

describe("user.status frames pick their form by the checked shape", () => {
  const deep = (n: number): unknown => { let v: unknown = "x"; for (let i = 0; i < n; i++) v = [v]; return v; };
  // Found by an outside fuzzer: the `user_id` beside a valid `user_ids` was never checked.
  for (const type of ["user.status.subscribe", "user.status.unsubscribe"])
    for (const [name, user_id] of [["a number", 123], ["an object", {}], ["null", null], ["1,000 levels deep", deep(1000)], ["5,000 levels deep", deep(5000)], ["a valid id", "x"]] as const)
      test(`${type} with user_ids and user_id (${name}) is validation_failed`, async () => {
        const reply = await ws.request(type, { user_ids: [b.user.id], user_id });
        expect(reply.type).toBe("error");
        expect(reply.error.code).toBe("validation_failed");
        expect(JSON.stringify(reply.error).length).toBeLessThan(1000); // the raw value is not echoed
      });

  test("each form alone still works", async () => {
    expect((await ws.request("user.status.subscribe", { user_id: b.user.id })).type).toBe("user.offline");
    expect((await ws.request("user.status.subscribe", { user_ids: [b.user.id] })).type).toBe("user.status");
    expect((await ws.request("user.status.unsubscribe", { user_id: b.user.id })).type).toBe("ack");
    expect((await ws.request("user.status.unsubscribe", { user_ids: [b.user.id] })).type).toBe("ack");
  });
});

describe("REST ?limit= on every list route", () => {
  /** GET routes whose query schema names a `limit`: enumerated, so new lists are covered. */
  const listRoutes = () => s.app.app.routes.filter((r) => r.method === "GET" && (r.hooks as { query?: { properties?: object } }).query?.properties && "limit" in (r.hooks as { query: { properties: object } }).query.properties);

  test("the lists are found", () => {
    expect(listRoutes().map((r) => r.path)).toEqual(expect.arrayContaining(["/api/users", "/api/conversations", "/api/friendships", "/api/conversations/:id/messages", "/api/events"]));
  });

  test("a limit that is not a whole number is 400; one out of range is 422; never a page", async () => {
    const { body: conv } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "lists" } });
    const cases: [string, number][] = [["%20", 400], ["%09%0A", 400], ["%E3%80%80", 400], ["1e3", 400], ["0x10", 400], ["5.0", 400], ["abc", 400], ["0", 422], ["-1", 422], ["-0", 422], ["100000", 422], ["99999999999999999999", 422], ["5&limit=100000", 422]];
    for (const r of listRoutes()) {
      const path = r.path.replace(":id", conv.id);
      for (const [limit, status] of cases) {
        const res = await s.api("GET", `${path}?limit=${limit}`, { token: a.token });
        expect({ path, limit, status: res.status }).toEqual({ path, limit, status });
      }
      // Searches also need their words.
      const q = path.startsWith("/api/search/") ? "&q=hello" : "";
      expect({ path, status: (await s.api("GET", `${path}?limit=100${q}`, { token: a.token })).status }).toEqual({ path, status: 200 });
    }
  });
});

describe("a query string that is not valid percent-encoding", () => {
  test("is 400 on every GET route of the API, and on the upgrade; the web client's pages are served", async () => {
    const { body: conv } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "encodings" } });
    const routes = s.app.app.routes.filter((r) => r.method === "GET" && r.path.startsWith("/api/") && !r.path.includes("*")).map((r) => r.path.replace(/:id/g, conv.id).replace(/:\w+/g, "x"));
    expect(routes).toEqual(expect.arrayContaining(["/api/users", "/api/search/messages", "/api/search/conversations"]));
    // Before, `q=%E0%A4%A` searched for its eight characters: 200 and nothing found.
    for (const path of routes)
      for (const query of ["q=%E0%A4%A", "q=hello&cursor=%ZZ", "limit=10&q=%C0%AF"]) {
        const res = await s.api("GET", `${path}?${query}`, { token: a.token });
        expect({ path, query, status: res.status, code: res.body?.error?.code }).toEqual({ path, query, status: 400, code: "bad_request" });
      }
    expect((await fetch(`${s.base}/ws/user?token=${a.token}&since=%E0`)).status).toBe(400);
    expect((await s.api("GET", "/api/users?q=%E0%B8%81", { token: a.token })).status).toBe(200);
    const page = await fetch(`${s.base}/?x=%E0`);
    expect([page.status, page.headers.get("content-type")]).toEqual([200, expect.stringContaining("text/html")]);
  });
});

describe("a body that is not UTF-8", () => {
  // Found by an acceptance pass (2026-12-02): the bytes became U+FFFDs, stored (201).
  test("is 400 bad_request, declared length or chunked, and nothing is sent; U+FFFD itself is fine", async () => {
    const { body: conv } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "bytes" } });
    const url = `${s.base}/api/conversations/${conv.id}/messages`;
    const headers = { authorization: `Bearer ${a.token}`, "content-type": "application/json" };
    const bad = new Uint8Array([...new TextEncoder().encode('{"content":"'), 0xff, 0xfe, 0xc3, ...new TextEncoder().encode('"}')]);
    const chunked = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(bad), c.close()) });
    for (const body of [bad, chunked]) {
      const res = await fetch(url, { method: "POST", headers, body });
      expect([res.status, ((await res.json()) as any).error.code]).toEqual([400, "bad_request"]);
    }
    const fine = await s.api("POST", `/api/conversations/${conv.id}/messages`, { token: a.token, body: { content: "\ufffd is a character" } });
    expect(fine.status).toBe(201);
    const history = await s.api("GET", `/api/conversations/${conv.id}/messages`, { token: a.token });
    expect(history.body.items.map((m: { content: string }) => m.content)).toEqual(["\ufffd is a character"]);
  });
});

describe("body values that cannot become strings", () => {
  // Found by the fuzzer (seed 3): Elysia writes the value it found into its validation
  // message, and an object with its own `toString` cannot become a string (500).
  test("a wrong-typed field holding {toString} or {valueOf} is 422, wherever it sits", async () => {
    const { body: g } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t" } });
    const { body: m } = await s.api("POST", `/api/conversations/${g.id}/messages`, { token: a.token, body: { content: "hi" } });
    const cases: [string, string, string | undefined, string][] = [
      ["POST", "/api/auth/login", undefined, `{"username":"${a.user.username}","password":{"user_ids":"0","toString":"-Infinity"}}`],
      ["PATCH", `/api/messages/${m.id}`, a.token, `{"content":{"prototype":"x","toString":null},"seq":{"constructor":{"title":"101"}}}`],
      ["POST", `/api/conversations/${g.id}/read`, a.token, `{"message_id":{"toString":null,"__proto__":false}}`],
      ["POST", `/api/messages/${m.id}/reactions`, a.token, `{"emoji":{"toString":"-Infinity"}}`],
      ["POST", `/api/messages/${m.id}/reactions`, a.token, `{"emoji":["x",{"valueOf":1,"toString":2}]}`],
      ["PATCH", "/api/users/me", a.token, `{"display_name":{"to\\u0053tring":1}}`],
    ];
    for (const [method, path, token, raw] of cases) {
      const res = await s.api(method, path, { token, raw });
      expect({ raw, status: res.status, code: res.body?.error?.code }).toEqual({ raw, status: 422, code: "validation_failed" });
    }
  });

  test("the keys are dropped like any unknown field: the rest of the body still counts", async () => {
    const res = await s.api("PATCH", "/api/users/me", { token: a.token, raw: `{"display_name":"Still Me","toString":1,"valueOf":{}}` });
    expect(res.status).toBe(200);
    expect(res.body.display_name).toBe("Still Me");
  });
});

describe("U+0000 in ids and text", () => {
  // SQLite stores and compares NUL like any character (an unknown id is not found);
  // PostgreSQL refuses it in text (SQLSTATE 22021/22P05): 400 bad_request. Never a 500.
  const refused = (sqlite: number) => (TEST_BACKEND === "postgres" ? 400 : sqlite);

  test("in a path id, a body id or a cursor: the answer is an error of the contract", async () => {
    const nul = encodeURIComponent("x\u0000y");
    expect((await s.api("GET", `/api/conversations/${nul}/messages`, { token: a.token })).status).toBe(refused(404));
    expect((await s.api("GET", `/api/attachments/${nul}`, { token: a.token })).status).toBe(refused(404));
    expect((await s.api("DELETE", `/api/friendships/${nul}`, { token: a.token })).status).toBe(refused(404));
    expect((await s.api("POST", "/api/friendships", { token: a.token, body: { friend_id: "x\u0000y" } })).status).toBe(refused(404));
  });

  test("in a frame's ids: an error frame of the contract", async () => {
    const send = await ws.request("message.send", { conversation_id: "x\u0000y", content: "hi" });
    expect(send.error.code).toBe(TEST_BACKEND === "postgres" ? "bad_request" : "not_found");
    const status = await ws.request("user.status.subscribe", { user_ids: ["x\u0000y"] });
    expect(status.error.code).toBe(TEST_BACKEND === "postgres" ? "bad_request" : "forbidden");
  });
});
