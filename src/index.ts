#!/usr/bin/env bun
/**
 * The CLI: `parley [serve]`, `parley migrate`, `parley backup <file>`, `parley new-epoch`,
 * `parley healthcheck`, `--help`, `--version`.
 * Configuration errors print one line and exit 2.
 */
// First: it may replace this process (same pid) with the allocator's settings before the rest loads.
import "./platform/allocator-first";
import { accessSync, chmodSync, constants, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { Database } from "bun:sqlite";
import { dirname, resolve } from "node:path";
import { ConfigError, USAGE, ensureDataDir, loadConfig, type Config } from "./config";
import { createApp, databaseFile } from "./app";
import { openDatabase } from "./db/client";
import { lockDataDir, type DataDirLock } from "./db/lock";
import { migrate } from "./db/migrate";
import { openPostgresParts } from "./platform/postgres/open";
import { describeFailure } from "./platform/postgres/errors";
import { migratePostgres, openPostgres } from "./platform/postgres/client";
import { storageFullCode } from "./db/storage";

import { NoEpochError, stampNewEpoch } from "./events/epoch";
import { PgEventLog } from "./platform/postgres/event-log";
import { createLogger } from "./log";
import { VERSION } from "./version";
import { backupFiles, backupFilesDir } from "./files/backup";

function fail(message: string, code: number): never {
  process.stderr.write(`parley: ${message}\n`);
  process.exit(code);
}

/** Whether this process was started with SIGHUP ignored (`nohup`): Linux's SigIgn mask, bit 0. */
function sighupIgnored(): boolean {
  try {
    const mask = /^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return mask !== undefined && (BigInt(`0x${mask}`) & 1n) === 1n;
  } catch {
    return false; // no /proc: handle it
  }
}

async function serve(config: Config) {
  // Cluster mode (DATABASE_URL): PostgreSQL is reached and migrated before the app is built.
  const log = createLogger(config.logLevel);
  const postgres = config.databaseUrl ? await openPostgresParts(config, log).catch((e) => fail(`cannot use PostgreSQL (DATABASE_URL): ${describeFailure(e)}`, 1)) : undefined;
  const { app, ctx, stop } = createApp(config, { log, postgres });
  try {
    app.listen({ port: config.port, hostname: config.host });
  } catch (e) {
    // No stop(): its final checkpoint would wait on another server's writers to this DATA_DIR.
    // Bun reports EADDRINUSE for an address this machine does not have, too.
    const reason = (e as NodeJS.ErrnoException).code === "EADDRINUSE" ? "the port is in use, or the address is not one of this machine's" : e instanceof Error ? e.message : String(e);
    fail(`cannot listen on ${config.host}:${config.port} (HOST, PORT): ${reason}`, 1);
  }
  ctx.log.info({ host: config.host, port: app.server?.port, data_dir: resolve(config.dataDir), version: VERSION }, "listening");
  // One made by the server is 0700; one made beforehand is left as it is (not ours to chmod), but said.
  const mode = statSync(config.dataDir).mode & 0o777;
  if (mode & 0o077) ctx.log.warn({ data_dir: resolve(config.dataDir), mode: `0${mode.toString(8)}` }, "DATA_DIR can be read by other users of this machine (it holds messages and password hashes): chmod 700 it");

  let stopping = false;
  const shutdown = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    ctx.log.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      ctx.log.error("shutdown took longer than 10 s; exiting");
      process.exit(1);
    }, 9500);
    force.unref();
    await stop();
    ctx.log.info("stopped");
    ctx.log.flush();
    process.exit(code);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // The terminal it was started from closing: the same clean stop (Bun's default ends at
  // once). Not under `nohup`, which asks for SIGHUP to be ignored: a handler would undo that.
  if (!sighupIgnored()) process.on("SIGHUP", () => void shutdown("SIGHUP"));
  // `parley new-epoch` ran under this node (it should have been stopped): it would go on
  // naming the old epoch, and resume old positions on what may be a restored log. It stops,
  // exit 1, for its supervisor to start it again on the new epoch.
  postgres?.events.onEpochChange((epoch) => {
    ctx.log.fatal({ epoch_was: postgres.events.epoch, epoch }, "the event log has a new epoch (parley new-epoch ran while this node was running): stopping, start it again");
    void shutdown("new-epoch", 1);
  });
}

async function runMigrate(config: Config) {
  if (config.databaseUrl) {
    const db = openPostgres(config.databaseUrl, 1);
    const applied = await migratePostgres(db).catch((e) => fail(`cannot use PostgreSQL (DATABASE_URL): ${describeFailure(e)}`, 1));
    await db.$client.close();
    createLogger(config.logLevel).info({ applied, database: "postgres" }, "migrations applied");
    return;
  }
  ensureDataDir(config.dataDir);
  const db = openDatabase(databaseFile(config.dataDir));
  const applied = migrate(db);
  db.$client.close();
  createLogger(config.logLevel).info({ applied }, "migrations applied");
}

/** Exits unless `file` is there: "no database" only when there is none (a DATA_DIR this user may not read said so too). */
function needDatabase(file: string) {
  try {
    statSync(file);
    accessSync(file, constants.R_OK); // a parley.db of another user's in a folder this one may read
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") fail(`cannot read ${file}: permission denied (run as the user the server runs as)`, 1);
    fail(`no database at ${file} (check --data-dir)`, 1);
  }
}

function backup(config: Config, file: string) {
  // parley.db is not the data in cluster mode: a copy of a stale one would pass for a backup.
  if (config.databaseUrl)
    fail("backup copies a single server's DATA_DIR/parley.db; in cluster mode (DATABASE_URL) back up PostgreSQL with its own tools (pg_dump) and run parley new-epoch after a restore (README: Restoring a cluster's database)", 2);
  const source = databaseFile(config.dataDir);
  needDatabase(source);
  const target = resolve(file);
  if (existsSync(target)) fail(`${target} already exists; choose a new file`, 1);
  if (existsSync(backupFilesDir(target))) fail(`${backupFilesDir(target)} already exists; choose a new file`, 1);
  const db = openDatabase(source);
  let epoch: string;
  let files: ReturnType<typeof backupFiles>;
  try {
    // VACUUM INTO reads one consistent snapshot, so it is safe while the server writes.
    db.$client.run("VACUUM INTO ?", [target]);
    // Messages and password hashes: for the server's user alone, as DATA_DIR is (made 0700).
    chmodSync(target, 0o600);
    // A server restored from the copy numbers new events from the copy's position again:
    // another timeline, so another epoch (clients that saw the live one start over).
    // Opened plainly (not in WAL mode, as VACUUM INTO left it): the backup stays one file.
    const copy = new Database(target, { strict: true });
    try {
      epoch = stampNewEpoch(copy);
    } finally {
      copy.close();
    }
    // Then the files that snapshot names (they are never changed, only added and removed).
    files = backupFiles(config, target);
  } catch (e) {
    // Nothing half-written is left to be mistaken for a backup (or to refuse the next try).
    for (const part of [target, `${target}-journal`, backupFilesDir(target)]) rmSync(part, { recursive: true, force: true });
    const full = storageFullCode(e);
    fail(full ? `the disk is full (${full}) where the backup goes (${dirname(target)}): nothing was written; free some space there or choose another place` : `cannot write the backup ${target}: ${e instanceof Error ? e.message : e}; nothing was written`, 1);
  } finally {
    db.$client.close();
  }
  process.stdout.write(`backup written to ${target} (event-log epoch ${epoch})\n`);
  if (files) process.stdout.write(`attachments: ${files.copied} files in ${files.dir}${files.missing ? ` (${files.missing} removed since as orphans)` : ""}\n`);
  else process.stdout.write("attachments: STORAGE=s3, the files stay in the bucket; back it up with the store's tools\n");
}

/**
 * `parley new-epoch`: after a database was restored by other means than `parley backup`
 * (pg_restore, point-in-time recovery, a disk snapshot), a new epoch, so that clients
 * holding a position of the old timeline start over (PROTOCOL §7.5). Run with every node
 * stopped; seqs and events are left as they are.
 */
async function newEpoch(config: Config) {
  if (config.databaseUrl) {
    const db = openPostgres(config.databaseUrl, 1);
    const epoch = await PgEventLog.stampNewEpoch(db.$client, "DATABASE_URL's database").catch((e) =>
      fail(e instanceof NoEpochError ? e.message : `cannot use PostgreSQL (DATABASE_URL): ${describeFailure(e)}`, 1),
    );
    await db.$client.close();
    process.stdout.write(`new event-log epoch ${epoch} (PostgreSQL, DATABASE_URL)\n`);
    return;
  }
  const file = databaseFile(config.dataDir);
  needDatabase(file);
  // Not under a running server: its clients' positions would name an epoch the database no
  // longer has, while it goes on numbering events of the old one (it did so, and said ok).
  let lock: DataDirLock;
  try {
    lock = lockDataDir(config.dataDir);
  } catch (e) {
    if (storageFullCode(e)) throw e;
    fail(`${e instanceof Error ? e.message : e}: stop it first (new-epoch is for a stopped server)`, 1);
  }
  let epoch: string;
  try {
    // Opened plainly: a file that is not Parley's is left as it was (openDatabase would make it WAL).
    const db = new Database(file, { strict: true });
    db.run("PRAGMA busy_timeout = 5000");
    epoch = stampNewEpoch(db, file);
    db.close();
  } catch (e) {
    if (e instanceof NoEpochError || storageFullCode(e)) throw e;
    fail(`cannot use ${file}: ${e instanceof Error ? e.message : e}`, 1);
  } finally {
    lock.release();
  }
  process.stdout.write(`new event-log epoch ${epoch} (${file})\n`);
}

async function healthcheck(config: Config) {
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  try {
    // An IPv6 literal goes in brackets in a URL.
    const res = await fetch(`http://${host.includes(":") ? `[${host}]` : host}:${config.port}/health`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) fail(`/health answered ${res.status}`, 1);
  } catch (e) {
    fail(`/health unreachable: ${e instanceof Error ? e.message : e}`, 1);
  }
}

let dataDir: string | undefined;
try {
  const { command, config } = loadConfig(process.argv.slice(2), Bun.env);
  dataDir = config.dataDir;
  switch (command.name) {
    case "help": process.stdout.write(USAGE + "\n"); break;
    case "version": process.stdout.write(`parley ${VERSION}\n`); break;
    case "migrate": await runMigrate(config); break;
    case "backup": backup(config, command.file); break;
    case "new-epoch": await newEpoch(config); break;
    case "healthcheck": await healthcheck(config); break;
    case "serve": await serve(config); break;
  }
} catch (e) {
  if (e instanceof ConfigError) fail(e.message, 2);
  const full = storageFullCode(e);
  if (full === "53100") fail("PostgreSQL's disk is full (disk_full): free some space there and try again", 1);
  if (full) fail(`the disk is full (${full}): free some space and try again (DATA_DIR ${resolve(dataDir ?? ".")})`, 1);
  fail(e instanceof Error ? e.message : String(e), 1);
}
