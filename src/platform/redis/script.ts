/** A Lua script run atomically in Redis: by its SHA1, loaded (once per server) when unknown. */
import type { RedisLink } from "./client";

export class RedisScript {
  private readonly sha: string;
  constructor(private readonly source: string) {
    this.sha = new Bun.CryptoHasher("sha1").update(source).digest("hex");
  }
  async run(redis: RedisLink, keys: string[], args: (string | number)[] = []): Promise<unknown> {
    const argv = [this.sha, String(keys.length), ...keys, ...args.map(String)];
    try {
      return await redis.send("EVALSHA", argv);
    } catch (e) {
      // A restarted (or new) Redis does not know the script yet.
      if (!String((e as Error).message).startsWith("NOSCRIPT")) throw e;
      argv[0] = this.source;
      return redis.send("EVAL", argv);
    }
  }
}
