import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { ConfigError, DEFAULTS, ENV_HELP, loadConfig, parseDuration } from "../src/config";
import { tempDir, waitFor } from "./helpers";
import { STOP_GRACE_MS } from "../src/app";
import { registerAndLogin, spawnServer } from "./process";
import { createTestDatabase, PG_ADMIN_URL, servicesReady } from "./services";
import { allocatorEnv, startsServer } from "../src/platform/allocator";

// These tests start whole processes, several per test: on a busy machine that alone can pass
// bun's 5 s default, and no test here is about speed.
setDefaultTimeout(30_000);

/** The event-log epoch DATA_DIR's parley.db holds (read-only, beside a server that may be running). */
function epochOf(dataDir: string): string {
  const db = new Database(join(dataDir, "parley.db"), { readonly: true });
  const { value } = db.query("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string };
  db.close();
  return value;
}

const run = (args: string[], env: Record<string, string> = {}) => {
  const p = Bun.spawnSync([process.execPath, "src/index.ts", ...args], { env: { ...process.env, DATA_DIR: tempDir(), ...env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

describe("configuration", () => {
  test("defaults match the contract", () => {
    const { command, config } = loadConfig([], {});
    expect(command).toEqual({ name: "serve" });
    expect(config).toMatchObject({ port: 8080, host: "0.0.0.0", dataDir: "./data", jwtSecret: null, jwtTtlSeconds: 7 * 86400, logLevel: "info" });
    expect(config.maxGroupMembers).toBe(DEFAULTS.maxGroupMembers);
    expect(config.contactPolicy).toBe("friends");
    expect(loadConfig([], { CONTACT_POLICY: "open" }).config.contactPolicy).toBe("open");
  });

  test("flags override the environment; both --flag value and --flag=value work", () => {
    const { config } = loadConfig(["serve", "--port", "9000", "--data-dir=/tmp/x", "--log-level", "debug"], { PORT: "7000", HOST: "127.0.0.1", JWT_TTL: "12h" });
    expect(config).toMatchObject({ port: 9000, host: "127.0.0.1", dataDir: "/tmp/x", logLevel: "debug", jwtTtlSeconds: 43200 });
  });

  test("commands", () => {
    expect(loadConfig(["migrate"], {}).command).toEqual({ name: "migrate" });
    expect(loadConfig(["backup", "f.db"], {}).command).toEqual({ name: "backup", file: "f.db" });
    expect(loadConfig(["new-epoch", "--data-dir", "d"], {}).command).toEqual({ name: "new-epoch" });
    expect(loadConfig(["--help"], {}).command).toEqual({ name: "help" });
    expect(loadConfig(["-v"], {}).command).toEqual({ name: "version" });
    expect(loadConfig(["help"], {}).command).toEqual({ name: "help" });
  });

  test("the help names each setting once (DATABASE_POOL_SIZE was listed twice)", () => {
    const names = ENV_HELP.match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g)!.filter((n, i, all) => all.indexOf(n) === i && ENV_HELP.match(new RegExp(`^  ${n}\\b`, "gm")));
    expect(names.length).toBeGreaterThan(20);
    for (const n of names) expect([n, ENV_HELP.match(new RegExp(`^  ${n}\\b`, "gm"))!.length]).toEqual([n, 1]);
  });

  test("durations", () => {
    expect(parseDuration("X", "7d")).toBe(604800);
    expect(parseDuration("X", "90")).toBe(90);
    expect(parseDuration("X", "30m")).toBe(1800);
    expect(() => parseDuration("X", "never")).toThrow(ConfigError);
    expect(() => parseDuration("X", "0s")).toThrow(ConfigError);
    expect(() => parseDuration("X", "99999999999d")).toThrow(ConfigError);
  });

  test.each([
    [[], { PORT: "abc" }, "PORT"],
    [[], { PORT: "70000" }, "PORT"],
    [[], { JWT_TTL: "never" }, "JWT_TTL"],
    [[], { LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [[], { CONTACT_POLICY: "friendly" }, "CONTACT_POLICY"],
    [[], { JWT_SECRET: "short" }, "JWT_SECRET"],
    [[], { JWT_SECRET: "😀".repeat(16) }, "JWT_SECRET"],
    [[], { JWT_SECRET: " ".repeat(40) }, "JWT_SECRET"],
    [[], { DATA_DIR: " " }, "DATA_DIR"],
    [[], { STORAGE: "s3", S3_ENDPOINT: "http://127.0.0.1:9000", S3_BUCKET: "  ", S3_REGION: "r", S3_ACCESS_KEY_ID: "k", S3_SECRET_ACCESS_KEY: "s" }, "S3_BUCKET"],
    [["--data-dir", "--log-level", "debug"], {}, "--data-dir needs a value"],
    [[], { PRESENCE_GRACE_MS: "-1" }, "PRESENCE_GRACE_MS"],
    [[], { REGISTRATIONS_PER_ADDRESS: "0" }, "REGISTRATIONS_PER_ADDRESS"],
    [[], { HOST: "no/such host" }, "HOST"],
    [[], { HOST: "256.1.1.1" }, "HOST"],
    [[], { HOST: "999.999.999.999" }, "HOST"],
    [[], { HOST: "12345" }, "HOST"],
    [["--host", "a b"], {}, "--host (HOST): "],
    [["--port", "abc"], { PORT: "9000" }, "--port (PORT): "],
    [[], { REGISTRATIONS_PER_ADDRESS: "many" }, "REGISTRATIONS_PER_ADDRESS"],
    [["--bogus"], {}, "--bogus"],
    [["--port"], {}, "--port"],
    [["--port", "9000", "--port=9001"], {}, "--port given twice"],
    [["fly"], {}, "fly"],
    [["backup"], {}, "backup"],
    [["new-epoch", "now"], {}, "new-epoch takes no arguments"],
    [[], { STORAGE: "ftp" }, "STORAGE"],
    [[], { S3_BUCKET: "b", S3_ENDPOINT: "http://127.0.0.1:9000" }, "S3_ENDPOINT, S3_BUCKET set but STORAGE is local"],
    [[], { STORAGE: "local", S3_SECRET_ACCESS_KEY: "s" }, "S3_SECRET_ACCESS_KEY set but STORAGE is local"],
    [[], { STORAGE: "s3", S3_BUCKET: "b" }, "S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY"],
    [[], { STORAGE: "s3", S3_ENDPOINT: "minio:9000", S3_BUCKET: "b", S3_REGION: "r", S3_ACCESS_KEY_ID: "k", S3_SECRET_ACCESS_KEY: "s" }, "S3_ENDPOINT"],
    [[], { MAX_UPLOAD_BYTES: "10" }, "MAX_UPLOAD_BYTES"],
    [[], { DATABASE_POOL_SIZE: "1" }, "DATABASE_POOL_SIZE"],
    [[], { TRUSTED_PROXIES: "10.0.0.0/33" }, "TRUSTED_PROXIES"],
    [[], { TRUSTED_PROXIES: "10.0.0.1, nginx" }, "TRUSTED_PROXIES"],
    [[], { DATABASE_POOL_SIZE: "lots" }, "DATABASE_POOL_SIZE"],
    [[], { UPLOAD_ORPHAN_TTL: "soon" }, "UPLOAD_ORPHAN_TTL"],
    [[], { ATTACHMENT_URL_TTL: "0s" }, "ATTACHMENT_URL_TTL"],
    [[], { NATS_URL: "127.0.0.1:4222", REDIS_URL: "redis://127.0.0.1:6379" }, "NATS_URL"],
    [[], { NATS_URL: "http://127.0.0.1:4222", REDIS_URL: "redis://127.0.0.1:6379" }, "NATS_URL"],
    [[], { NATS_URL: "nats://127.0.0.1:4222", REDIS_URL: "redis:" }, "REDIS_URL"],
    [[], { NATS_URL: "nats://127.0.0.1:4222", REDIS_URL: "redis://127.0.0.1:6379" }, "NATS_URL needs DATABASE_URL"],
    [[], { DATABASE_URL: "postgres://pg:5432/parley", JWT_SECRET: "x".repeat(32) }, "DATABASE_URL needs NATS_URL"],
    [[], { REDIS_URL: "redis://127.0.0.1:6379" }, "REDIS_URL is for cluster mode only"],
    [[], { CLUSTER_NAME: "a.b" }, "CLUSTER_NAME"],
    // Found by an acceptance pass: these passed the checks and failed later, after DATA_DIR was made and migrated.
    [[], { DATABASE_URL: "postgres://pg:5432/parley", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://nats:4222", REDIS_URL: "redis://127.0.0.1:6379/abc" }, "REDIS_URL"],
    [[], { DATABASE_URL: "postgres://pg:5432/parley", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://nats:4222/x" }, "NATS_URL"],
    [[], { STORAGE: "s3", S3_ENDPOINT: "http:///x", S3_BUCKET: "b", S3_REGION: "r", S3_ACCESS_KEY_ID: "k", S3_SECRET_ACCESS_KEY: "s" }, "S3_ENDPOINT"],
    [[], { DATABASE_URL: "postgres://pg:5432/parley?sslmode=bogus", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://nats:4222" }, "DATABASE_URL: sslmode"],
    [["backup", ""], {}, "backup needs exactly one argument"],
  ])("bad settings %j %j are a ConfigError naming %s", (argv, env, name) => {
    expect(() => loadConfig(argv, env)).toThrow(name);
  });
});

test("the allocator's setting: for the server only (not the short commands), never over the operator's", () => {
  expect(startsServer([])).toBe(true);
  expect(startsServer(["serve", "--port", "8080"])).toBe(true);
  for (const args of [["healthcheck", "--port", "8080"], ["migrate"], ["backup", "x.tar"], ["new-epoch"], ["--help"], ["--version"]]) expect(startsServer(args)).toBe(false);
  expect(allocatorEnv({ PATH: "/bin", X: undefined })).toEqual({ PATH: "/bin", MIMALLOC_PURGE_HOLES: "0" });
  expect(allocatorEnv({ MIMALLOC_PURGE_HOLES: "1" })).toBeUndefined();
});

test("cluster settings: DATABASE_URL and NATS_URL together, or none; REDIS_URL optional with them", () => {
  expect(loadConfig([], {}).config).toMatchObject({ databaseUrl: null, natsUrl: null, redisUrl: null });
  // PROTOCOL §11: the two of them are cluster mode (presence and limits then on PostgreSQL).
  expect(loadConfig([], { DATABASE_URL: "postgres://pg:5432/parley", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://nats:4222" }).config).toMatchObject({ databaseUrl: "postgres://pg:5432/parley", natsUrl: "nats://nats:4222", redisUrl: null });
  expect(loadConfig([], { DATABASE_URL: "postgres://pg:5432/parley", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://nats:4222", REDIS_URL: "rediss://user:pw@redis:6380/1" }).config).toMatchObject({ databaseUrl: "postgres://pg:5432/parley", natsUrl: "nats://nats:4222", redisUrl: "rediss://user:pw@redis:6380/1", databasePoolSize: 20 });
});

test("a service URL that cannot be parsed is named as such, and its password is not in the error (it was)", () => {
  const cluster = { DATABASE_URL: "postgres://pg:5432/parley", JWT_SECRET: "x".repeat(32) };
  const cases: [Record<string, string>, string][] = [
    [{ ...cluster, NATS_URL: "nats://user:s3cr3t-pw@nats:99999" }, "NATS_URL"],
    [{ ...cluster, NATS_URL: "nats://nats:4222", REDIS_URL: "redis://:s3cr3t-pw@redis:6379 x" }, "REDIS_URL"],
    [{ STORAGE: "s3", S3_ENDPOINT: "http://key:s3cr3t-pw@minio:99999", S3_BUCKET: "b", S3_REGION: "r", S3_ACCESS_KEY_ID: "k", S3_SECRET_ACCESS_KEY: "s" }, "S3_ENDPOINT"],
    [{ ...cluster, NATS_URL: "nats://user:s3cr3t@pw@nats:99999" }, "NATS_URL"],
  ];
  for (const [env, name] of cases) {
    let message = "";
    try {
      loadConfig([], env);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toStartWith(`${name}: `);
    expect(message).toContain("is not a valid URL");
    expect(message).toContain("***@");
    expect(message).not.toContain("s3cr3t");
  }
});

test("TRUSTED_PROXIES: addresses and CIDR ranges of both families, comma-separated", () => {
  expect(loadConfig([], { TRUSTED_PROXIES: " 10.0.0.0/8, 127.0.0.1,fd00::/8 ,::1" }).config.trustedProxies).toEqual(["10.0.0.0/8", "127.0.0.1", "fd00::/8", "::1"]);
  expect(loadConfig([], {}).config.trustedProxies).toEqual([]);
});

test("attachment settings: storage drivers, limits and TTLs", () => {
  const s3 = { STORAGE: "s3", S3_ENDPOINT: "http://127.0.0.1:9000", S3_BUCKET: "b", S3_REGION: "r", S3_ACCESS_KEY_ID: "k", S3_SECRET_ACCESS_KEY: "s" };
  expect(loadConfig([], s3).config.storage).toEqual({ kind: "s3", endpoint: "http://127.0.0.1:9000", bucket: "b", region: "r", accessKeyId: "k", secretAccessKey: "s" });
  expect(loadConfig([], {}).config.storage).toEqual({ kind: "local" });
  const c = loadConfig([], { MAX_UPLOAD_BYTES: "1048576", UPLOAD_QUOTA_BYTES: "0", UPLOADS_PER_MINUTE: "5", UPLOAD_ORPHAN_TTL: "2h", ATTACHMENT_URL_TTL: "10m" }).config;
  expect([c.maxUploadBytes, c.uploadQuotaBytes, c.uploadsPerMinute, c.uploadOrphanTtlSeconds, c.attachmentUrlTtlSeconds]).toEqual([1048576, 0, 5, 7200, 600]);
  expect([DEFAULTS.maxUploadBytes, DEFAULTS.uploadQuotaBytes, DEFAULTS.uploadsPerMinute, DEFAULTS.uploadOrphanTtlSeconds, DEFAULTS.attachmentUrlTtlSeconds]).toEqual([25 * 1024 * 1024, 1024 ** 3, 30, 86400, 3600]);
});

describe("the CLI", () => {
  test("a bad setting prints one line naming it and exits 2", () => {
    for (const [args, env, name] of [[[], { PORT: "abc" }, "PORT"], [["--frobnicate"], {}, "--frobnicate"], [[], { JWT_TTL: "never" }, "JWT_TTL"], [[], { CONTACT_POLICY: "anyone" }, "CONTACT_POLICY"]] as const) {
      const r = run([...args], env);
      expect(r.code).toBe(2);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toContain(name);
      expect(r.err).not.toContain("    at ");
    }
  });

  test("a bad value is shown on one line, escaped, and a URL's password is not shown", () => {
    const port = run([], { PORT: "8\nx" });
    expect(port.code).toBe(2);
    expect(port.err.trim().split("\n")).toEqual(['parley: PORT: "8\\nx" is not a whole number']);
    const redis = run([], { DATABASE_URL: "postgres://pg:5432/parley", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://nats:4222", REDIS_URL: "http://user:S3CRETPW@h:6379" });
    expect(redis.code).toBe(2);
    expect(redis.err).toContain("REDIS_URL");
    expect(redis.err).not.toContain("S3CRETPW");
  });

  test("backup in cluster mode is refused (parley.db is not the data there), exit 2, nothing written", () => {
    const dir = tempDir();
    const target = join(tempDir(), "copy.db");
    const r = run(["backup", target], { DATA_DIR: dir, DATABASE_URL: "postgres://127.0.0.1:5432/parley", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://127.0.0.1:4222" });
    expect(r.code).toBe(2);
    expect(r.err).toContain("pg_dump");
    expect(existsSync(target)).toBe(false);
  });

  test("--help and --version whatever the environment (a bad PORT does not hide them)", () => {
    expect(run(["--help"], { PORT: "abc" }).code).toBe(0);
    expect(run(["--version"], { PORT: "abc" }).out).toMatch(/^parley \d+\.\d+\.\d+/);
    const help = run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("backup <file>");
    expect(help.out).toMatch(/new-epoch .*\n(.*\n)*.*Stop\s+every node first/);
    expect(help.out).toContain("CONTACT_POLICY");
    expect(run(["--version"]).out).toMatch(/^parley \d+\.\d+\.\d+/);
  });

  test("healthcheck exits 0 against a running server and 1 when nothing listens", async () => {
    const server = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: tempDir() });
    const port = new URL(server.base).port;
    expect(run(["healthcheck"], { PORT: port }).code).toBe(0);
    expect(await server.stop()).toBe(0);
    const down = run(["healthcheck"], { PORT: port });
    expect(down.code).toBe(1);
    expect(down.err).toContain("/health");
  });

  test("a second server on a taken port exits 1 naming HOST and PORT; the first keeps serving alone", async () => {
    const first = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: tempDir() });
    try {
      const port = new URL(first.base).port;
      // Async with a deadline: a second server that does start must fail this test, not hang it.
      const proc = Bun.spawn([process.execPath, "src/index.ts", "serve"], { env: { ...process.env, DATA_DIR: tempDir(), PORT: port, HOST: "127.0.0.1" }, stdout: "ignore", stderr: "pipe" });
      const deadline = setTimeout(() => proc.kill(), 5000);
      const second = { code: await proc.exited, err: await new Response(proc.stderr).text() };
      clearTimeout(deadline);
      expect(second.code).toBe(1);
      expect(second.err.trim().split("\n")).toHaveLength(1);
      expect(second.err).toContain(`cannot listen on 127.0.0.1:${port} (HOST, PORT)`);
      // Every request reaches the first server (with SO_REUSEPORT they were split between two).
      const { token } = await registerAndLogin(first.base, "only_one");
      const answers = await Promise.all(Array.from({ length: 12 }, () => fetch(`${first.base}/api/users/me`, { headers: { authorization: `Bearer ${token}` } })));
      expect(answers.map((r) => r.status)).toEqual(Array(12).fill(200));
    } finally {
      await first.stop();
    }
  });

  test("a second server on the same DATA_DIR exits 1 saying so; once the first has stopped (even by kill -9), it starts", async () => {
    const dataDir = tempDir();
    const first = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: dataDir });
    let firstStopped = false;
    try {
      const proc = Bun.spawn([process.execPath, "src/index.ts", "serve"], { env: { ...process.env, DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1" }, stdout: "ignore", stderr: "pipe" });
      const deadline = setTimeout(() => proc.kill(), 5000);
      const second = { code: await proc.exited, err: await new Response(proc.stderr).text() };
      clearTimeout(deadline);
      expect(second.code).toBe(1);
      expect(second.err.trim().split("\n")).toHaveLength(1);
      expect(second.err).toContain(`DATA_DIR ${dataDir} is in use by another Parley server`);
      // The first goes on serving; killed without a word, it leaves nothing that stops the next.
      expect((await registerAndLogin(first.base, "first_only")).status).toBe(200);
      first.proc.kill(9);
      await first.proc.exited;
      firstStopped = true;
      const third = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: dataDir });
      const login = await fetch(`${third.base}/api/auth/login`, { method: "POST", body: JSON.stringify({ username: "first_only", password: "password123" }) });
      expect(login.status).toBe(200);
      expect(await third.stop()).toBe(0);
    } finally {
      if (!firstStopped) await first.stop();
    }
  });

  test("a DATA_DIR/jwt-secret that cannot be read (a directory) is one line naming it, exit 2 (it was a bare EISDIR, exit 1)", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "jwt-secret"));
    const r = run(["migrate"], { DATA_DIR: dir });
    expect(r.code).toBe(0); // migrate needs no secret
    const s = run(["serve", "--port", "0"], { DATA_DIR: dir });
    expect(s.code).toBe(2);
    expect(s.err.trim().split("\n")).toHaveLength(1);
    expect(s.err).toContain(`${join(dir, "jwt-secret")}: cannot be read (EISDIR)`);
  });

  test("migrate with DATABASE_URL unreachable names DATABASE_URL, exit 1", () => {
    const r = run(["migrate"], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/parley", JWT_SECRET: "x".repeat(32), NATS_URL: "nats://127.0.0.1:4222", DATA_DIR: "/nonexistent-parley-dir" });
    expect(r.code).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("cannot use PostgreSQL (DATABASE_URL)");
  });

  test("a DATA_DIR that cannot be a directory is one line naming DATA_DIR, exit 2", () => {
    const file = join(tempDir(), "a-file");
    writeFileSync(file, "x");
    for (const dir of [file, join(file, "below")]) {
      for (const command of ["serve", "migrate"]) {
        const r = run([command], { DATA_DIR: dir });
        expect(r.code).toBe(2);
        expect(r.err.trim().split("\n")).toHaveLength(1);
        expect(r.err).toContain("DATA_DIR");
      }
    }
  });

  test("a parley.db this user cannot write (left by a first run as root) is one line naming it, exit 2", () => {
    // Root writes every file whatever its mode: the server must run as another user.
    if (process.getuid?.() !== 0 || !Bun.which("runuser")) {
      console.log("skipped: a parley.db another user owns: needs root and runuser to run the server as nobody");
      return;
    }
    const dir = tempDir();
    expect(run(["migrate"], { DATA_DIR: dir }).code).toBe(0); // as root: parley.db is root's, mode 0644
    chmodSync(dir, 0o777);
    const p = Bun.spawnSync(["runuser", "-u", "nobody", "--", process.execPath, "src/index.ts", "serve"], { env: { ...process.env, DATA_DIR: dir, PORT: "0", HOST: "127.0.0.1" }, timeout: 15_000 });
    const err = p.stderr.toString();
    expect(p.exitCode).toBe(2);
    expect(err.trim().split("\n")).toHaveLength(1);
    expect(err).toContain(`DATA_DIR: ${join(dir, "parley.db")} is not writable by this user`);
  });

  // Found by an acceptance pass (2026-12-02): it said "no database at …" of a database it could not read.
  test("backup of a DATA_DIR this user may not read says so (not 'no database'), exit 1", () => {
    if (process.getuid?.() !== 0 || !Bun.which("runuser")) {
      console.log("skipped: a DATA_DIR another user cannot read: needs root and runuser to run as nobody");
      return;
    }
    const dir = tempDir();
    expect(run(["migrate"], { DATA_DIR: dir }).code).toBe(0);
    chmodSync(dir, 0o700); // root's alone
    const target = join(tempDir(), "copy.db");
    const p = Bun.spawnSync(["runuser", "-u", "nobody", "--", process.execPath, "src/index.ts", "backup", target], { env: { ...process.env, DATA_DIR: dir }, timeout: 15_000 });
    const err = p.stderr.toString();
    expect(p.exitCode).toBe(1);
    expect(err).toBe(`parley: cannot read ${join(dir, "parley.db")}: permission denied (run as the user the server runs as)\n`);
    // A folder it may read, holding a database it may not.
    chmodSync(dir, 0o755);
    chmodSync(join(dir, "parley.db"), 0o600);
    const q = Bun.spawnSync(["runuser", "-u", "nobody", "--", process.execPath, "src/index.ts", "backup", target], { env: { ...process.env, DATA_DIR: dir }, timeout: 15_000 });
    expect([q.exitCode, q.stderr.toString()]).toEqual([1, `parley: cannot read ${join(dir, "parley.db")}: permission denied (run as the user the server runs as)\n`]);
  });

  test("new-epoch on DATA_DIR's parley.db: prints the new epoch, which the database then holds", () => {
    const dir = tempDir();
    expect(run(["migrate"], { DATA_DIR: dir }).code).toBe(0);
    const epochIn = () => epochOf(dir);
    const old = epochIn();
    const r = run(["new-epoch"], { DATA_DIR: dir });
    expect(r).toMatchObject({ code: 0, err: "" });
    expect(r.out).toBe(`new event-log epoch ${epochIn()} (${join(dir, "parley.db")})\n`);
    expect(epochIn()).toMatch(/^[0-9a-f]{32}$/);
    expect(epochIn()).not.toBe(old);
  });

  test("new-epoch on the DATA_DIR of a running server: refused (exit 1), the epoch unchanged; once it has stopped, it runs", async () => {
    const dataDir = tempDir();
    const server = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: dataDir });
    try {
      const epochIn = () => epochOf(dataDir);
      const before = epochIn();
      const r = run(["new-epoch"], { DATA_DIR: dataDir });
      expect(r.code).toBe(1);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toContain(`DATA_DIR ${dataDir} is in use by another Parley server`);
      expect(r.err).toContain("stop it first");
      // The database keeps its epoch (it was changed under the server, which went on with the old one).
      expect(epochIn()).toBe(before);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    expect(run(["new-epoch"], { DATA_DIR: dataDir }).code).toBe(0);
  });

  test("new-epoch: bad input is one line and a non-zero exit, never a stack trace", async () => {
    const oneLine = (r: ReturnType<typeof run>, code: number, text: string) => {
      expect(r.code).toBe(code);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toContain(text);
      expect(r.err).not.toContain("    at ");
    };
    oneLine(run(["new-epoch", "--force"]), 2, "unknown flag --force");
    oneLine(run(["new-epoch", "now"]), 2, "new-epoch takes no arguments");
    const dir = tempDir();
    oneLine(run(["new-epoch"], { DATA_DIR: dir }), 1, `no database at ${join(dir, "parley.db")} (check --data-dir)`);
    writeFileSync(join(dir, "parley.db"), "not a database at all");
    oneLine(run(["new-epoch"], { DATA_DIR: dir }), 1, "file is not a database");
    // An SQLite database that is not Parley's is named, and left as it was.
    const other = join(tempDir(), "parley.db");
    const db = new Database(other);
    db.run("CREATE TABLE notes (text)");
    db.close();
    const bytes = readFileSync(other);
    oneLine(run(["new-epoch"], { DATA_DIR: join(other, "..") }), 1, `${other} has no event-log epoch (no meta table): not a Parley database`);
    expect(readFileSync(other)).toEqual(bytes);

    // Cluster mode: the nodes' settings, DATABASE_URL where nothing listens (port 1).
    const cluster = (url: string) => ({ DATABASE_URL: url, NATS_URL: "nats://127.0.0.1:4222", JWT_SECRET: "x".repeat(32) });
    oneLine(run(["new-epoch"], cluster("postgres://postgres@127.0.0.1:1/parley")), 1, "cannot use PostgreSQL (DATABASE_URL): ");
    oneLine(run(["new-epoch"], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/parley" }), 2, "DATABASE_URL needs NATS_URL");
    if (!(await servicesReady("new-epoch on PostgreSQL without Parley's tables", { pg: true }))) return;
    const missing = new URL(PG_ADMIN_URL);
    missing.pathname = `/parley_no_such_database_${process.pid}`;
    oneLine(run(["new-epoch"], cluster(missing.toString())), 1, `cannot use PostgreSQL (DATABASE_URL): database "parley_no_such_database_${process.pid}" does not exist`);
    const empty = await createTestDatabase("parley_test");
    try {
      oneLine(run(["new-epoch"], cluster(empty.url)), 1, "DATABASE_URL's database has no event-log epoch (no meta table): not a Parley database, or its migrations were not applied (parley migrate)");
    } finally {
      await empty.drop();
    }
  });

  test("migrate creates the data directory and the database, and is idempotent", () => {
    const dir = join(tempDir(), "nested", "data");
    expect(run(["migrate"], { DATA_DIR: dir }).code).toBe(0);
    expect(existsSync(join(dir, "parley.db"))).toBe(true);
    // Only its user reaches what it holds (messages, password hashes).
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(run(["migrate"], { DATA_DIR: dir }).code).toBe(0);
    const db = new Database(join(dir, "parley.db"));
    expect((db.query("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode).toBe("wal");
    db.close();
  });

  test("a DATA_DIR made beforehand that other users can read is left as it is, and said once at start; one of its own is not", async () => {
    const open = tempDir();
    chmodSync(open, 0o755);
    const mine = join(tempDir(), "data");
    for (const [dir, warned] of [[open, true], [mine, false]] as const) {
      const server = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: dir });
      await waitFor(() => server.lines.some((l) => l.msg === "listening"));
      await Bun.sleep(100);
      expect(await server.stop()).toBe(0);
      const said = server.lines.filter((l) => /chmod 700/.test(l.msg));
      expect(said).toEqual(warned ? [expect.objectContaining({ level: "warn", mode: "0755", data_dir: dir })] : []);
      expect(statSync(dir).mode & 0o777).toBe(warned ? 0o755 : 0o700);
    }
  });

  test("serve runs with MIMALLOC_PURGE_HOLES=0: the same process re-executed with its runtime flags and arguments; an operator's value is kept", async () => {
    const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, -1);
    const cmd = [process.execPath, "--smol", "src/index.ts", "serve", "--log-level=info"];
    // Only what is given here (the test runner's own environment might carry the variable).
    // LOG_LEVEL=warn: the "listening" line it waits for comes only if --log-level=info survived.
    const server = await spawnServer(cmd, { DATA_DIR: tempDir(), PATH: process.env.PATH!, LOG_LEVEL: "warn" }, undefined, { inherit: false });
    expect(environ(server.proc.pid)).toContain("MIMALLOC_PURGE_HOLES=0");
    // The pid we started (replaced, not forked) serves, with the command line it was given.
    expect(cmdline(server.proc.pid)).toEqual(cmd);
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
    expect(await server.stop()).toBe(0);

    const chosen = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: tempDir(), PATH: process.env.PATH!, MIMALLOC_PURGE_HOLES: "1" }, undefined, { inherit: false });
    expect(environ(chosen.proc.pid)).toContain("MIMALLOC_PURGE_HOLES=1");
    expect(await chosen.stop()).toBe(0);
  });

  test("under nohup (SIGHUP ignored) a SIGHUP leaves the server running; SIGTERM stops it", async () => {
    const server = await spawnServer(["nohup", process.execPath, "src/index.ts"], { DATA_DIR: tempDir() });
    server.proc.kill("SIGHUP");
    await Bun.sleep(300);
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
    expect(server.lines.some((l) => l.signal === "SIGHUP")).toBe(false);
    expect(await server.stop()).toBe(0);
  });

  test("SIGTERM finishes the in-flight request, closes the database and exits 0", async () => {
    // A realistic Argon2 cost keeps the registration in flight when the signal lands.
    const server = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: tempDir(), ARGON2_MEMORY_KIB: "262144" });
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.proc.pid}/status`, "utf8"))?.[1] ?? 0);
    const idle = rss();
    const pending = fetch(`${server.base}/api/auth/register`, { method: "POST", body: JSON.stringify({ username: "inflight", password: "password123" }) });
    // In flight for sure once Argon2 holds its 256 MiB (a fixed sleep lost the race on a busy machine).
    const deadline = Date.now() + 10_000;
    while (rss() - idle < 128 * 1024 && Date.now() < deadline) await Bun.sleep(5);
    const started = Date.now();
    const code = await server.stop("SIGTERM");
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await pending).status).toBe(201);
    expect(server.lines.some((l) => l.msg === "stopped")).toBe(true);
  });

  test("SIGTERM with a client that never finishes its request: its connection is closed after the grace, the database closed, exit 0", async () => {
    const server = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: tempDir() });
    const { port } = new URL(server.base);
    let cut = false;
    const sock = await Bun.connect({ hostname: "127.0.0.1", port: Number(port), socket: { data() {}, close() { cut = true; } } });
    sock.write("GET /health HTTP/1.1\r\nHost: x\r\n"); // the headers never end
    await Bun.sleep(100);
    const started = Date.now();
    expect(await server.stop("SIGTERM")).toBe(0);
    expect(Date.now() - started).toBeLessThan(STOP_GRACE_MS + 2000);
    expect(cut).toBe(true);
    expect(server.lines.some((l) => l.msg === "stopped")).toBe(true);
  });

  test("SIGINT exits 0 too, and the server is really serving before", async () => {
    const server = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: tempDir() });
    expect((await registerAndLogin(server.base, "sigint_user")).status).toBe(200);
    expect(await server.stop("SIGINT")).toBe(0);
  });
});
