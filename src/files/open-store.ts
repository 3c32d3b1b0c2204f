import { join } from "node:path";
import type { Config } from "../config";
import { LocalStore } from "./local";
import { S3Store } from "./s3";
import type { BlobStore } from "./storage";

/** Attachments of a local store live here. */
export const filesDir = (dataDir: string) => join(dataDir, "files");

export function openStore(config: Config): BlobStore {
  const s = config.storage;
  return s.kind === "local" ? new LocalStore(filesDir(config.dataDir)) : new S3Store(s);
}
