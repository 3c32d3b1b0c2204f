/**
 * Configuration: environment variables and command-line flags become one typed,
 * frozen Config. Every bad value is a ConfigError naming the setting; the CLI prints
 * it on one line and exits with code 2.
 */
import { accessSync, constants, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { isIP } from "node:net";
import { parseProxyEntry } from "./http/client-address";

export class ConfigError extends Error {}

/** Creates the data directory if needed; a path that cannot be one is a ConfigError naming DATA_DIR. */
export function ensureDataDir(dir: string) {
  try {
    // Made for this user alone: it holds messages and password hashes (SQLite makes its files 0644).
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`DATA_DIR: cannot use "${dir}" as the data directory (${code ?? (e as Error).message})`);
  }
  // The databases already there must be writable too: a parley.db left by another user (a
  // first run as root) opened read-only, and the server answered every write with 500.
  for (const name of ["parley.db", "parley.db-wal", "parley.db-shm", "search.db", "search.db-wal", "search.db-shm", "parley.lock"]) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    try {
      accessSync(file, constants.R_OK | constants.W_OK);
    } catch (e) {
      throw new ConfigError(`DATA_DIR: ${file} is not writable by this user (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
}

/** Who may put whom into a conversation (PROTOCOL §7.2). */
export type ContactPolicy = "friends" | "open";
const CONTACT_POLICIES: readonly ContactPolicy[] = ["friends", "open"];

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** null: generated on first start and kept in the data directory. */
  jwtSecret: string | null;
  /** Cluster mode (PROTOCOL §11): PostgreSQL holds the data instead of DATA_DIR/parley.db. */
  databaseUrl: string | null;
  /** Cluster mode: connections of this node's pool to PostgreSQL (the event log's follower takes one more). */
  databasePoolSize: number;
  /** Reverse proxies / load balancers whose X-Forwarded-For names the client (IPs or CIDR ranges). */
  trustedProxies: readonly string[];
  jwtTtlSeconds: number;
  logLevel: LogLevel;
  /** Argon2id memory cost in KiB (OWASP's minimum recommendation by default). */
  argon2MemoryKib: number;
  /** Failed logins allowed per username, and per client address, per window. */
  loginMaxFailures: number;
  loginMaxFailuresPerAddress: number;
  loginWindowSeconds: number;
  /** Account registrations per client address per hour (token bucket, burst of the same size). */
  registrationsPerAddress: number;
  /** `friends`: direct conversations and new group members need an accepted friendship; `open`: anyone. */
  contactPolicy: ContactPolicy;
  maxGroupMembers: number;
  eventRetentionSeconds: number;
  typingTtlMs: number;
  presenceGraceMs: number;
  heartbeatIntervalMs: number;
  /**
   * Cluster mode: how often each node re-reads, as a safety net, the presence of the users
   * its sockets follow (presence frames between nodes may be lost); 0: only after NATS
   * reconnects.
   */
  presenceResyncIntervalMs: number;
  maxConnectionsPerUser: number;
  maxBufferedBytes: number;
  /** Client frames per minute per socket (token bucket, burst of the same size). */
  wsFramesPerMinute: number;
  /** REST message sends per minute per user. */
  sendsPerMinute: number;
  /** Other REST writes (groups, members, profile, friendships, tickets) per minute per user. */
  writesPerMinute: number;
  /** Searches per minute per user (a quarter of it at once); a 1–2 character search scans. */
  searchesPerMinute: number;
  /** How long a WebSocket ticket stays valid (the contract says 30 s; tests shorten it). */
  ticketTtlMs: number;
  /** How often sockets are checked for a buffer over maxBufferedBytes. */
  slowConsumerCheckMs: number;
  /** WAL size (in 4 KiB pages) past which the WAL is made to restart (see Checkpointer). */
  walRestartPages: number;
  /** How often the background worker checkpoints the WAL (tests shorten it). */
  checkpointIntervalMs: number;
  /** How long a change may wait in the search queue for a full batch (see SqliteSearchIndex; tests shorten it). */
  searchIndexLagMs: number;
  /** Where attachment bytes go (PROTOCOL §9). */
  storage: StorageConfig;
  maxUploadBytes: number;
  /** Bytes of attachments one user may keep (attached or not yet swept). */
  uploadQuotaBytes: number;
  uploadsPerMinute: number;
  /** How long a file no message holds is kept. */
  uploadOrphanTtlSeconds: number;
  /** How long a signed attachment link stays valid. */
  attachmentUrlTtlSeconds: number;
  /** Cluster mode (PROTOCOL §11): NATS carries ephemeral frames and log wake-ups between nodes. */
  natsUrl: string | null;
  /** Cluster mode, optional: Redis holds cluster-wide presence and limits (else PostgreSQL does). */
  redisUrl: string | null;
  /** Names the cluster's NATS subjects and Redis keys, so that clusters (and test runs) can share the services. */
  clusterName: string;
}

export type StorageConfig =
  | { kind: "local" }
  | { kind: "s3"; endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string };

export const DEFAULTS: Config = Object.freeze({
  port: 8080,
  host: "0.0.0.0",
  dataDir: "./data",
  jwtSecret: null,
  databaseUrl: null,
  databasePoolSize: 20,
  trustedProxies: [],
  jwtTtlSeconds: 7 * 86400,
  logLevel: "info",
  argon2MemoryKib: 19456,
  loginMaxFailures: 10,
  loginMaxFailuresPerAddress: 100,
  loginWindowSeconds: 900,
  registrationsPerAddress: 100,
  contactPolicy: "friends",
  maxGroupMembers: 1000,
  eventRetentionSeconds: 7 * 86400,
  typingTtlMs: 6000,
  presenceGraceMs: 5000,
  heartbeatIntervalMs: 30000,
  presenceResyncIntervalMs: 60000,
  maxConnectionsPerUser: 20,
  maxBufferedBytes: 4 * 1024 * 1024,
  wsFramesPerMinute: 60,
  sendsPerMinute: 6000,
  writesPerMinute: 600,
  searchesPerMinute: 120,
  ticketTtlMs: 30_000,
  slowConsumerCheckMs: 250,
  walRestartPages: 8192,
  checkpointIntervalMs: 100,
  searchIndexLagMs: 5000,
  storage: { kind: "local" } as StorageConfig,
  maxUploadBytes: 25 * 1024 * 1024,
  uploadQuotaBytes: 1024 * 1024 * 1024,
  uploadsPerMinute: 30,
  uploadOrphanTtlSeconds: 86400,
  attachmentUrlTtlSeconds: 3600,
  natsUrl: null,
  redisUrl: null,
  clusterName: "parley",
});

export type Command =
  | { name: "serve" }
  | { name: "migrate" }
  | { name: "backup"; file: string }
  | { name: "new-epoch" }
  | { name: "healthcheck" }
  | { name: "help" }
  | { name: "version" };

const MAX_DURATION_S = 100 * 365 * 86400;
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** A setting's value as an error shows it: quoted and escaped (a newline in it stays on the line), credentials of a URL hidden. */
export function shown(raw: string): string {
  let text = raw;
  try {
    const url = new URL(raw);
    if (url.password) {
      url.password = "***";
      text = url.toString();
    }
  } catch {
    // Unparseable (a port out of range, a stray character): whatever stands before the last
    // "@" after the scheme may hold a password, and is hidden whole.
    text = raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^]*@/i, "$1***@");
  }
  return JSON.stringify(text);
}

/** "7d", "12h", "30m", "45s", or a bare number of seconds → seconds. */
export function parseDuration(name: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$/.exec(raw.trim());
  if (!m) throw new ConfigError(`${name}: ${shown(raw)} is not a duration (examples: 3600, 45s, 30m, 12h, 7d)`);
  const seconds = Number(m[1]) * UNITS[m[2] ?? "s"]!;
  if (!(seconds >= 1)) throw new ConfigError(`${name}: ${shown(raw)} must be at least 1 second`);
  // Beyond this, dates derived from it (token expiry) stop being representable.
  if (seconds > MAX_DURATION_S) throw new ConfigError(`${name}: ${shown(raw)} is longer than 100 years`);
  return seconds;
}

function parseInteger(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name}: ${shown(raw)} is not a whole number`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(`${name}: ${n} is out of range (${min}–${max})`);
  return n;
}

function oneOf<T extends string>(name: string, raw: string, values: readonly T[]): T {
  if (!values.includes(raw as T)) throw new ConfigError(`${name}: ${shown(raw)} is not one of ${values.join(", ")}`);
  return raw as T;
}

/** Integer settings read from the environment: [env var, key, min, max]. */
const INTEGER_SETTINGS: [string, keyof Config, number, number][] = [
  ["ARGON2_MEMORY_KIB", "argon2MemoryKib", 1024, 4 * 1024 * 1024],
  ["LOGIN_MAX_FAILURES", "loginMaxFailures", 1, 1_000_000],
  ["LOGIN_MAX_FAILURES_PER_ADDRESS", "loginMaxFailuresPerAddress", 1, 1_000_000],
  ["LOGIN_WINDOW_SECONDS", "loginWindowSeconds", 1, 86400],
  ["REGISTRATIONS_PER_ADDRESS", "registrationsPerAddress", 1, 100_000_000],
  ["MAX_GROUP_MEMBERS", "maxGroupMembers", 2, 100_000],
  ["TYPING_TTL_MS", "typingTtlMs", 100, 600_000],
  ["PRESENCE_GRACE_MS", "presenceGraceMs", 0, 600_000],
  ["HEARTBEAT_INTERVAL_MS", "heartbeatIntervalMs", 1000, 3_600_000],
  ["PRESENCE_RESYNC_INTERVAL_MS", "presenceResyncIntervalMs", 0, 86_400_000],
  ["MAX_CONNECTIONS_PER_USER", "maxConnectionsPerUser", 1, 10_000],
  ["MAX_BUFFERED_BYTES", "maxBufferedBytes", 65536, 1024 * 1024 * 1024],
  ["WS_FRAMES_PER_MINUTE", "wsFramesPerMinute", 1, 1_000_000],
  ["SENDS_PER_MINUTE", "sendsPerMinute", 1, 100_000_000],
  ["WRITES_PER_MINUTE", "writesPerMinute", 1, 100_000_000],
  ["MAX_UPLOAD_BYTES", "maxUploadBytes", 1024, 4 * 1024 ** 3],
  ["UPLOAD_QUOTA_BYTES", "uploadQuotaBytes", 0, Number.MAX_SAFE_INTEGER],
  ["UPLOADS_PER_MINUTE", "uploadsPerMinute", 1, 1_000_000],
  ["SEARCHES_PER_MINUTE", "searchesPerMinute", 1, 100_000_000],
  ["DATABASE_POOL_SIZE", "databasePoolSize", 2, 1000],
];

const S3_SETTINGS = [["S3_ENDPOINT", "endpoint"], ["S3_BUCKET", "bucket"], ["S3_REGION", "region"], ["S3_ACCESS_KEY_ID", "accessKeyId"], ["S3_SECRET_ACCESS_KEY", "secretAccessKey"]] as const;

const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/** DATABASE_URL: a postgres:// (or postgresql://) URL with a host and a database name (and a known sslmode, if any). */
function postgresUrl(raw: string): string {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {}
  if (!url || (url.protocol !== "postgres:" && url.protocol !== "postgresql:") || !url.hostname || url.pathname.length < 2)
    throw new ConfigError("DATABASE_URL: not a postgres://user@host:port/database URL");
  const sslmode = url.searchParams.get("sslmode");
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) throw new ConfigError(`DATABASE_URL: sslmode ${shown(sslmode)} is not one of ${SSL_MODES.join(", ")}`);
  return raw;
}

/** STORAGE=local|s3; with s3 every S3_* setting is needed, and the endpoint must be a URL. */
function storageFrom(get: (k: string) => string | undefined): StorageConfig {
  const kind = get("STORAGE") ?? "local";
  if (kind === "local") {
    // Meant for S3, they would be ignored and every file written to DATA_DIR/files (in a
    // container, a disk that goes with it).
    const given = S3_SETTINGS.map(([env]) => env).filter((env) => get(env) !== undefined);
    if (given.length) throw new ConfigError(`${given.join(", ")} set but STORAGE is local (files go to DATA_DIR/files): set STORAGE=s3 to use S3, or unset them`);
    return { kind };
  }
  if (kind !== "s3") throw new ConfigError(`STORAGE: ${shown(kind)} is not one of local, s3`);
  const missing = S3_SETTINGS.filter(([env]) => get(env) === undefined).map(([env]) => env);
  if (missing.length) throw new ConfigError(`STORAGE=s3 needs ${missing.join(", ")}`);
  const s = Object.fromEntries(S3_SETTINGS.map(([env, key]) => [key, get(env)!])) as Omit<Extract<StorageConfig, { kind: "s3" }>, "kind">;
  let url: URL | null = null;
  try {
    url = new URL(s.endpoint);
  } catch {}
  // The host written out after the scheme's //: WHATWG URLs take "http:///x" as host x, the S3 client does not.
  if (!url) throw new ConfigError(`S3_ENDPOINT: ${shown(s.endpoint)} is not a valid URL (a port above 65535, a space, a stray character?)`);
  if ((url.protocol !== "http:" && url.protocol !== "https:") || !/^https?:\/\/[^/?#]/i.test(s.endpoint))
    throw new ConfigError(`S3_ENDPOINT: ${shown(s.endpoint)} is not an http(s) URL with a host`);
  return { kind, ...s };
}

/** A service URL setting: one of the given schemes and a host, else a ConfigError naming it. */
function serviceUrl(name: string, raw: string, schemes: readonly string[]): string {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {}
  if (!url) throw new ConfigError(`${name}: ${shown(raw)} is not a valid URL (a port above 65535, a space, a stray character?)`);
  if (!schemes.includes(url.protocol.slice(0, -1)) || !url.hostname)
    throw new ConfigError(`${name}: ${shown(raw)} is not a ${schemes.join("/")}:// URL with a host`);
  // Redis's path is its database number; NATS has none.
  const path = url.pathname.replace(/^\/$/, "");
  if (path && !(name === "REDIS_URL" && /^\/\d{1,5}$/.test(path)))
    throw new ConfigError(`${name}: ${shown(raw)} has a path (${shown(path)})${name === "REDIS_URL" ? ": only a database number (/0, /1, …)" : ""}`);
  return raw;
}

export const ENV_HELP = `Environment:
  PORT, HOST, DATA_DIR, LOG_LEVEL     as the flags above
  JWT_SECRET                          HS256 secret (at least 32 characters); default: generated once, kept in DATA_DIR
  DATABASE_URL                        cluster mode: postgres://user@host:port/database holds the data (PROTOCOL §11)
  JWT_TTL                             token lifetime, e.g. 7d, 12h, 3600 (default 7d)
  EVENT_RETENTION                     how long events are kept for resume (default 7d)
  CONTACT_POLICY                      friends (default): direct conversations and group members need an
                                      accepted friendship with the one who adds them; open: anyone may
  STORAGE                             where attachments go: local (DATA_DIR/files, default) or s3
  S3_ENDPOINT, S3_BUCKET, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY   for STORAGE=s3
  UPLOAD_ORPHAN_TTL                   how long a file no message holds is kept (default 24h)
  ATTACHMENT_URL_TTL                  how long a signed attachment link is valid (default 1h)
  TRUSTED_PROXIES                     reverse proxies / load balancers (IPs or CIDR ranges, comma-separated) whose
                                      X-Forwarded-For names the client for per-address limits (default: none)
  DATABASE_POOL_SIZE                  cluster mode: connections to PostgreSQL per node (default 20)
  NATS_URL                            cluster mode: nats://host:4222, live frames between nodes
  REDIS_URL                           cluster mode, optional: redis://host:6379 holds presence and limits
                                      (default: PostgreSQL, DATABASE_URL)
  CLUSTER_NAME                        cluster mode: prefix of NATS subjects and Redis keys (default parley)
  ${INTEGER_SETTINGS.filter(([env]) => env !== "DATABASE_POOL_SIZE") // described above
    .map(([env, key]) => `${env}=${DEFAULTS[key]}`)
    .join("\n  ")}`;

export const USAGE = `Usage: parley [command] [flags]

Commands:
  serve            start the server (default)
  migrate          apply pending database migrations and exit
  backup <file>    write a consistent copy of the live database to <file>, with a new
                   event-log epoch (clients resuming on a restored copy start over), and
                   the attachment files it names to <file>.files/ (STORAGE=local)
  new-epoch        give the event log a new epoch (DATA_DIR's parley.db, or PostgreSQL's with
                   DATABASE_URL) and print it: run it after restoring a database by other
                   means than parley backup (pg_restore, point-in-time recovery, a disk
                   snapshot), so that clients resuming with the old epoch start over. Stop
                   every node first: a running one keeps the epoch it read at start (in
                   cluster mode it notices within about a second and exits 1, to be started
                   again; on a single server's DATA_DIR it refuses, exit 1)
  healthcheck      exit 0 if the server on --port answers /health (for container health checks)
  help             show this help

Flags:
  --port <n>        listen port (PORT, default 8080)
  --host <addr>     listen address (HOST, default 0.0.0.0)
  --data-dir <dir>  data directory (DATA_DIR, default ./data)
  --log-level <l>   ${LOG_LEVELS.join("|")} (LOG_LEVEL, default info)
  -h, --help        show this help
  -v, --version     show the version

${ENV_HELP}`;

const FLAG_TO_ENV: Record<string, string> = {
  "--port": "PORT",
  "--host": "HOST",
  "--data-dir": "DATA_DIR",
  "--log-level": "LOG_LEVEL",
};

/** Parses argv (without the executable) and env. Throws ConfigError on anything wrong. */
export function loadConfig(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): { command: Command; config: Config } {
  const settings: Record<string, string | undefined> = { ...env };
  const positional: string[] = [];
  let command: Command | null = null;
  const given = new Set<string>();
  /** The flag that set a setting: its errors name what was typed. */
  const flagOf = new Map<string, string>();

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h" || arg === "--help") command = { name: "help" };
    else if (arg === "-v" || arg === "--version") command ??= { name: "version" };
    else if (arg.startsWith("-")) {
      const eq = arg.indexOf("=");
      const flag = eq === -1 ? arg : arg.slice(0, eq);
      const envName = FLAG_TO_ENV[flag];
      if (!envName) throw new ConfigError(`unknown flag ${flag} (see --help)`);
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      // `--data-dir --log-level debug`: the next flag is no value (a value starting with "-" goes as --flag=value).
      if (value === undefined || value === "" || (eq === -1 && value.startsWith("-"))) throw new ConfigError(`${flag} needs a value`);
      // Which one was meant is not ours to guess (the last one silently won).
      if (given.has(flag)) throw new ConfigError(`${flag} given twice`);
      given.add(flag);
      flagOf.set(envName, flag);
      settings[envName] = value;
    } else positional.push(arg);
  }

  if (!command) {
    const [name = "serve", ...rest] = positional;
    if (name === "help") command = { name };
    else if (name === "serve" || name === "migrate" || name === "new-epoch" || name === "healthcheck") {
      if (rest.length) throw new ConfigError(`${name} takes no arguments (got "${rest.join(" ")}")`);
      command = { name };
    } else if (name === "backup") {
      if (rest.length !== 1 || rest[0]!.trim() === "") throw new ConfigError("backup needs exactly one argument: the file to write");
      command = { name: "backup", file: rest[0]! };
    } else throw new ConfigError(`unknown command "${name}" (see --help)`);
  }

  // Help and the version are shown whatever the settings (a bad PORT must not hide --help).
  const c = command as Command;
  if (c.name === "help" || c.name === "version") return { command: c, config: makeConfig() };
  try {
    return { command: c, config: configFromSettings(settings) };
  } catch (e) {
    // "PORT: "abc" is not a whole number" for `--port abc` named a variable that was not set.
    const named = e instanceof ConfigError ? [...flagOf].find(([env]) => e.message.startsWith(`${env}:`)) : undefined;
    if (named) throw new ConfigError(`${named[1]} (${named[0]})${(e as ConfigError).message.slice(named[0].length)}`);
    throw e;
  }
}

/**
 * Builds a Config from environment-style settings; unset or empty values take defaults. A
 * value of spaces alone is a mistake (a directory named " ", a secret of blanks), not a default.
 */
export function configFromSettings(s: Record<string, string | undefined>): Config {
  const get = (k: string) => {
    const v = s[k];
    if (v === undefined || v === "") return undefined;
    if (v.trim() === "") throw new ConfigError(`${k}: only spaces; give a value or leave it unset`);
    return v;
  };
  const c: Config = { ...DEFAULTS };

  const port = get("PORT");
  if (port !== undefined) c.port = parseInteger("PORT", port, 0, 65535);
  const host = get("HOST");
  if (host !== undefined) {
    // An IP address or a host name; whether it can be listened on is only known at listen time.
    // Underscores too: Docker Compose service names have them.
    // A name whose last label is all digits is a mistyped address (256.1.1.1), never a host.
    if (!isIP(host) && (!/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/.test(host) || /(^|\.)\d+\.?$/.test(host)))
      throw new ConfigError(`HOST: ${shown(host)} is not an IP address or host name`);
    c.host = host;
  }
  c.dataDir = get("DATA_DIR") ?? c.dataDir;
  const secret = get("JWT_SECRET");
  if (secret !== undefined) {
    // Characters are code points, as every length here (16 emoji are 32 UTF-16 units, not 32 characters).
    if ([...secret].length < 32) throw new ConfigError("JWT_SECRET: must be at least 32 characters");
    c.jwtSecret = secret;
  }
  const databaseUrl = get("DATABASE_URL");
  if (databaseUrl !== undefined) c.databaseUrl = postgresUrl(databaseUrl);
  const ttl = get("JWT_TTL");
  if (ttl !== undefined) c.jwtTtlSeconds = parseDuration("JWT_TTL", ttl);
  const retention = get("EVENT_RETENTION");
  if (retention !== undefined) c.eventRetentionSeconds = parseDuration("EVENT_RETENTION", retention);
  const orphanTtl = get("UPLOAD_ORPHAN_TTL");
  if (orphanTtl !== undefined) c.uploadOrphanTtlSeconds = parseDuration("UPLOAD_ORPHAN_TTL", orphanTtl);
  const urlTtl = get("ATTACHMENT_URL_TTL");
  if (urlTtl !== undefined) c.attachmentUrlTtlSeconds = parseDuration("ATTACHMENT_URL_TTL", urlTtl);
  c.storage = storageFrom(get);
  const nats = get("NATS_URL");
  if (nats !== undefined) c.natsUrl = serviceUrl("NATS_URL", nats, ["nats", "tls"]);
  const redis = get("REDIS_URL");
  if (redis !== undefined) c.redisUrl = serviceUrl("REDIS_URL", redis, ["redis", "rediss"]);
  const name = get("CLUSTER_NAME");
  if (name !== undefined) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new ConfigError(`CLUSTER_NAME: ${shown(name)} must be 1–64 letters, digits, _ or -`);
    c.clusterName = name;
  }
  // Cluster mode is PostgreSQL for the data and NATS between nodes (PROTOCOL §11): one without the other is a mistake.
  if ((c.databaseUrl === null) !== (c.natsUrl === null)) throw new ConfigError(`${c.databaseUrl ? "DATABASE_URL needs NATS_URL" : "NATS_URL needs DATABASE_URL"} (cluster mode: both, or neither)`);
  // Redis only moves cluster mode's presence and limits off PostgreSQL: a single node has no use for it.
  if (c.redisUrl !== null && c.natsUrl === null) throw new ConfigError("REDIS_URL is for cluster mode only (it needs DATABASE_URL and NATS_URL)");
  const level = get("LOG_LEVEL");
  if (level !== undefined) c.logLevel = oneOf("LOG_LEVEL", level, LOG_LEVELS);
  const proxies = get("TRUSTED_PROXIES");
  if (proxies !== undefined) {
    const entries = proxies.split(",").map((e) => e.trim()).filter(Boolean);
    const bad = entries.find((e) => !parseProxyEntry(e));
    if (bad !== undefined) throw new ConfigError(`TRUSTED_PROXIES: ${shown(bad)} is not an IP address or CIDR range (e.g. 10.0.0.0/8)`);
    c.trustedProxies = entries;
  }
  const policy = get("CONTACT_POLICY");
  if (policy !== undefined) c.contactPolicy = oneOf("CONTACT_POLICY", policy, CONTACT_POLICIES);
  for (const [env, key, min, max] of INTEGER_SETTINGS) {
    const raw = get(env);
    if (raw !== undefined) (c as unknown as Record<string, number>)[key] = parseInteger(env, raw, min, max);
  }
  // Cluster mode: every node signs and checks the same tokens (a generated secret is one node's).
  if (c.databaseUrl && !c.jwtSecret) throw new ConfigError("JWT_SECRET: required in cluster mode (DATABASE_URL is set), the same on every node");
  return Object.freeze(c);
}

/** A Config for tests and embedding: defaults overridden by the given fields. */
export function makeConfig(overrides: Partial<Config> = {}): Config {
  return Object.freeze({ ...DEFAULTS, ...overrides });
}
