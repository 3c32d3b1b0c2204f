import { join } from "node:path";
import type { Config } from "../config";
import { LocalStore } from "./local";
import { S3Store } from "./s3";
import type { BlobStore } from "./storage";

/** Attachments of a local store live here. */
export const filesDir = (dataDir: string) => join(dataDir, "files");

/** In cluster mode a shared files folder stages every node's uploads: a starting node removes only those idle this long. */
export const CLUSTER_LEFTOVER_MS = 60 * 60 * 1000;

export function openStore(config: Config): BlobStore {
  const s = config.storage;
  return s.kind === "local" ? new LocalStore(filesDir(config.dataDir), config.databaseUrl ? CLUSTER_LEFTOVER_MS : 0) : new S3Store(s);
}
