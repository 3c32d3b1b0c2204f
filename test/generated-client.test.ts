/**
 * A generated client compiles and works: openapi-typescript (pinned) turns /docs/json
 * into types, tsc type-checks test/generated-client/program.ts against them, and the
 * program then runs against the real endpoints (send, history, conversations).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startServer, tempDir, type TestServer } from "./helpers";

const root = join(import.meta.dir, "..");
let s: TestServer;
let dir: string;
beforeAll(async () => {
  s = await startServer({ contactPolicy: "open" });
  dir = tempDir("parley-client-");
});
afterAll(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const run = (cmd: string[]) => {
  const p = Bun.spawnSync(cmd, { cwd: root, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: `${p.stdout.toString()}${p.stderr.toString()}` };
};

test("types generated from /docs/json type-check a client that then works against the server", async () => {
  writeFileSync(join(dir, "openapi.json"), await (await fetch(`${s.base}/docs/json`)).text());
  // Under Node, as its CLI is meant to run; scripts/typescript-5.mjs gives it the compiler API it builds with.
  const generated = run(["node", "--import", "./scripts/typescript-5.mjs", "node_modules/openapi-typescript/bin/cli.js", join(dir, "openapi.json"), "-o", join(dir, "api.ts")]);
  expect(generated.out).toContain("api.ts");
  expect(generated.code).toBe(0);

  copyFileSync(join(import.meta.dir, "generated-client/program.ts"), join(dir, "program.ts"));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "ESNext", module: "Preserve", moduleResolution: "bundler", lib: ["ESNext", "DOM"], types: [], skipLibCheck: true },
      files: ["program.ts"],
    }),
  );
  const checked = run([join(root, "node_modules/.bin/tsc"), "-p", join(dir, "tsconfig.json")]);
  expect(checked.out).toBe("");
  expect(checked.code).toBe(0);

  const [me, peer] = [await s.register(), await s.register()];
  const { run: client } = (await import(join(dir, "program.ts"))) as { run: (base: string, token: string, peerId: string) => Promise<Record<string, unknown>> };
  const r = await client(s.base, me.token, peer.user.id);
  expect(r.statuses).toEqual([201, 201, 200, 200, 404]);
  expect(r).toMatchObject({ memberCount: 2, role: "member", peerName: peer.user.display_name, content: "hello from a generated client", sender: me.user.username, reactions: [], edited: null });
  expect(r.newestId).toBe(r.messageId);
  expect(r.lastMessageId).toBe(r.messageId);
  expect(r).toMatchObject({ nextCursor: null, unread: 0, code: "not_found" });
}, 60_000);
