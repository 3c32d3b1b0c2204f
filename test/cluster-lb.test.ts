/**
 * Cluster mode behind the load balancer that compose.yaml ships: the nginx configuration is
 * read out of compose.yaml itself (its upstream servers pointed at two real nodes here),
 * so what is tested is what users run. Through it: REST, WebSocket upgrades with live
 * delivery, a 2 MiB upload streamed through, per-address limits per client
 * (TRUSTED_PROXIES and X-Forwarded-For), and a node killed with SIGKILL: requests go on
 * through the other node and the reference client resumes there with nothing lost. The
 * reference client with tickets: its ticket request and its upgrade reach different nodes.
 * As in compose.yaml, no Redis: presence and limits on PostgreSQL.
 * Needs nginx (Debian's nginx-light; `.ci/run` installs it) besides PostgreSQL and NATS.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ParleyClient, type Message } from "../src/client";
import { spawnServer, type Running } from "./process";
import { createTestDatabase, NATS_TEST_URL, servicesReady } from "./services";
import { tempDir, waitFor } from "./helpers";
import { randomBytes, sha256 } from "./files-fixtures";
import { TestSocket } from "./ws-client";

const NGINX = "/usr/sbin/nginx";

async function nginxReady(): Promise<boolean> {
  if (!(await servicesReady("cluster mode behind nginx", { pg: true, nats: true }))) return false;
  if (existsSync(NGINX)) return true;
  const message = `cluster mode behind nginx: needs ${NGINX} (apt-get install nginx-light)`;
  if (process.env.CI === "true") throw new Error(`${message} (CI=true: these tests must run)`);
  console.warn(`SKIPPED ${message}.`);
  return false;
}

const ready = await nginxReady();
const SECRET = "cluster-lb-secret-of-at-least-32-characters!";
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const nodes: Running[] = [];
let nginx: Subprocess<"ignore", "ignore", "pipe"> | null = null;
let lb = "";

/** compose.yaml's nginx configuration, its upstreams pointed at `upstreams` and listening on `port`. */
function nginxConfig(upstreams: string[], port: number, dir: string): string {
  const compose = Bun.YAML.parse(readFileSync(join(import.meta.dir, "..", "compose.yaml"), "utf8")) as { configs: { nginx: { content: string } } };
  // `$$` is compose's escape for a literal `$`.
  let site = compose.configs.nginx.content.replaceAll("$$", "$");
  const servers = [...site.matchAll(/server parley-\d:8080([^;]*);/g)];
  expect(servers.length).toBe(3);
  site = site.replace(/(\s*server parley-\d:8080[^;]*;)+/, upstreams.map((u) => `\n        server ${u}${servers[0]![1]};`).join(""));
  site = site.replace(/listen 8080;/, `listen 127.0.0.1:${port};`);
  return `daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${site}
}
`;
}

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_cluster_lb");
  const env = {
    DATABASE_URL: database.url,
    DATABASE_POOL_SIZE: "4",
    NATS_URL: NATS_TEST_URL,
    REDIS_URL: "",
    JWT_SECRET: SECRET,
    CLUSTER_NAME: `lb${process.pid}${Date.now().toString(36)}`,
    HEARTBEAT_INTERVAL_MS: "1000",
    PRESENCE_GRACE_MS: "0",
    TRUSTED_PROXIES: "127.0.0.1",
    REGISTRATIONS_PER_ADDRESS: "3",
  };
  const node = () => spawnServer(["bun", "src/index.ts", "serve"], { ...env, DATA_DIR: tempDir("parley-node-") });
  nodes.push(await node());
  nodes.push(await node());
  const dir = tempDir("parley-nginx-");
  const port = 20000 + Math.floor(Math.random() * 10000);
  writeFileSync(join(dir, "nginx.conf"), nginxConfig(nodes.map((n) => n.base.replace("http://", "")), port, dir));
  nginx = Bun.spawn([NGINX, "-p", dir, "-c", join(dir, "nginx.conf")], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  lb = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 10_000; !(await fetch(`${lb}/health`).catch(() => null))?.ok; await Bun.sleep(50))
    if (nginx.exitCode !== null || Date.now() > deadline)
      throw new Error(`nginx did not answer: ${await new Response(nginx.stderr).text()} ${existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : ""}`);
}, 60_000);

afterAll(async () => {
  nginx?.kill("SIGKILL");
  for (const n of nodes) await n.stop("SIGKILL").catch(() => {});
  await database?.drop();
});

async function api(method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(lb + path, { method, headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let counter = 0;
async function user(forwardedFor: string) {
  const username = `lb${process.pid}${(counter++).toString(36)}${Date.now().toString(36)}`;
  const res = await api("POST", "/api/auth/register", undefined, { username, password: "password123" }, { "x-forwarded-for": forwardedFor });
  expect(res.status).toBe(201);
  return { token: res.body.token as string, id: res.body.user.id as string };
}

describe.skipIf(!ready)("two nodes behind compose.yaml's nginx", () => {
  test("REST, WebSocket upgrades with live delivery and a streamed upload go through; each client behind the proxy has its own registration budget", async () => {
    const [a, b] = [await user("203.0.113.10"), await user("203.0.113.11")];
    const group = await api("POST", "/api/conversations", a.token, { type: "group", title: "behind nginx", member_ids: [b.id] });
    expect(group.status).toBe(201);
    const sb = await TestSocket.connect(`${lb.replace("http", "ws")}/ws/user?token=${b.token}`);
    const sent = await api("POST", `/api/conversations/${group.body.id}/messages`, a.token, { content: "through the balancer" });
    expect(sent.status).toBe(201);
    await sb.waitFor((f) => f.type === "message.receive" && f.data.id === sent.body.id, 10_000);
    sb.close();

    const bytes = randomBytes(2 * 1024 * 1024);
    const up = await fetch(`${lb}/api/uploads?filename=big.bin`, { method: "POST", headers: { authorization: `Bearer ${a.token}`, "content-type": "application/octet-stream" }, body: bytes });
    expect(up.status).toBe(201);
    expect(((await up.json()) as { sha256: string }).sha256).toBe(sha256(bytes));

    // REGISTRATIONS_PER_ADDRESS=3: this client has used one; two more, then 429 — for it alone.
    await user("203.0.113.10");
    await user("203.0.113.10");
    const refused = await api("POST", "/api/auth/register", undefined, { username: `lbx${Date.now().toString(36)}`, password: "password123" }, { "x-forwarded-for": "203.0.113.10" });
    expect(refused.status).toBe(429);
    await user("203.0.113.12");
  }, 60_000);

  test("the reference client with tickets: nginx alternates the nodes, so each ticket is redeemed on the node that did not issue it, and it connects every time", async () => {
    // Round robin per request: two requests in a row reach both nodes.
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await api("GET", "/health")).body.node_id);
    expect(new Set(ids).size).toBe(2);
    expect(ids[0]).not.toBe(ids[1]);
    const [sender, reader] = [await user("203.0.113.30"), await user("203.0.113.31")];
    const group = await api("POST", "/api/conversations", sender.token, { type: "group", title: "tickets", member_ids: [reader.id] });
    for (let round = 0; round < 4; round++) {
      const client = new ParleyClient({ url: lb, token: reader.token, useTickets: true, backoff: { initialMs: 50, maxMs: 200 } });
      const received: string[] = [];
      const closes: number[] = [];
      client.on("message.receive", (m) => void received.push(m.id));
      client.on("close", (c) => void closes.push(c.code));
      try {
        // A ticket refused by the other node is an upgrade refused, retried for ever (the token is good): give up after 10 s.
        await Promise.race([client.connect(), Bun.sleep(10_000).then(() => Promise.reject(new Error(`not connected; closes: ${closes}`)))]);
        // No failed attempt before it.
        expect(closes).toEqual([]);
        const sent = await api("POST", `/api/conversations/${group.body.id}/messages`, sender.token, { content: `round ${round}` });
        await waitFor(() => received.includes(sent.body.id), 10_000);
      } finally {
        client.close();
      }
    }
  }, 60_000);

  test("a node killed with SIGKILL: requests go on through the other, and the client resumes there with nothing lost", async () => {
    const [sender, reader] = [await user("203.0.113.20"), await user("203.0.113.21")];
    const group = await api("POST", "/api/conversations", sender.token, { type: "group", title: "failover", member_ids: [reader.id] });
    // One URL, the balancer's: which node serves it is nginx's choice.
    const client = new ParleyClient({ url: lb, token: reader.token, backoff: { initialMs: 50, maxMs: 200 } });
    const received = new Map<string, Message>();
    client.on("message.receive", (m) => void received.set(m.id, m));
    await client.connect();
    const ids: string[] = [];
    const send = async (k: number) => {
      for (let attempt = 0; ; attempt++) {
        const r = await api("POST", `/api/conversations/${group.body.id}/messages`, sender.token, { content: `m${k}`, client_message_id: `lb-${k}` });
        if (r.status === 201 || r.status === 200) return ids.push(r.body.id);
        if (attempt > 20) throw new Error(`send ${k}: ${r.status}`);
        await Bun.sleep(100);
      }
    };
    for (let k = 0; k < 20; k++) await send(k);
    // The node nginx gave the client's socket (the only one open now) is the one to kill.
    const sockets = async (n: Running) => Number(/^parley_ws_connections (\d+)/m.exec(await (await fetch(`${n.base}/metrics`)).text())?.[1]);
    const counts = await Promise.all(nodes.map(sockets));
    expect(counts.sort()).toEqual([0, 1]);
    const victim = (await sockets(nodes[0]!)) === 1 ? nodes[0]! : nodes[1]!;
    await victim.stop("SIGKILL");
    for (let k = 20; k < 60; k++) await send(k);
    await waitFor(() => ids.every((id) => received.has(id)), 20_000);
    expect(new Set(ids).size).toBe(60);
    client.close();
  }, 60_000);
});
