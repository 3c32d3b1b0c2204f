/**
 * The compiled executable carries its migrations: copied alone into an empty directory it
 * creates and migrates a fresh database, and a newer build migrates an older database in place.
 */
import { describe, expect, test } from "bun:test";
import { cpSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Database } from "bun:sqlite";
import { tempDir } from "./helpers";
import { registerAndLogin, spawnServer } from "./process";
import { jpeg } from "./files-fixtures";
import { expectWebClient } from "./web-serving";

const root = resolve(import.meta.dir, "..");

/** Builds as `bun run build` does (package.json's flags: bytecode and all), to `outfile`. */
function build(projectDir: string, outfile: string) {
  const script: string = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts.build;
  const args = script.split(/\s+/).slice(1).map((a) => (a === "dist/parley" ? outfile : a));
  if (!args.includes(outfile)) throw new Error(`package.json's build no longer writes dist/parley: ${script}`);
  const p = Bun.spawnSync([process.execPath, ...args], { cwd: projectDir });
  if (p.exitCode !== 0) throw new Error(`build failed: ${p.stderr}`);
}

describe("the compiled executable", () => {
  test("runs alone from an empty directory, keeps data across runs, and a newer build migrates the old database", async () => {
    const work = tempDir("parley-bin-");
    build(root, join(work, "v1", "parley"));

    // A VM with nothing but the binary.
    const vm = join(work, "vm");
    mkdirSync(vm);
    copyFileSync(join(work, "v1", "parley"), join(vm, "parley"));
    Bun.spawnSync(["chmod", "+x", join(vm, "parley")]);

    const first = await spawnServer(["./parley", "serve"], { DATA_DIR: "", PATH: process.env.PATH!, LOG_LEVEL: "info" }, vm, { inherit: false });
    expect(first.lines.find((l) => l.msg === "migrations applied")?.applied).toBeGreaterThan(0);
    // Re-executed in place with the allocator's setting (src/platform/allocator.ts): the pid
    // we started serves, with its own command line (a compiled binary's argv differs from Bun's).
    expect(readFileSync(`/proc/${first.proc.pid}/environ`, "utf8").split("\0")).toContain("MIMALLOC_PURGE_HOLES=0");
    expect(readFileSync(`/proc/${first.proc.pid}/cmdline`, "utf8")).toBe("./parley\0serve\0");
    expect((await registerAndLogin(first.base, "binary_user")).status).toBe(200);
    // The web client is inside the binary too, compressed and cached as PROTOCOL §10 says.
    const { firstScreenBr } = await expectWebClient(first.base);
    console.log(`web client in the binary: first screen JS+CSS ${firstScreenBr} bytes (br)`);
    expect(await first.stop()).toBe(0);

    const second = await spawnServer(["./parley"], { DATA_DIR: "" }, vm);
    expect(second.lines.some((l) => l.msg === "migrations applied")).toBe(false);
    const login = await fetch(`${second.base}/api/auth/login`, { method: "POST", body: JSON.stringify({ username: "binary_user", password: "password123" }) });
    expect(login.status).toBe(200);
    // Bun.Image inside the executable: an uploaded JPEG is decoded and thumbnailed.
    const { token } = (await login.json()) as { token: string };
    const up = await fetch(`${second.base}/api/uploads?filename=p.jpg`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: await jpeg(900, 600) });
    const attachment = (await up.json()) as { width: number; height: number; thumbnail_url: string };
    expect([up.status, attachment.width, attachment.height]).toEqual([201, 900, 600]);
    const thumb = await fetch(second.base + attachment.thumbnail_url);
    expect((await new Bun.Image(new Uint8Array(await thumb.arrayBuffer())).metadata()).width).toBe(400);
    expect(await second.stop()).toBe(0);

    // A newer build: the same project plus one more migration.
    const next = join(work, "project");
    for (const part of ["src", "drizzle", "web"]) cpSync(join(root, part), join(next, part), { recursive: true });
    for (const file of ["package.json", "tsconfig.json"]) copyFileSync(join(root, file), join(next, file));
    symlinkSync(join(root, "node_modules"), join(next, "node_modules"));
    const journalFile = join(next, "drizzle", "meta", "_journal.json");
    const journal = JSON.parse(readFileSync(journalFile, "utf8"));
    const tag = "9999_upgrade_probe";
    journal.entries.push({ idx: journal.entries.length, version: "6", when: Date.now(), tag, breakpoints: true });
    writeFileSync(journalFile, JSON.stringify(journal));
    writeFileSync(join(next, "drizzle", `${tag}.sql`), "CREATE TABLE `upgrade_probe` (`id` integer PRIMARY KEY);");
    build(next, join(work, "v2", "parley"));
    copyFileSync(join(work, "v2", "parley"), join(vm, "parley"));

    const third = await spawnServer(["./parley"], { DATA_DIR: "" }, vm);
    expect(third.lines.find((l) => l.msg === "migrations applied")?.applied).toBe(1);
    const relogin = await fetch(`${third.base}/api/auth/login`, { method: "POST", body: JSON.stringify({ username: "binary_user", password: "password123" }) });
    expect(relogin.status).toBe(200);
    expect(await third.stop()).toBe(0);

    const db = new Database(join(vm, "data", "parley.db"), { readonly: true });
    expect(db.query("SELECT name FROM sqlite_master WHERE name = 'upgrade_probe'").get()).toEqual({ name: "upgrade_probe" });
    expect((db.query("SELECT count(*) AS n FROM __drizzle_migrations").get() as { n: number }).n).toBe(journal.entries.length);
    db.close();
  }, 120_000);
});
