/**
 * Cluster mode as compose.yaml runs it: three real nodes started with compose.yaml's own node
 * environment (`x-parley.environment`, interpolated as compose does, its service hostnames
 * mapped to the test's PostgreSQL, NATS and an s3rver holding compose's bucket and keys;
 * test/compose.ts), behind the nginx configuration read out of compose.yaml (its upstream
 * servers pointed at the nodes). A misspelt variable, a value the server refuses or a
 * setting that disagrees with the service providing it fails here. Through nginx: REST,
 * WebSocket upgrades with live delivery, a 2 MiB upload streamed through to S3,
 * per-address limits per client (TRUSTED_PROXIES and X-Forwarded-For), and a node killed
 * with SIGKILL: requests go on through the others and the reference client resumes there
 * with nothing lost. The reference client with tickets: its ticket request and its upgrade
 * reach different nodes. As in compose.yaml, no Redis: presence and limits on PostgreSQL.
 * Needs nginx (Debian's nginx-light; `.ci/run` installs it) besides PostgreSQL and NATS.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ParleyClient, type Message } from "../src/client";
import { spawnServer, type Running } from "./process";
import { createTestDatabase, NATS_TEST_URL, servicesReady } from "./services";
import { tempDir, waitFor } from "./helpers";
import { randomBytes, sha256 } from "./files-fixtures";
import { TestSocket } from "./ws-client";
import { startS3 } from "./s3";
import { composeNodeEnvironment, composeS3, interpolate, mapComposeServices, readCompose, settingsReadByServer } from "./compose";
import { configFromSettings } from "../src/config";
import { trustedProxies } from "../src/http/client-address";

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
let s3: Awaited<ReturnType<typeof startS3>>;
let env: Record<string, string> = {};

/** compose.yaml's nginx configuration, its upstreams pointed at `upstreams` and listening on `port`. */
function nginxConfig(upstreams: string[], port: number, dir: string): string {
  const compose = readCompose();
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

/**
 * Settings the test adds to compose.yaml's node environment, none of which compose.yaml sets
 * (checked below, so none hides a value of compose's): a cluster name of its own and small
 * pools (NATS and PostgreSQL are shared with other tests), a faster heartbeat for the
 * SIGKILL test, CONTACT_POLICY=open (the tests group strangers) and a small registration
 * budget to reach its limit.
 */
const TEST_SETTINGS = {
  CLUSTER_NAME: `lb${process.pid}${Date.now().toString(36)}`,
  DATABASE_POOL_SIZE: "4",
  HEARTBEAT_INTERVAL_MS: "1000",
  PRESENCE_GRACE_MS: "0",
  CONTACT_POLICY: "open",
  REGISTRATIONS_PER_ADDRESS: "3",
};

/** compose.yaml's node environment as `docker compose up` would give it, PARLEY_JWT_SECRET set. */
const composeEnv = () => composeNodeEnvironment({ PARLEY_JWT_SECRET: SECRET });

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_cluster_lb");
  const fromCompose = composeEnv();
  s3 = await startS3(...(() => {
    const { bucket, ...keys } = composeS3(fromCompose);
    return [bucket, keys] as const;
  })());
  const mapped = mapComposeServices(fromCompose, { databaseUrl: database.url, natsUrl: NATS_TEST_URL, s3Endpoint: s3.settings.endpoint });
  // nginx runs on 127.0.0.1 here, not in Docker's private ranges that compose.yaml trusts:
  // the loopback address is added to them (compose's ranges are checked in a test below).
  mapped.TRUSTED_PROXIES = `${fromCompose.TRUSTED_PROXIES},127.0.0.1`;
  env = { ...mapped, ...TEST_SETTINGS };
  // The node's whole environment: this, and PORT, HOST and DATA_DIR (which the image's
  // Dockerfile sets), nothing inherited from the test process.
  const node = () => spawnServer([process.execPath, "src/index.ts", "serve"], { ...env, DATA_DIR: tempDir("parley-node-") }, undefined, { inherit: false });
  // One first, so the migrations are applied once; then two more: three, as in compose.yaml.
  nodes.push(await node());
  nodes.push(...(await Promise.all([node(), node()])));
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
  await s3?.stop();
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

describe("compose.yaml's node environment", () => {
  test("is interpolated as compose does: PARLEY_JWT_SECRET is required, with compose's message", () => {
    expect(() => composeNodeEnvironment({})).toThrow(/PARLEY_JWT_SECRET.*set PARLEY_JWT_SECRET to 32\+ random characters/);
    expect(() => composeNodeEnvironment({ PARLEY_JWT_SECRET: "" })).toThrow(/PARLEY_JWT_SECRET/);
    expect(composeEnv().JWT_SECRET).toBe(SECRET);
    const vars = { SET: "v", EMPTY: "" };
    expect(interpolate("$$a ${SET} $SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${SET:+r} ${UNSET+r}", vars)).toBe("$a v v d d  r ");
    expect(() => interpolate("${EMPTY:?needed}", vars)).toThrow(/EMPTY.*needed/);
    expect(interpolate("${EMPTY?needed}", vars)).toBe("");
  });

  test("every variable is a setting the server reads, with a value it accepts, and cluster mode with S3 is what it configures", () => {
    const fromCompose = composeEnv();
    const read = settingsReadByServer(fromCompose);
    expect(Object.keys(fromCompose).filter((k) => !read.has(k))).toEqual([]);
    const config = configFromSettings(fromCompose);
    expect(config.databaseUrl).not.toBeNull();
    expect(config.natsUrl).not.toBeNull();
    expect(config.redisUrl).toBeNull();
    expect(config.storage.kind).toBe("s3");
    // The nodes reach nginx's requests from Docker's networks: compose's default address pools.
    const trusted = trustedProxies(config.trustedProxies)!;
    for (const address of ["172.17.0.2", "172.18.0.5", "192.168.16.3"]) expect(trusted.check(address, "ipv4")).toBe(true);
    // Its hostnames and keys agree with the services that provide them.
    expect(() => composeS3(fromCompose)).not.toThrow();
    expect(() => mapComposeServices(fromCompose, { databaseUrl: "postgres://u@127.0.0.1:1/d", natsUrl: "nats://127.0.0.1:2", s3Endpoint: "http://127.0.0.1:3" })).not.toThrow();
    // What the test adds does not replace any of compose's settings.
    expect(Object.keys(TEST_SETTINGS).filter((k) => k in fromCompose)).toEqual([]);
  });

  test("a misspelt variable, a refused value or a setting disagreeing with its service is caught", () => {
    const fromCompose = composeEnv();
    const { NATS_URL, ...rest } = fromCompose;
    const misspelt = { ...rest, NATS_ULR: NATS_URL! };
    expect(() => settingsReadByServer(misspelt)).toThrow(/NATS_URL/);
    const unknown = { ...fromCompose, LOG_LEVLE: "debug" };
    expect(settingsReadByServer(unknown).has("LOG_LEVLE")).toBe(false);
    expect(() => settingsReadByServer({ ...fromCompose, LOG_LEVEL: "verbose" })).toThrow(/LOG_LEVEL/);
    expect(() => composeS3({ ...fromCompose, S3_SECRET_ACCESS_KEY: "other" })).toThrow(/MINIO_ROOT_PASSWORD/);
    expect(() => composeS3({ ...fromCompose, S3_BUCKET: "other" })).toThrow(/S3_BUCKET/);
    const to = { databaseUrl: "postgres://u@127.0.0.1:1/d", natsUrl: "nats://127.0.0.1:2", s3Endpoint: "http://127.0.0.1:3" };
    expect(() => mapComposeServices({ ...fromCompose, DATABASE_URL: "postgres://parley:parley@postgres:5432/other" }, to)).toThrow(/POSTGRES_DB/);
    expect(() => mapComposeServices({ ...fromCompose, NATS_URL: "nats://natz:4222" }, to)).toThrow(/nats service/);
  });
});

describe.skipIf(!ready)("three nodes with compose.yaml's environment, behind its nginx", () => {
  test("each node runs with compose.yaml's settings: cluster mode, files on S3, the trusted proxies", async () => {
    for (const n of nodes) {
      const health = (await (await fetch(`${n.base}/health`)).json()) as { node_id: string };
      expect(typeof health.node_id).toBe("string");
      expect(n.lines.find((l) => l.level === "warn" || l.level === "error" || l.level === "fatal")).toBeUndefined();
    }
    // Every value but the mapped hosts is compose's.
    const fromCompose = composeEnv();
    for (const [k, v] of Object.entries(fromCompose)) if (!["DATABASE_URL", "NATS_URL", "S3_ENDPOINT", "TRUSTED_PROXIES"].includes(k)) expect(env[k]).toBe(v);
    expect(env.TRUSTED_PROXIES!.startsWith(`${fromCompose.TRUSTED_PROXIES},`)).toBe(true);
  });

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
    // Into compose's bucket on the S3 server, not a node's DATA_DIR.
    expect(readdirSync(join(s3.dir, s3.settings.bucket), { recursive: true }).length).toBeGreaterThan(0);

    // REGISTRATIONS_PER_ADDRESS=3: this client has used one; two more, then 429 — for it alone.
    await user("203.0.113.10");
    await user("203.0.113.10");
    const refused = await api("POST", "/api/auth/register", undefined, { username: `lbx${Date.now().toString(36)}`, password: "password123" }, { "x-forwarded-for": "203.0.113.10" });
    expect(refused.status).toBe(429);
    await user("203.0.113.12");
  }, 60_000);

  test("the reference client with tickets: nginx rotates the nodes, so each ticket is redeemed on a node that did not issue it, and it connects every time", async () => {
    // Round robin per request: three requests in a row reach the three nodes.
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await api("GET", "/health")).body.node_id);
    expect(new Set(ids).size).toBe(3);
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

  test("a node killed with SIGKILL: requests go on through the others, and the client resumes there with nothing lost", async () => {
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
    expect([...counts].sort()).toEqual([0, 0, 1]);
    const victim = nodes[counts.indexOf(1)]!;
    await victim.stop("SIGKILL");
    for (let k = 20; k < 60; k++) await send(k);
    await waitFor(() => ids.every((id) => received.has(id)), 20_000);
    expect(new Set(ids).size).toBe(60);
    client.close();
  }, 60_000);
});
