/**
 * The models are the one source of every shape: each feature's model is in the
 * catalogue, the generated client types are current, every REST operation and every
 * frame type is documented, and a wrong event payload does not compile.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Glob } from "bun";
import { join } from "node:path";
import { ACKS, FEATURES, REPLIES, REQUESTS, SERVER_FRAMES, SIGNALS } from "../src/models";
import type { Writer } from "../src/events/log";
import { clientTypes, CLIENT_TYPES } from "../scripts/client-types";
import { startServer, type TestServer } from "./helpers";

let s: TestServer;
beforeAll(async () => (s = await startServer()));
afterAll(() => s.stop());

const getJson = async (path: string) => {
  const res = await fetch(s.base + path);
  expect(res.status).toBe(200);
  return res.json() as Promise<any>;
};

describe("the models", () => {
  test("every src/<feature>/model.ts is in the catalogue", async () => {
    // lib/model.ts holds the building blocks, not a feature.
    const files = [...new Glob("*/model.ts").scanSync(join(import.meta.dir, "../src"))].map((f) => f.split("/")[0]).filter((f) => f !== "lib").sort();
    expect(files).toEqual(Object.keys(FEATURES).sort());
  });

  test("replies and acks answer known requests with known frames", () => {
    for (const [request, frames] of Object.entries(REPLIES)) {
      expect(Object.keys(REQUESTS)).toContain(request);
      for (const f of frames) expect(Object.keys(SIGNALS)).toContain(f);
    }
    for (const request of Object.keys(ACKS)) expect(Object.keys(REQUESTS)).toContain(request);
  });

  test("src/client/types.ts is generated from them and current", async () => {
    expect(await Bun.file(CLIENT_TYPES).text()).toBe(clientTypes());
  });

  test("emitting an event with the wrong payload does not compile", () => {
    // Checked by `bun run typecheck`: were emit untyped, these directives would be unused (an error).
    const wrong = (w: Writer) => {
      // @ts-expect-error message.delete needs {conversation_id, message_id, deleted_at}
      w.emit("conv:x", "message.delete", { message_id: "m" });
      // @ts-expect-error no such event type
      w.emit("conv:x", "message.vanish", {});
    };
    expect(typeof wrong).toBe("function");
  });
});

describe("the documents", () => {
  test("/docs/json: every operation has a summary, tags, a success and error responses; no ws method", async () => {
    const doc = await getJson("/docs/json");
    expect(doc.servers?.length).toBeGreaterThan(0);
    // A license names an SPDX identifier or a URL (validators refused `{name: "UNLICENSED"}`
    // alone: an acceptance pass); this project states none.
    expect(doc.info.license === undefined || !!(doc.info.license.identifier || doc.info.license.url)).toBe(true);
    const ops = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) => Object.entries(methods).map(([method, o]) => ({ path, method, o })));
    expect(ops.length).toBeGreaterThan(30);
    for (const { path, method, o } of ops) {
      const where = `${method} ${path}`;
      expect(["get", "head", "post", "patch", "delete", "put"], where).toContain(method);
      expect(o.summary, where).toBeTruthy();
      expect(o.tags?.length, where).toBeGreaterThan(0);
      const statuses = Object.keys(o.responses);
      expect(statuses.some((st) => /^[12]/.test(st)), where).toBe(true);
      expect(statuses.some((st) => /^4/.test(st)), where).toBe(true);
      // Public operations say so; the rest take the bearer token (downloads also a signed link).
      const open = ["/api/auth/register", "/api/auth/login", "/health", "/metrics"].includes(path) || path.startsWith("/api/avatars/");
      const download = path.startsWith("/api/attachments/");
      expect(o.security, where).toEqual(open ? [] : download ? [{ bearer: [] }, { signedLink: [] }] : undefined);
      if (!open) expect(statuses, where).toContain("401");
    }
  });

  // From an acceptance pass with generated clients (2026-12-04): bounds looser than the
  // server's, numbers typed as strings, downloads typed octet-stream, no Retry-After.
  test("the documents say the server's own bounds and types: characters, limit and since as integers, a file's own type, Retry-After", async () => {
    const doc = await getJson("/docs/json");
    const ws = await getJson("/docs/asyncapi.json");
    for (const d of [doc, ws]) expect(JSON.stringify(d)).not.toContain('"documented"');
    const body = (path: string, method: string) => {
      const schema = doc.paths[path][method].requestBody.content["application/json"].schema;
      return schema.$ref ? doc.components.schemas[schema.$ref.split("/").at(-1)] : schema;
    };
    expect(body("/api/auth/register", "post").properties.password).toMatchObject({ minLength: 8, maxLength: 128 });
    expect(body("/api/auth/register", "post").properties.display_name).toMatchObject({ maxLength: 64 });
    expect(body("/api/conversations/{id}/messages", "post").properties.content).toMatchObject({ maxLength: 4000 });
    expect(body("/api/conversations/{id}/messages", "post").properties.attachment_ids.anyOf?.[0] ?? body("/api/conversations/{id}/messages", "post").properties.attachment_ids).toMatchObject({ maxItems: 10 });
    expect(body("/api/conversations/{id}", "patch").properties.title).toMatchObject({ maxLength: 100 });
    const param = (path: string, name: string) => doc.paths[path].get.parameters.find((p: any) => p.name === name).schema;
    for (const path of ["/api/conversations", "/api/conversations/{id}/messages", "/api/search/messages", "/api/events"]) expect(param(path, "limit"), path).toMatchObject({ type: "integer", minimum: 1, maximum: 100 });
    // TypeBox writes `type` after the options: the documents' bounds are applied last (since was a string with a minimum).
    const since = [...JSON.stringify(ws).matchAll(/\{[^{}]*"the highest seq processed[^{}]*\}/g)].map((m) => JSON.parse(m[0]));
    expect(since.length).toBeGreaterThan(0);
    for (const s of since) expect(s.type).toBe("integer");
    expect(param("/api/events", "since")).toMatchObject({ type: "integer", minimum: 0 });
    expect(Object.keys(doc.paths["/api/attachments/{id}"].get.responses["200"].content)).toEqual(["*/*"]);
    for (const name of ["RateLimited", "Unavailable"]) expect(doc.components.responses[name].headers["Retry-After"].schema).toMatchObject({ type: "integer" });
    expect(doc.components.responses.NotFound.headers).toBeUndefined();
    // A request answered by its event lists that event first among its replies (they listed ack and error only).
    const replies = (op: string) => ws.operations[op].reply.messages.map((m: { $ref: string }) => m.$ref.split("/").at(-1));
    expect(replies("client.message.send")).toEqual(["server.message.receive", "server.ack", "server.error"]);
    expect(replies("client.conversation.create")).toEqual(["server.conversation.create", "server.ack", "server.error"]);
    expect(replies("client.ping")).toEqual(["server.pong", "server.error"]);
  });

  test("/docs/asyncapi.json describes every frame, both ways, and links from the OpenAPI description", async () => {
    const doc = await getJson("/docs/asyncapi.json");
    expect(doc.asyncapi).toBe("3.0.0");
    expect(doc.channels.user.address).toBe("/ws/user");
    const messages = Object.keys(doc.components.messages);
    for (const type of Object.keys(REQUESTS)) expect(messages).toContain(`client.${type}`);
    for (const type of Object.keys(SERVER_FRAMES)) expect(messages).toContain(`server.${type}`);
    for (const [id, o] of Object.entries(doc.operations as Record<string, any>)) expect(o.action).toBe(id.startsWith("client.") ? "send" : "receive");
    // Persisted events carry seq; replies do not.
    expect(doc.components.messages["server.message.receive"].payload.required).toContain("seq");
    expect(doc.components.messages["server.pong"].payload.properties.seq).toBeUndefined();
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[A-Za-z]+/g) ?? [];
    for (const ref of refs) expect(doc.components.schemas[ref.split("/").pop()!], ref).toBeDefined();
    expect((await getJson("/docs/json")).info.description).toContain("/docs/asyncapi.json");
  });

  test("/docs/ws is a readable page of the same frames", async () => {
    const res = await fetch(s.base + "/docs/ws");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    for (const type of [...Object.keys(REQUESTS), ...Object.keys(SERVER_FRAMES)]) expect(html).toContain(`<code>${type}</code>`);
    expect(html).not.toContain("<script");
  });
});
