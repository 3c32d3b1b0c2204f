/**
 * WebSocket tickets in cluster mode (issue #16: "tickets valid on any node"), with three
 * real nodes: a ticket issued on one node opens a socket on another, once; a used or
 * expired one is 401 on every node; of two nodes redeeming one ticket at the same moment,
 * exactly one opens a socket; the socket keeps the expiry of the token behind the ticket;
 * PostgreSQL holds the ticket's hash, never the ticket. The reference client with tickets
 * and a list of URLs moves to another node and resumes there. Through a load balancer
 * (ticket and upgrade on different nodes): cluster-lb.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { createHash } from "node:crypto";
import { ParleyClient, type Message } from "../src/client";
import { createTokens } from "../src/auth/tokens";
import { createTestDatabase, NATS_TEST_URL, REDIS_TEST_URL, servicesReady } from "./services";
import { waitFor } from "./helpers";
import { Cluster, CLUSTER_SECRET } from "./cluster-harness";
import { TestSocket } from "./ws-client";

const ready = await servicesReady("cluster tickets (three nodes)", { pg: true, nats: true, redis: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let cluster: Cluster;
let sql: SQL;

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_cluster_tickets");
  // Small pools: PostgreSQL's connections are shared with the other test files.
  cluster = await Cluster.start(3, { DATABASE_URL: database.url, DATABASE_POOL_SIZE: "4", NATS_URL: NATS_TEST_URL, REDIS_URL: REDIS_TEST_URL });
  sql = new SQL({ url: database.url, max: 1 });
}, 60_000);

afterAll(async () => {
  await sql?.close();
  await cluster?.stop();
  await database?.drop();
});

const UPGRADE = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" };
const ticketOn = async (i: number, token: string) => {
  const r = await cluster.api(i, "POST", "/api/ws/ticket", token);
  expect(r.status).toBe(200);
  return r.body as { ticket: string; expires_at: string };
};
const ticketUrl = (i: number, ticket: string) => `${cluster.base(i).replace("http", "ws")}/ws/user?ticket=${ticket}`;
/** The status of an upgrade with `ticket` on node `i` (401 when refused). */
const upgradeStatus = async (i: number, ticket: string) => (await fetch(`${cluster.base(i)}/ws/user?ticket=${ticket}`, { headers: UPGRADE })).status;
const hashOf = (ticket: string) => createHash("sha256").update(ticket).digest("base64url");

describe.skipIf(!ready)("tickets on three nodes", () => {
  test("issued on node 0, a ticket opens a socket on node 1 as its user; used, it is 401 on node 2; expired, 401; the table holds its hash only", async () => {
    const a = await cluster.user(0);
    const t = await ticketOn(0, a.token);
    expect(Math.abs(Date.parse(t.expires_at) - Date.now() - 30_000)).toBeLessThan(5_000);
    const [row] = await sql`SELECT user_id FROM ws_tickets WHERE ticket_hash = ${hashOf(t.ticket)}`;
    expect(row).toEqual({ user_id: a.id });
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM ws_tickets WHERE ticket_hash = ${t.ticket}`;
    expect(n).toBe(0);

    const ws = await TestSocket.connect(ticketUrl(1, t.ticket));
    expect(ws.frames[0]!.data.user_id).toBe(a.id);
    expect((await ws.request("ping")).type).toBe("pong");
    expect(await upgradeStatus(2, t.ticket)).toBe(401);
    expect(await upgradeStatus(1, t.ticket)).toBe(401);
    ws.close();

    // Expired: its row aged past its expiry (the contract's 30 s, without the wait).
    const stale = await ticketOn(0, a.token);
    await sql`UPDATE ws_tickets SET expires_at = expires_at - 30000 WHERE ticket_hash = ${hashOf(stale.ticket)}`;
    expect(await upgradeStatus(1, stale.ticket)).toBe(401);
    expect(await upgradeStatus(2, "nonsense")).toBe(401);
  }, 30_000);

  test("one ticket redeemed on two nodes at the same moment: exactly one socket opens (20 rounds)", async () => {
    const a = await cluster.user(0);
    for (let round = 0; round < 20; round++) {
      const t = await ticketOn(round % 3, a.token);
      const tries = await Promise.allSettled([TestSocket.open(ticketUrl(1, t.ticket)), TestSocket.open(ticketUrl(2, t.ticket))]);
      const opened = tries.filter((x) => x.status === "fulfilled").map((x) => (x as PromiseFulfilledResult<TestSocket>).value);
      expect(opened).toHaveLength(1);
      await opened[0]!.waitFor((f) => f.type === "connect", 5000);
      opened[0]!.close();
      await opened[0]!.waitClosed();
    }
  }, 60_000);

  test("a socket opened on another node keeps the expiry of the token behind its ticket: closed with 4001 when it expires", async () => {
    const a = await cluster.user(0);
    const shortLived = (await createTokens(CLUSTER_SECRET, 2).issue(a.id)).token;
    const t = await ticketOn(0, shortLived);
    const ws = await TestSocket.connect(ticketUrl(1, t.ticket));
    expect((await ws.waitClosed(8000)).code).toBe(4001);
    expect(ws.all("alert").map((f) => f.data.kind)).toEqual(["unauthorized"]);
  }, 20_000);

  // Last: it kills node 1.
  test("the reference client with tickets and a list of URLs: its node killed, it moves to the next with a ticket of that node's and loses nothing", async () => {
    const [sender, reader] = [await cluster.user(0), await cluster.user(1)];
    const group = await cluster.api(0, "POST", "/api/conversations", sender.token, { type: "group", title: "tickets", member_ids: [reader.id] });
    const client = new ParleyClient({ url: [cluster.base(1), cluster.base(2), cluster.base(0)], token: reader.token, useTickets: true, backoff: { initialMs: 50, maxMs: 200 } });
    const received = new Map<string, Message>();
    client.on("message.receive", (m) => void received.set(m.id, m));
    await client.connect();
    const ids: string[] = [];
    const send = async (k: number) => {
      const r = await cluster.api(0, "POST", `/api/conversations/${group.body.id}/messages`, sender.token, { content: `t${k}` });
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    };
    for (let k = 0; k < 5; k++) await send(k);
    await waitFor(() => ids.every((id) => received.has(id)), 10_000);
    cluster.nodes[1]!.proc.kill("SIGKILL");
    await cluster.nodes[1]!.proc.exited;
    for (let k = 5; k < 10; k++) await send(k);
    await waitFor(() => client.state === "open" && client.baseUrl === cluster.base(2), 20_000);
    await waitFor(() => ids.every((id) => received.has(id)), 10_000);
    expect(received.size).toBe(10);
    client.close();
  }, 60_000);
});
