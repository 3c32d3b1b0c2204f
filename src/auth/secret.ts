import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ConfigError } from "../config";

/**
 * The JWT secret: JWT_SECRET if set, otherwise a random 256-bit secret generated on the
 * first start and kept in DATA_DIR/jwt-secret (mode 0600), so tokens survive restarts.
 */
export function loadOrCreateSecret(dataDir: string, configured: string | null): string {
  if (configured) return configured;
  const file = join(dataDir, "jwt-secret");
  if (existsSync(file)) {
    let secret: string;
    try {
      secret = readFileSync(file, "utf8").trim();
    } catch (e) {
      // A directory, or a file this user may not read: one line naming it (exit 2), not the raw EISDIR.
      throw new ConfigError(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? e}); make it a file this user can read, or delete it to generate a new secret`);
    }
    if (secret.length >= 32) return secret;
    // Replacing it would silently invalidate every token issued so far.
    throw new ConfigError(`${file}: shorter than 32 characters; restore it, or delete it to generate a new one (existing tokens stop working)`);
  }
  const secret = randomBytes(32).toString("hex");
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  return secret;
}
