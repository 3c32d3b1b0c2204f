/**
 * Attachments and search in cluster mode (PROTOCOL §11): two real nodes on one PostgreSQL
 * database and NATS, files on S3 (s3rver). An image uploaded through one node is sent,
 * arrives live with its attachment on a socket of the other node, and its member
 * downloads it and its thumbnail there over the signed links; an outsider gets 404 on
 * either node; a profile picture set through one node is served by the other; a message
 * sent through one node is found by a search on the other.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnServer, type Running } from "./process";
import { createTestDatabase, NATS_TEST_URL, REDIS_TEST_URL, servicesReady } from "./services";
import { tempDir } from "./helpers";
import { png, sha256 } from "./files-fixtures";
import { startS3 } from "./s3";
import { TestSocket } from "./ws-client";

const ready = await servicesReady("cluster mode: files and search (two nodes)", { pg: true, nats: true, redis: true });
const SECRET = "cluster-files-secret-of-at-least-32-characters";
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let s3: Awaited<ReturnType<typeof startS3>>;
const nodes: Running[] = [];

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_cluster_files");
  s3 = await startS3();
  const { endpoint, bucket, region, accessKeyId, secretAccessKey } = s3.settings;
  const env = {
    DATABASE_URL: database.url,
    NATS_URL: NATS_TEST_URL,
    REDIS_URL: REDIS_TEST_URL,
    JWT_SECRET: SECRET,
    // Small pools: PostgreSQL's 100 connections are shared with the other tests' databases.
    DATABASE_POOL_SIZE: "4",
    CLUSTER_NAME: `f${process.pid}${Date.now().toString(36)}`,
    STORAGE: "s3",
    S3_ENDPOINT: endpoint,
    S3_BUCKET: bucket,
    S3_REGION: region,
    S3_ACCESS_KEY_ID: accessKeyId,
    S3_SECRET_ACCESS_KEY: secretAccessKey,
  };
  const node = () => spawnServer(["bun", "src/index.ts", "serve"], { ...env, DATA_DIR: tempDir("parley-node-") });
  // One first, so the migrations are applied once.
  nodes.push(await node());
  nodes.push(await node());
}, 60_000);

afterAll(async () => {
  for (const n of nodes) await n.stop("SIGKILL").catch(() => {});
  await database?.drop();
  await s3?.stop();
});

const base = (i: number) => nodes[i]!.base;
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function api(i: number, method: string, path: string, token?: string, body?: unknown) {
  const res = await fetch(base(i) + path, { method, headers: { ...(token ? auth(token) : {}), ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let counter = 0;
async function user(i: number) {
  const username = `cf${process.pid}${(counter++).toString(36)}${Date.now().toString(36)}`;
  const res = await api(i, "POST", "/api/auth/register", undefined, { username, password: "password123" });
  expect(res.status).toBe(201);
  return { token: res.body.token as string, id: res.body.user.id as string };
}

describe.skipIf(!ready)("two nodes, files on S3", () => {
  test("a node started with STORAGE=local in cluster mode says that DATA_DIR/files must be shared", async () => {
    const local = await spawnServer(["bun", "src/index.ts", "serve"], { DATABASE_URL: database.url, DATABASE_POOL_SIZE: "2", NATS_URL: NATS_TEST_URL, REDIS_URL: REDIS_TEST_URL, JWT_SECRET: SECRET, DATA_DIR: tempDir("parley-node-") });
    await local.stop();
    expect(local.lines.find((l) => l.level === "warn" && /STORAGE=local/.test(l.msg))).toBeDefined();
    expect(nodes[0]!.lines.find((l) => /STORAGE=local/.test(l.msg ?? ""))).toBeUndefined();
  }, 30_000);

  test("an image uploaded and sent through node 0 arrives live on node 1 with its attachment; the member downloads it and its thumbnail there; an outsider gets 404 on both", async () => {
    const [a, b, outsider] = [await user(0), await user(1), await user(1)];
    const group = await api(0, "POST", "/api/conversations", a.token, { type: "group", title: "files", member_ids: [b.id] });
    expect(group.status).toBe(201);
    const sb = await TestSocket.connect(`${base(1).replace("http", "ws")}/ws/user?token=${b.token}`);

    const bytes = await png(640, 480);
    const up = await fetch(`${base(0)}/api/uploads?filename=shot.png`, { method: "POST", headers: { ...auth(a.token), "content-type": "image/png" }, body: bytes });
    expect(up.status).toBe(201);
    const attachment = (await up.json()) as { id: string };
    expect(attachment).toMatchObject({ filename: "shot.png", content_type: "image/png", size: bytes.length, sha256: sha256(bytes), width: 640, height: 480 });

    const sent = await api(0, "POST", `/api/conversations/${group.body.id}/messages`, a.token, { content: "", attachment_ids: [attachment.id] });
    expect(sent.status).toBe(201);
    const live = await sb.waitFor((f) => f.type === "message.receive" && f.data.id === sent.body.id, 10_000);
    expect(live.data.message_type).toBe("image");
    const got = live.data.attachments[0];
    expect(got.id).toBe(attachment.id);

    // The links signed for b on node 0's event are good on node 1 (one JWT secret, one store).
    const file = await fetch(new URL(got.url, base(1)));
    expect(file.status).toBe(200);
    expect(sha256(new Uint8Array(await file.arrayBuffer()))).toBe(sha256(bytes));
    const thumb = await fetch(new URL(got.thumbnail_url, base(1)));
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get("content-type")).toBe("image/webp");
    expect((await thumb.arrayBuffer()).byteLength).toBeGreaterThan(0);
    expect((await fetch(`${base(0)}/api/attachments/${attachment.id}`, { headers: auth(b.token) })).status).toBe(200);

    for (const i of [0, 1]) {
      expect((await fetch(`${base(i)}/api/attachments/${attachment.id}`, { headers: auth(outsider.token) })).status).toBe(404);
      expect((await fetch(`${base(i)}/api/attachments/${attachment.id}/thumbnail`, { headers: auth(outsider.token) })).status).toBe(404);
    }
    sb.close();
  }, 60_000);

  test("a profile picture set through node 0 (its file on S3) is served by node 1 without credentials; its partner on node 1 hears of it; replaced, both nodes answer 404", async () => {
    const [a, b] = [await user(0), await user(1)];
    expect((await api(1, "POST", "/api/conversations", b.token, { type: "direct", user_id: a.id })).status).toBe(201);
    const sb = await TestSocket.connect(`${base(1).replace("http", "ws")}/ws/user?token=${b.token}`);
    const upload = async () => {
      const up = await fetch(`${base(0)}/api/uploads?filename=me.png`, { method: "POST", headers: { ...auth(a.token), "content-type": "image/png" }, body: await png(500, 500) });
      expect(up.status).toBe(201);
      return ((await up.json()) as { id: string }).id;
    };
    const first = await upload();
    const set = await api(0, "PATCH", "/api/users/me", a.token, { avatar_attachment_id: first });
    expect([set.status, set.body.profile_image_url]).toEqual([200, `/api/avatars/${first}`]);
    const heard = await sb.waitFor((f) => f.type === "user.update" && f.data.id === a.id, 10_000);
    expect(heard.data.profile_image_url).toBe(`/api/avatars/${first}`);
    const img = await fetch(`${base(1)}/api/avatars/${first}`);
    expect([img.status, img.headers.get("content-type")]).toEqual([200, "image/webp"]);
    expect((await img.arrayBuffer()).byteLength).toBeGreaterThan(0);
    const second = await upload();
    expect((await api(1, "PATCH", "/api/users/me", a.token, { avatar_attachment_id: second })).status).toBe(200);
    for (const i of [0, 1]) {
      expect((await fetch(`${base(i)}/api/avatars/${first}`)).status).toBe(404);
      expect((await fetch(`${base(i)}/api/avatars/${second}`)).status).toBe(200);
    }
    sb.close();
  }, 60_000);

  test("a message sent through one node is found by a search on the other, Thai substrings included; an outsider finds nothing", async () => {
    const [a, b, outsider] = [await user(0), await user(1), await user(0)];
    const group = await api(1, "POST", "/api/conversations", b.token, { type: "group", title: "ค้นหา", member_ids: [a.id] });
    const sent = await api(0, "POST", `/api/conversations/${group.body.id}/messages`, a.token, { content: "พรุ่งนี้ประชุมกี่โมง clusterword" });
    expect(sent.status).toBe(201);
    for (const q of ["ประชุม", "clusterword"]) {
      const found = await api(1, "GET", `/api/search/messages?q=${encodeURIComponent(q)}`, b.token);
      expect(found.status).toBe(200);
      expect(found.body.items.map((i: any) => i.message.id)).toEqual([sent.body.id]);
    }
    const none = await api(1, "GET", `/api/search/messages?q=clusterword`, outsider.token);
    expect(none.status).toBe(200);
    expect(none.body.items).toEqual([]);
    const conv = await api(0, "GET", `/api/search/conversations?q=${encodeURIComponent("ค้นหา")}`, a.token);
    expect(conv.body.items.map((c: any) => c.id)).toEqual([group.body.id]);
  }, 60_000);
});
