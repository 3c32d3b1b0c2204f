/**
 * unread_count for a member with 10,000 unread messages (issue: "under 5 ms").
 * Fills a conversation through the real send service, then times the unread count query
 * alone and GET /api/conversations/:id end to end. Run: bun test/bench/unread.ts [count]
 */
import { startServer } from "../helpers";
import { sendMessage } from "../../src/messages/service";
import { unreadCount } from "../../src/messages/view";
import { getUserRow } from "../../src/users/service";

const count = Number(process.argv[2] ?? 10_000);
const s = await startServer({ logLevel: "silent", sendsPerMinute: 100_000_000 });
const [writer, reader] = [await s.register(), await s.register()];
const { body: conv } = await s.api("POST", "/api/conversations", { token: writer.token, body: { type: "group", title: "bench", member_ids: [reader.user.id] } });
const me = getUserRow(s.app.ctx.db, writer.user.id)!;
const t0 = performance.now();
// Sends queued together share group commits; await them in chunks.
for (let i = 0; i < count; i += 500)
  await Promise.all(Array.from({ length: Math.min(500, count - i) }, (_, j) => sendMessage(s.app.ctx, me, conv.id, { content: `message ${i + j}` })));
const fillMs = performance.now() - t0;

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const queryMs: number[] = [];
let n = 0;
for (let i = 0; i < 200; i++) {
  const t = performance.now();
  n = unreadCount(s.app.ctx.db, conv.id, null, reader.user.id);
  queryMs.push(performance.now() - t);
}
const httpMs: number[] = [];
for (let i = 0; i < 100; i++) {
  const t = performance.now();
  const res = await s.api("GET", `/api/conversations/${conv.id}`, { token: reader.token });
  if (res.body.unread_count !== count) throw new Error(`unread_count ${res.body.unread_count} != ${count}`);
  httpMs.push(performance.now() - t);
}
console.log(JSON.stringify({
  scenario: "unread_count", unread: n, fill_sends_per_s: Math.round(count / (fillMs / 1000)),
  query_ms_p50: +median(queryMs).toFixed(3), http_get_conversation_ms_p50: +median(httpMs).toFixed(3), target_ms: 5,
}));
await s.stop();
