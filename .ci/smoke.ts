/**
 * Smoke test of the built executable: copied alone into an empty directory, it starts,
 * serves /health, registers and logs in a user, and exits 0 on SIGTERM.
 */
import { copyFileSync, mkdtempSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const binary = resolve(process.argv[2] ?? "dist/parley");
const dir = mkdtempSync(join(tmpdir(), "parley-smoke-"));
copyFileSync(binary, join(dir, "parley"));
chmodSync(join(dir, "parley"), 0o755);

const port = 10000 + Math.floor(Math.random() * 20000);
const started = performance.now();
const proc = Bun.spawn(["./parley"], { cwd: dir, env: { ...process.env, PORT: String(port), HOST: "127.0.0.1" }, stdout: "ignore", stderr: "inherit" });
const base = `http://127.0.0.1:${port}`;

function fail(message: string): never {
  console.error(`smoke: ${message}`);
  proc.kill("SIGKILL");
  process.exit(1);
}

let healthy = false;
for (let i = 0; i < 200 && !healthy; i++) {
  // A server that exited (say, the random port was taken) must not let another one answer.
  if (proc.exitCode !== null) fail(`parley exited with ${proc.exitCode} before /health`);
  try { healthy = (await fetch(`${base}/health`)).ok; } catch {}
  if (!healthy) await Bun.sleep(25);
}
if (!healthy) fail("no /health within 5 s");
console.log(`smoke: /health after ${Math.round(performance.now() - started)} ms`);

const creds = JSON.stringify({ username: "smoke_user", password: "password123" });
const reg = await fetch(`${base}/api/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: creds });
if (reg.status !== 201) fail(`register answered ${reg.status}`);
const login = await fetch(`${base}/api/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: creds });
if (login.status !== 200) fail(`login answered ${login.status}`);
const { token } = (await login.json()) as { token: string };
const me = await fetch(`${base}/api/users/me`, { headers: { authorization: `Bearer ${token}` } });
if (me.status !== 200 || ((await me.json()) as { username: string }).username !== "smoke_user") fail("/api/users/me did not return the user");
// The web client from inside the binary: the page, and its script compressed.
const page = await fetch(`${base}/`);
const html = await page.text();
if (page.status !== 200 || !page.headers.get("content-security-policy")?.includes("frame-ancestors 'none'")) fail(`/ answered ${page.status} without the CSP`);
const script = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
const js = script ? await fetch(base + script, { headers: { "accept-encoding": "br" }, decompress: false }) : null;
if (!js || js.status !== 200 || js.headers.get("content-encoding") !== "br") fail("the web client's script is missing or not compressed");

proc.kill("SIGTERM");
const code = await proc.exited;
if (code !== 0) fail(`exit code ${code} after SIGTERM`);
console.log("smoke: register, login, /me, the web client and SIGTERM exit 0: ok");
