import { eq } from "drizzle-orm";
import type { Config } from "../config";
import type { DB } from "../db/client";
import { users, type UserRow } from "../db/schema";
import { AppError, conflict, invalid } from "../errors";
import { PASSWORD_CHARACTERS } from "../users/dto";
import { cleanDisplayName } from "../users/service";
import { nameKey } from "../users/name-key";
import type { FailureCounter, Limits } from "../platform/limits";

export interface Credentials { username: string; password: string }

/** The user rows accounts need: SQLite's below, PostgreSQL's in src/platform/postgres/accounts.ts. */
export interface AccountRows {
  byUsername(username: string): UserRow | undefined | Promise<UserRow | undefined>;
  /** Inserts a new user; a taken username is 409 (the unique index decides between racing registrations). */
  insert(row: UserRow): UserRow | Promise<UserRow>;
}

export const sqliteAccountRows = (db: DB): AccountRows => ({
  byUsername: (username) => db.select().from(users).where(eq(users.username, username)).get(),
  insert(row) {
    try {
      return db.insert(users).values(row).returning().get();
    } catch (e) {
      if (String(e).includes("UNIQUE")) throw conflict("username is taken");
      throw e;
    }
  },
});

// A real hash of a throwaway password, so that unknown usernames cost the same time as wrong passwords.
let dummyHash: Promise<string> | undefined;

/**
 * Usernames are ASCII (USERNAME) and case-insensitive: only A–Z fold. toLowerCase() also
 * folded the Kelvin sign U+212A to "k", so a login as "\u212Aate" (which register refuses)
 * let Kate in (from an acceptance pass).
 */
const foldUsername = (name: string) => name.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());

export class AccountService {
  private byUsername: FailureCounter;
  private byAddress: FailureCounter;

  constructor(private rows: AccountRows, private config: Config, limits: Limits) {
    const windowMs = config.loginWindowSeconds * 1000;
    this.byUsername = limits.failures("login-user", config.loginMaxFailures, windowMs);
    this.byAddress = limits.failures("login-address", config.loginMaxFailuresPerAddress, windowMs);
  }

  private hash(password: string) {
    return Bun.password.hash(password, { algorithm: "argon2id", memoryCost: this.config.argon2MemoryKib, timeCost: 2 });
  }

  /** Creates an account. Hashing happens before (outside) the write. */
  async register(input: Credentials & { display_name?: string }): Promise<UserRow> {
    const username = foldUsername(input.username);
    const characters = [...input.password].length;
    if (characters < PASSWORD_CHARACTERS.min || characters > PASSWORD_CHARACTERS.max)
      throw invalid("password", `${PASSWORD_CHARACTERS.min}–${PASSWORD_CHARACTERS.max} characters`);
    const displayName = input.display_name === undefined ? username : cleanDisplayName(input.display_name);
    if (await this.rows.byUsername(username)) throw conflict("username is taken");
    const passwordHash = await this.hash(input.password);
    const now = Date.now();
    return this.rows.insert({ id: Bun.randomUUIDv7(), username, displayName, nameKey: nameKey(username, displayName), passwordHash, profileImageUrl: null, lastActiveAt: now, createdAt: now, updatedAt: now });
  }

  /** Checks credentials; failures are counted per username and per client address. */
  async login(input: Credentials, address: string): Promise<UserRow> {
    const username = foldUsername(input.username);
    // Counted as a failure before the (slow) check, so parallel guesses cannot all slip
    // under the limit; taken back if it succeeds.
    const [byName, byAddress] = await Promise.all([this.byUsername.attempt(username), this.byAddress.attempt(address)]);
    if (byName > 0 || byAddress > 0) {
      // Refused: an attempt that was counted on one side is not one.
      await Promise.all([byName === 0 && this.byUsername.forgive(username), byAddress === 0 && this.byAddress.forgive(address)]);
      throw new AppError("rate_limited", "too many failed logins, try again later", undefined, Math.max(byName, byAddress));
    }

    const row = await this.rows.byUsername(username);
    const ok = row
      ? await Bun.password.verify(input.password, row.passwordHash)
      : (await Bun.password.verify(input.password, await (dummyHash ??= this.hash("not-a-real-password"))), false);
    if (!row || !ok) throw new AppError("unauthorized", "wrong username or password");
    await Promise.all([this.byUsername.reset(username), this.byAddress.forgive(address)]);
    return row;
  }
}
