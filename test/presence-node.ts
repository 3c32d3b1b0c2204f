/**
 * A presence node in its own process, for test/platform-presence.test.ts to kill -9: holds
 * one socket of USER_ID, announced, until it is killed. BACKEND=redis (REDIS_URL, PREFIX)
 * or postgres (DATABASE_URL).
 */
import { RedisPresence } from "../src/platform/redis/presence";
import { RedisLink } from "../src/platform/redis/client";
import { PgPresence } from "../src/platform/postgres/presence";
import { openPostgres } from "../src/platform/postgres/client";

const setting = (name: string) => process.env[name] ?? "";
const userId = setting("USER_ID");
const options = { nodeId: setting("NODE_ID"), graceMs: 0, heartbeatIntervalMs: Number(setting("INTERVAL_MS")) };
const presence =
  setting("BACKEND") === "postgres"
    ? new PgPresence(openPostgres(setting("DATABASE_URL"), 2).$client, options)
    : new RedisPresence(new RedisLink(setting("REDIS_URL")), { ...options, prefix: setting("PREFIX") });
await presence.heartbeat();
if ((await presence.connect(userId, 5)) === "full") throw new Error("full");
await presence.announced(userId);
console.log("ready");
setInterval(() => {}, 1 << 30);
