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

  test("unknown paths still answer the API's not_found, not the page", async () => {
    for (const path of ["/nope.js", "/assets/chunk-doesnotexist.js", "/assets/", "/c", "/c/x/y"]) {
      const res = await s.api("GET", path);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("not_found");
    }
  });

  test("the compressed asset is the asset", async () => {
    const html = await (await fetch(s.base + "/")).text();
    const js = html.match(/src="(\/[^"]+\.js)"/)![1]!;
    const plain = new Uint8Array(await (await fetch(s.base + js, { headers: { "accept-encoding": "identity" } })).arrayBuffer());
    const gz = new Uint8Array(await (await fetch(s.base + js, { headers: { "accept-encoding": "gzip" }, decompress: false })).arrayBuffer());
    expect(Bun.gunzipSync(gz)).toEqual(plain);
  });
});
