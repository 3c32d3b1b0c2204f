/** A real S3-protocol server for tests: s3rver on 127.0.0.1, serving a temporary folder. */
import S3rver from "s3rver";
import { rmSync } from "node:fs";
import { tempDir } from "./helpers";
import type { S3Settings } from "../src/files/s3";

/** `keys`: an access key s3rver accepts besides its own S3RVER/S3RVER (compose.yaml's, say), which the settings then carry. */
export async function startS3(bucket = "parley", keys?: { region: string; accessKeyId: string; secretAccessKey: string }): Promise<{ settings: S3Settings; dir: string; stop: () => Promise<void> }> {
  const dir = tempDir("parley-s3-");
  if (keys) {
    // s3rver checks signatures against the key pairs of its one built-in account.
    const { DUMMY_ACCOUNT } = (await import("s3rver/lib/models/account" as string)) as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } };
    DUMMY_ACCOUNT.createKeyPair(keys.accessKeyId, keys.secretAccessKey);
  }
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: bucket, configs: [] }] });
  const info = await server.run();
  return {
    settings: { endpoint: `http://127.0.0.1:${info.port}`, bucket, region: keys?.region ?? "us-east-1", accessKeyId: keys?.accessKeyId ?? "S3RVER", secretAccessKey: keys?.secretAccessKey ?? "S3RVER" },
    dir,
    async stop() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
