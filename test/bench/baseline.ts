/**
 * The runtime's own limit on this machine: raw Bun.serve + one bun:sqlite insert +
 * server.publish per message, no auth, no validation, no event log. The benchmark runs the
 * same load against it, so every Parley figure is also a ratio to this.
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";

const db = new Database(join(process.env.DATA_DIR ?? ".", "baseline.db"), { create: true, strict: true });
db.run("PRAGMA journal_mode = WAL");
db.run("PRAGMA synchronous = NORMAL");
db.run("CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, content TEXT NOT NULL, created_at INTEGER NOT NULL)");
const insert = db.prepare("INSERT INTO messages (id, conversation_id, content, created_at) VALUES (?, ?, ?, ?)");

function store(conversationId: string, content: string): string {
  const id = Bun.randomUUIDv7();
  const now = Date.now();
  insert.run(id, conversationId, content, now);
  return JSON.stringify({ type: "message.receive", data: { id, conversation_id: conversationId, content, created_at: new Date(now).toISOString() }, success: true });
}

const files = new Map<number, Uint8Array<ArrayBuffer>>();

const server = Bun.serve<{ topic: string }>({
  port: Number(process.env.PORT ?? 8090),
  hostname: process.env.HOST ?? "127.0.0.1",
  async fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/health") return Response.json({ status: "ok" });
    // That many bytes from memory, with the headers of a compressed asset (not real brotli:
    // the bench does not decode them), as the web client's files are served.
    if (url.pathname.startsWith("/static/")) {
      const size = Number(url.pathname.slice(8));
      let body = files.get(size);
      if (!body) files.set(size, (body = new Uint8Array(size).fill(97)));
      return new Response(body, { headers: { "content-type": "text/javascript;charset=utf-8", "content-encoding": "br", "cache-control": "public, max-age=31536000, immutable" } });
    }
    if (url.pathname === "/ws") return srv.upgrade(req, { data: { topic: `conv:${url.searchParams.get("g")}` } }) ? undefined : new Response("no", { status: 400 });
    if (req.method === "POST" && url.pathname.startsWith("/send/")) {
      const g = url.pathname.slice(6);
      const { content } = (await req.json()) as { content: string };
      srv.publish(`conv:${g}`, store(g, content));
      return new Response(null, { status: 201 });
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    open(ws) {
      // Five topics, like a Parley user in five conversations; then the two opening frames.
      ws.subscribe(ws.data.topic);
      for (let i = 1; i < 5; i++) ws.subscribe(`${ws.data.topic}:${i}`);
      ws.send('{"type":"connect"}');
      ws.send('{"type":"conversation.list","data":{"items":[],"next_cursor":null}}');
    },
    message(_ws, raw) {
      const { data } = JSON.parse(String(raw)) as { data: { conversation_id: string; content: string } };
      server.publish(`conv:${data.conversation_id}`, store(data.conversation_id, data.content));
    },
  },
});

process.on("SIGTERM", () => {
  server.stop(true);
  db.close();
  process.exit(0);
});
