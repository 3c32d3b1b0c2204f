/**
 * A backup of a test server's data, restored into a new data directory, on the engine the
 * tests run on. SQLite: `parley backup` (a copy of parley.db with a new epoch) and the
 * jwt-secret beside it. PostgreSQL: a pg_dump of the server's database into a new one,
 * stamped with a new epoch as `parley backup` stamps its copy (cluster mode backs up with
 * PostgreSQL's own tools; a restored copy needs a new epoch all the same, PROTOCOL §7.5).
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
    const db = new SQL({ url: copy.url, max: 1 });
    const [{ value }] = await db`UPDATE meta SET value = md5(random()::text || clock_timestamp()::text) WHERE key = 'epoch' RETURNING value`;
    await db.close();
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
