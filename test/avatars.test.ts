/**
 * Profile pictures uploaded (an image upload made the caller's picture: PATCH /api/users/me
 * {avatar_attachment_id}), served public at /api/avatars/<id>, on a real server (either engine).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startServer, waitFor, type Account, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";
import { jpeg, png, randomBytes, SVG, upload } from "./files-fixtures";

let s: TestServer;
let alice: Account, bob: Account, carol: Account;

beforeAll(async () => {
  s = await startServer({ uploadOrphanTtlSeconds: 1, uploadsPerMinute: 100_000 });
  [alice, bob, carol] = await Promise.all([s.register(), s.register(), s.register()]);
  // A conversation partner hears of alice's profile changes (§3.1).
  expect((await s.api("POST", "/api/conversations", { token: alice.token, body: { type: "direct", user_id: bob.user.id } })).status).toBe(201);
});
afterAll(() => s.stop());

const setAvatar = (who: Account, body: Record<string, unknown>) => s.api("PATCH", "/api/users/me", { token: who.token, body });
const picture = async (who: Account, bytes: Promise<Uint8Array> | Uint8Array = png(640, 480)) => {
  const up = await upload(s, who.token, await bytes, { filename: "me.png" });
  expect(up.status).toBe(201);
  return up.body.id as string;
};
const state = async (id: string) => (await s.rows<{ state: string }>("SELECT state FROM attachments WHERE id = ?", id))[0]?.state;

describe("profile pictures", () => {
  test("an image upload becomes the picture: profile_image_url /api/avatars/<id>, served to anyone without credentials (WebP, public, cached for good); partners get user.update", async () => {
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${bob.token}`);
    const id = await picture(alice);
    const res = await setAvatar(alice, { avatar_attachment_id: id });
    expect(res.status).toBe(200);
    expect(res.body.profile_image_url).toBe(`/api/avatars/${id}`);
    const update = await ws.waitFor((f) => f.type === "user.update" && f.data.id === alice.user.id);
    expect(update.data.profile_image_url).toBe(`/api/avatars/${id}`);
    ws.close();
    expect((await s.api("GET", `/api/users/${alice.user.id}`, { token: carol.token })).body.profile_image_url).toBe(`/api/avatars/${id}`);

    const img = await fetch(`${s.base}/api/avatars/${id}`);
    expect(img.status).toBe(200);
    expect(img.headers.get("content-type")).toBe("image/webp");
    expect(img.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(img.headers.get("x-content-type-options")).toBe("nosniff");
    expect(img.headers.get("cross-origin-resource-policy")).toBe("cross-origin");
    // Nothing of the private original: not its name, not its hash.
    expect(img.headers.get("content-disposition")).toBe("inline; filename=\"avatar.webp\"; filename*=UTF-8''avatar.webp");
    expect(img.headers.get("etag")).toBe(`"${id}"`);
    const original = (await s.rows<{ sha256: string }>("SELECT sha256 FROM attachments WHERE id = ?", id))[0]!.sha256;
    expect([...img.headers.values()].join(" ")).not.toContain(original);
    expect([...img.headers.values()].join(" ")).not.toContain("me.png");
    // The original stays the uploader's: anyone else is 404 there.
    expect((await fetch(`${s.base}/api/attachments/${id}`, { headers: { authorization: `Bearer ${carol.token}` } })).status).toBe(404);
    expect((await fetch(`${s.base}/api/attachments/${id}`, { headers: { authorization: `Bearer ${alice.token}` } })).status).toBe(200);
    const decoded = await new Bun.Image(new Uint8Array(await img.arrayBuffer())).metadata();
    expect([decoded.width, decoded.height]).toEqual([400, 300]);
    const again = await fetch(`${s.base}/api/avatars/${id}`, { headers: { "if-none-match": img.headers.get("etag")! } });
    expect(again.status).toBe(304);
    expect((await fetch(`${s.base}/api/avatars/${id}`, { method: "HEAD" })).status).toBe(200);
    // Held: the orphan sweep (1 s here) leaves it.
    await Bun.sleep(2500);
    expect(await state(id)).toBe("avatar");
    expect((await fetch(`${s.base}/api/avatars/${id}`)).status).toBe(200);
  });

  test("replaced by another upload, or by a URL, or removed: the old picture is 404 at once and its file swept later", async () => {
    const first = await picture(alice, jpeg(300, 300));
    expect((await setAvatar(alice, { avatar_attachment_id: first })).status).toBe(200);
    const second = await picture(alice);
    expect((await setAvatar(alice, { avatar_attachment_id: second })).body.profile_image_url).toBe(`/api/avatars/${second}`);
    expect((await fetch(`${s.base}/api/avatars/${first}`)).status).toBe(404);
    expect((await fetch(`${s.base}/api/avatars/${second}`)).status).toBe(200);
    await waitFor(async () => (await state(first)) === undefined, 10_000);

    expect((await setAvatar(alice, { profile_image_url: "https://example.com/me.png" })).body.profile_image_url).toBe("https://example.com/me.png");
    expect((await fetch(`${s.base}/api/avatars/${second}`)).status).toBe(404);
    const third = await picture(alice);
    expect((await setAvatar(alice, { avatar_attachment_id: third })).status).toBe(200);
    expect((await setAvatar(alice, { profile_image_url: null })).body.profile_image_url).toBeNull();
    expect((await fetch(`${s.base}/api/avatars/${third}`)).status).toBe(404);
    // Only the picture's own change lets it go: a rename keeps it.
    const fourth = await picture(alice);
    expect((await setAvatar(alice, { avatar_attachment_id: fourth })).status).toBe(200);
    expect((await setAvatar(alice, { display_name: "Alice Renamed" })).body.profile_image_url).toBe(`/api/avatars/${fourth}`);
    expect((await fetch(`${s.base}/api/avatars/${fourth}`)).status).toBe(200);
    // The same picture again: nothing changes; with a new name too (a client sending the whole profile back).
    expect((await setAvatar(alice, { avatar_attachment_id: fourth })).body.profile_image_url).toBe(`/api/avatars/${fourth}`);
    const both = await setAvatar(alice, { display_name: "Alice Again", avatar_attachment_id: fourth });
    expect([both.status, both.body.display_name, both.body.profile_image_url]).toEqual([200, "Alice Again", `/api/avatars/${fourth}`]);
    expect(await state(fourth)).toBe("avatar");
    expect((await fetch(`${s.base}/api/avatars/${fourth}`)).status).toBe(200);
  });

  test("refused with 422 and nothing changed: not an image, someone else's, attached to a message, unknown, with profile_image_url too; a picture cannot then be attached", async () => {
    const before = (await s.api("GET", "/api/users/me", { token: carol.token })).body;
    const refused = async (body: Record<string, unknown>, field: string) => {
      const res = await setAvatar(carol, body);
      expect(res.status).toBe(422);
      expect(res.body.error.code).toBe("validation_failed");
      expect(res.body.error.details[0].field).toBe(field);
      expect((await s.api("GET", "/api/users/me", { token: carol.token })).body).toEqual(before);
    };
    const file = await upload(s, carol.token, randomBytes(1000), { filename: "x.bin" });
    await refused({ avatar_attachment_id: file.body.id }, "avatar_attachment_id");
    const svg = await upload(s, carol.token, SVG, { filename: "x.svg", type: "image/svg+xml" });
    await refused({ avatar_attachment_id: svg.body.id }, "avatar_attachment_id");
    await refused({ avatar_attachment_id: await picture(bob) }, "avatar_attachment_id");
    await refused({ avatar_attachment_id: "no-such-upload" }, "avatar_attachment_id");
    await refused({ avatar_attachment_id: "a\u0000b" }, "avatar_attachment_id");
    await refused({ avatar_attachment_id: "" }, "avatar_attachment_id");
    const mine = await picture(carol);
    await refused({ avatar_attachment_id: mine, profile_image_url: null }, "avatar_attachment_id");
    // The refusals left it as it was: new, still attachable; attached, it cannot be a picture.
    expect(await state(mine)).toBe("new");
    const conv = (await s.api("POST", "/api/conversations", { token: carol.token, body: { type: "group", title: "Pics", member_ids: [] } })).body.id;
    expect((await s.api("POST", `/api/conversations/${conv}/messages`, { token: carol.token, body: { content: "", attachment_ids: [mine] } })).status).toBe(201);
    await refused({ avatar_attachment_id: mine }, "avatar_attachment_id");
    // And a picture cannot be attached to a message (it is not a new upload any more).
    const pic = await picture(carol);
    expect((await setAvatar(carol, { avatar_attachment_id: pic })).status).toBe(200);
    const send = await s.api("POST", `/api/conversations/${conv}/messages`, { token: carol.token, body: { content: "", attachment_ids: [pic] } });
    expect([send.status, send.body.error.code]).toEqual([422, "validation_failed"]);
  });

  test("/api/avatars/<id> is 404 for an upload that is no one's picture (new, or attached), whoever asks", async () => {
    const id = await picture(bob);
    expect((await fetch(`${s.base}/api/avatars/${id}`)).status).toBe(404);
    expect((await fetch(`${s.base}/api/avatars/${id}`, { headers: { authorization: `Bearer ${bob.token}` } })).status).toBe(404);
    const res = await fetch(`${s.base}/api/avatars/nothing-here`);
    expect([res.status, ((await res.json()) as any).error.code]).toEqual([404, "not_found"]);
  });
});
