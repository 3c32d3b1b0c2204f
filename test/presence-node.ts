/**
 * A presence node in its own process, for test/platform-presence.test.ts to kill -9:
 * holds one socket of USER_ID on Redis presence, announced, until it is killed.
 */
import { RedisPresence } from "../src/platform/redis/presence";

const setting = (name: string) => process.env[name] ?? "";
const userId = setting("USER_ID");
const redis = new Bun.RedisClient(setting("REDIS_URL"));
const presence = new RedisPresence(redis, { nodeId: setting("NODE_ID"), graceMs: 0, heartbeatIntervalMs: Number(setting("INTERVAL_MS")), prefix: setting("PREFIX") });
await presence.heartbeat();
if ((await presence.connect(userId, 5)) === "full") throw new Error("full");
presence.announced(userId);
await presence.online([userId]); // after the announcement on the same connection
console.log("ready");
setInterval(() => {}, 1 << 30);
