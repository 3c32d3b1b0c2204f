/**
 * A backup of a test server's data, restored into a new data directory, on the engine the
 * tests run on. SQLite: `parley backup` (a copy of parley.db with a new epoch) and the
 * jwt-secret beside it. PostgreSQL: a pg_dump of the server's database restored into a new
 * one, then `parley new-epoch` on it, as an operator restores a cluster's data (README
 * "Restoring a cluster's database": PostgreSQL's own tools keep the old epoch, PROTOCOL §7.5).
 */
import { Database } from "bun:sqlite";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { SQL } from "bun";
import { tempDir, TEST_BACKEND, type TestServer } from "./helpers";
import { adoptTestDatabase, dumpTestDatabase } from "./services";

export interface Backup {
  /** The epoch of the copy: new, not the live server's. */
  epoch: string;
  /** Puts the copy where a server started on the returned data directory finds it. */
  restore(): string;
}

export async function backup(server: TestServer): Promise<Backup> {
  if (TEST_BACKEND === "postgres") {
    const copy = await dumpTestDatabase(server.dataDir);
    const env = { DATABASE_URL: copy.url, NATS_URL: "nats://127.0.0.1:4222", JWT_SECRET: "a-test-secret-of-at-least-32-characters" };
    const run = Bun.spawnSync([process.execPath, "src/index.ts", "new-epoch"], { env: { ...process.env, ...env } });
    if (run.exitCode !== 0) throw new Error(`parley new-epoch: exit ${run.exitCode}: ${run.stderr.toString()}`);
    const db = new SQL({ url: copy.url, max: 1 });
    const [{ value }] = await db`SELECT value FROM meta WHERE key = 'epoch'`;
    await db.close();
    if (!run.stdout.toString().includes(value)) throw new Error("parley new-epoch did not print the new epoch");
    return {
      epoch: value,
      restore() {
        const dir = tempDir();
        adoptTestDatabase(dir, copy);
        return dir;
      },
    };
  }
  const file = join(tempDir(), "backup.db");
  const run = Bun.spawnSync([process.execPath, "src/index.ts", "backup", file], { env: { ...process.env, DATA_DIR: server.dataDir } });
  if (run.exitCode !== 0) throw new Error(`parley backup: exit ${run.exitCode}: ${run.stderr.toString()}`);
  const copy = new Database(file, { readonly: true });
  const { value: epoch } = copy.query("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string };
  copy.close();
  if (!run.stdout.toString().includes(epoch)) throw new Error("parley backup did not print the copy's epoch");
  return {
    epoch,
    restore() {
      const dir = tempDir();
      mkdirSync(dir, { recursive: true });
      copyFileSync(file, join(dir, "parley.db"));
      copyFileSync(join(server.dataDir, "jwt-secret"), join(dir, "jwt-secret"));
      return dir;
    },
  };
}
