/** Checks shared by the source-mode and compiled-binary tests of the web client's serving. */
import { expect } from "bun:test";

/** `/` and a deep link serve the page (no-cache, CSP), and every asset it names is compressed and immutable. */
export async function expectWebClient(base: string) {
  for (const path of ["/", "/c/0192e7a0-0000-7000-8000-000000000000"]) {
    const res = await fetch(base + path, { headers: { "accept-encoding": "gzip, br" }, decompress: false });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/html");
    expect(res.headers.get("content-encoding")).toBe("br");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toContain("unsafe-inline");
  }
  const html = await (await fetch(base + "/")).text();
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script in the page
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  expect(assets.some((a) => a.endsWith(".js"))).toBe(true);
  expect(assets.some((a) => a.endsWith(".css"))).toBe(true);
  let firstScreenBr = 0;
  for (const asset of assets) {
    for (const encoding of ["br", "gzip"]) {
      const res = await fetch(base + asset, { headers: { "accept-encoding": encoding }, decompress: false });
      expect(res.status).toBe(200);
      if (encoding === "br") firstScreenBr += (await res.clone().arrayBuffer()).byteLength;
      expect(res.headers.get("content-encoding")).toBe(encoding);
      expect(res.headers.get("cache-control")).toContain("immutable");
      expect(res.headers.get("vary")).toBe("Accept-Encoding");
    }
    const plain = await fetch(base + asset, { headers: { "accept-encoding": "identity" } });
    expect(plain.headers.get("content-encoding")).toBeNull();
    expect((await plain.text()).length).toBeGreaterThan(0);
  }
  // The budget: JS + CSS of the first screen ≤ 80 KB compressed.
  expect(firstScreenBr).toBeLessThanOrEqual(80 * 1024);
  return { assets, firstScreenBr };
}
