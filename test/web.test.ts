/** The web client's page and assets over plain HTTP (PROTOCOL §10); the browser tests are in web-browser.test.ts and web-browser-use.test.ts. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startServer, type TestServer } from "./helpers";
import { expectWebClient } from "./web-serving";

let s: TestServer;
beforeAll(async () => (s = await startServer()));
afterAll(() => s.stop());

describe("serving the web client", () => {
  test("/ and /c/:id serve the page with CSP and no-cache; hashed assets are compressed and immutable", async () => {
    await expectWebClient(s.base);
  });

  test("unknown paths answer the API's not_found; a browser's navigation to one outside the API gets the page, with 404", async () => {
    const paths = ["/nope.js", "/assets/chunk-doesnotexist.js", "/assets/", "/c", "/c/", "/c/x/y", "/api/nope", "/docs/nope", "/ws/nope", "/health/x", "/metrics/x"];
    for (const path of paths) {
      const res = await s.api("GET", path);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("not_found");
    }
    const browser = { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "accept-encoding": "gzip, br" };
    // A mistyped or cut link showed the API's JSON in the browser.
    for (const path of ["/nope.js", "/c", "/c/", "/c/x/y", "/foo/bar"]) {
      const res = await fetch(s.base + path, { headers: browser });
      expect([path, res.status, res.headers.get("content-type")]).toEqual([path, 404, "text/html;charset=utf-8"]);
      expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(res.headers.get("vary")).toBe("Accept, Accept-Encoding");
      expect(await res.text()).toStartWith("<!doctype html>");
    }
    for (const path of ["/api/nope", "/assets/chunk-doesnotexist.js", "/docs/nope", "/ws/nope", "/health/x", "/metrics/x"]) {
      const res = await fetch(s.base + path, { headers: browser });
      expect([path, res.status, ((await res.json()) as any).error.code]).toEqual([path, 404, "not_found"]);
    }
    const posted = await fetch(s.base + "/foo", { method: "POST", headers: browser, body: "{}" });
    expect([posted.status, ((await posted.json()) as any).error.code]).toEqual([404, "not_found"]);
  });

  test("the compressed asset is the asset", async () => {
    const html = await (await fetch(s.base + "/")).text();
    const js = html.match(/src="(\/[^"]+\.js)"/)![1]!;
    const plain = new Uint8Array(await (await fetch(s.base + js, { headers: { "accept-encoding": "identity" } })).arrayBuffer());
    const gz = new Uint8Array(await (await fetch(s.base + js, { headers: { "accept-encoding": "gzip" }, decompress: false })).arrayBuffer());
    expect(Bun.gunzipSync(gz)).toEqual(plain);
  });
});
