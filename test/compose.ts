/**
 * compose.yaml read as Docker Compose reads it, for tests that run what it describes
 * (test/cluster-lb.test.ts): the Parley nodes' environment (`x-parley.environment`) with
 * `${VAR…}` interpolated as compose does, and its services' hostnames mapped to what the
 * test runs, after checking that they agree with the services compose.yaml starts.
 * No container engine runs here, so this is as close to `docker compose up` as tests get.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { configFromSettings } from "../src/config";

export const COMPOSE_FILE = join(import.meta.dir, "..", "compose.yaml");

export interface Compose {
  "x-parley": { environment: Record<string, unknown> | string[] };
  services: Record<string, { environment?: Record<string, unknown> | string[]; entrypoint?: string[]; command?: string[] }>;
  configs: { nginx: { content: string } };
}

export const readCompose = (): Compose => Bun.YAML.parse(readFileSync(COMPOSE_FILE, "utf8")) as Compose;

/** A service's `environment:` (map or list form) as strings, uninterpolated. */
export function environmentOf(env: Record<string, unknown> | string[] | undefined): Record<string, string> {
  if (!env) return {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e) => [e.split("=")[0]!, e.slice(e.indexOf("=") + 1)]));
  // YAML scalars (8080, true) are strings to compose.
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

/**
 * Compose's interpolation (compose-spec "Interpolation"): `$$` is a literal `$`; `$VAR` and
 * `${VAR}`; `${VAR:-default}` / `${VAR-default}` (unset or empty / unset); `${VAR:?message}`
 * / `${VAR?message}` (an error with that message); `${VAR:+other}` / `${VAR+other}`.
 * A nested `${…}` inside a default is not supported here and throws.
 */
export function interpolate(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$(?:\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (whole, braced: string | undefined, bare: string | undefined) => {
    if (whole === "$$") return "$";
    if (bare !== undefined) return vars[bare] ?? "";
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])(.*))?$/s.exec(braced!);
    if (!m || m[4]?.includes("$")) throw new Error(`compose.yaml: cannot interpolate "${whole}"`);
    const [, name, colon, op, arg = ""] = m;
    const v = vars[name!];
    const set = colon ? v !== undefined && v !== "" : v !== undefined;
    if (op === undefined) return v ?? "";
    if (op === "-") return set ? v! : arg;
    if (op === "+") return set ? arg : "";
    if (!set) throw new Error(`compose.yaml: required variable ${name} is missing a value: ${arg}`);
    return v!;
  });
}

/** `x-parley.environment`, interpolated with `vars` (what the shell or .env would supply). */
export function composeNodeEnvironment(vars: Record<string, string | undefined>, compose = readCompose()): Record<string, string> {
  return Object.fromEntries(Object.entries(environmentOf(compose["x-parley"].environment)).map(([k, v]) => [k, interpolate(v, vars)]));
}

/**
 * The environment variables the server reads when started with `env` (its whole
 * configuration is read by configFromSettings, src/config.ts): a variable of `env` not
 * among them is one the server does not know (misspelt, or a setting that does not exist).
 * Throws the server's own ConfigError for a value it refuses.
 */
export function settingsReadByServer(env: Record<string, string>): Set<string> {
  const read = new Set<string>();
  configFromSettings(new Proxy(env, { get: (target, key) => (typeof key === "string" && read.add(key), Reflect.get(target, key)) }));
  return read;
}

/** `url` with the host and port of `to` (scheme, user, path and query kept). */
function withHostOf(url: string, to: string): string {
  const u = new URL(url);
  const auth = u.username ? `${u.username}${u.password ? `:${u.password}` : ""}@` : "";
  return `${u.protocol}//${auth}${new URL(to).host}${u.pathname === "/" ? "" : u.pathname}${u.search}`;
}

/** What the test runs in place of compose.yaml's services. */
export interface TestServices {
  /** The test's PostgreSQL database. */
  databaseUrl: string;
  natsUrl: string;
  /** An S3 server (s3rver) started with compose.yaml's bucket, region and keys (`composeS3`). */
  s3Endpoint: string;
}

/**
 * The S3 settings of the nodes, checked against the services that provide them: the keys
 * are MinIO's root user and password, the bucket is the one minio-bucket creates.
 */
export function composeS3(env: Record<string, string>, compose = readCompose()) {
  const minio = environmentOf(compose.services.minio?.environment);
  const mc = compose.services["minio-bucket"]?.entrypoint?.join(" ") ?? "";
  check(env.S3_ACCESS_KEY_ID === minio.MINIO_ROOT_USER, `S3_ACCESS_KEY_ID "${env.S3_ACCESS_KEY_ID}" is not minio's MINIO_ROOT_USER "${minio.MINIO_ROOT_USER}"`);
  check(env.S3_SECRET_ACCESS_KEY === minio.MINIO_ROOT_PASSWORD, "S3_SECRET_ACCESS_KEY is not minio's MINIO_ROOT_PASSWORD");
  const bucket = /\bmc mb (?:-p )?m\/([a-z0-9.-]+)/.exec(mc)?.[1];
  check(bucket !== undefined && env.S3_BUCKET === bucket, `S3_BUCKET "${env.S3_BUCKET}" is not the bucket minio-bucket creates (${bucket})`);
  check(new RegExp(`\\bmc alias set m ${env.S3_ENDPOINT} ${minio.MINIO_ROOT_USER} ${minio.MINIO_ROOT_PASSWORD}\\b`).test(mc), "minio-bucket does not create the bucket at S3_ENDPOINT with MinIO's root credentials");
  return { bucket: env.S3_BUCKET!, region: env.S3_REGION!, accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: env.S3_SECRET_ACCESS_KEY! };
}

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new Error(`compose.yaml: ${message}`);
}

/**
 * compose.yaml's node environment with its services' hostnames mapped to the test's:
 * every value is compose's, except the host (and port) of DATABASE_URL, NATS_URL and
 * S3_ENDPOINT, each first checked to name the compose service (and its port) that provides it.
 */
export function mapComposeServices(env: Record<string, string>, to: TestServices, compose = readCompose()): Record<string, string> {
  const out = { ...env };
  const service = (setting: string, name: string, port: string) => {
    const u = new URL(env[setting] ?? "");
    check(u.hostname === name && compose.services[name] !== undefined, `${setting} "${env[setting]}" does not name the ${name} service`);
    check(u.port === port, `${setting} "${env[setting]}": ${name} listens on ${port}`);
    return u;
  };

  const pg = service("DATABASE_URL", "postgres", "5432");
  const postgres = environmentOf(compose.services.postgres!.environment);
  check(decodeURIComponent(pg.username) === postgres.POSTGRES_USER && decodeURIComponent(pg.password) === postgres.POSTGRES_PASSWORD && pg.pathname === `/${postgres.POSTGRES_DB}`,
    `DATABASE_URL's user, password and database are not the postgres service's POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB`);
  // Compose's user and password are checked above against the postgres service, but not
  // used: the test's PostgreSQL (trust, user postgres) has no role `parley`, so the whole
  // connection part (user, host, port, database) is the test database's; compose's query
  // string, if any, is kept.
  const db = new URL(to.databaseUrl);
  db.search = pg.search;
  out.DATABASE_URL = db.toString();

  service("NATS_URL", "nats", "4222");
  out.NATS_URL = withHostOf(env.NATS_URL!, to.natsUrl);
  service("S3_ENDPOINT", "minio", "9000");
  out.S3_ENDPOINT = withHostOf(env.S3_ENDPOINT!, to.s3Endpoint);
  return out;
}
