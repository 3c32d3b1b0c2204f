/** A real S3-protocol server for tests: s3rver on 127.0.0.1, serving a temporary folder. */
import S3rver from "s3rver";
import { rmSync } from "node:fs";
import { tempDir } from "./helpers";
import type { S3Settings } from "../src/files/s3";

export async function startS3(bucket = "parley"): Promise<{ settings: S3Settings; dir: string; stop: () => Promise<void> }> {
  const dir = tempDir("parley-s3-");
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: bucket, configs: [] }] });
  const info = await server.run();
  return {
    settings: { endpoint: `http://127.0.0.1:${info.port}`, bucket, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    dir,
    async stop() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
