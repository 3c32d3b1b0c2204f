import { eq } from "drizzle-orm";
import type { Config } from "../config";
import type { DB } from "../db/client";
import { users, type UserRow } from "../db/schema";
import { AppError, conflict, invalid } from "../errors";
import { PASSWORD_CHARACTERS } from "../users/dto";
import { cleanDisplayName } from "../users/service";
import { FailureWindow } from "../lib/rate-limit";

export interface Credentials { username: string; password: string }

// A real hash of a throwaway password, so that unknown usernames cost the same time as wrong passwords.
let dummyHash: Promise<string> | undefined;

export class AccountService {
  private byUsername: FailureWindow;
  private byAddress: FailureWindow;

  constructor(private db: DB, private config: Config) {
    const windowMs = config.loginWindowSeconds * 1000;
    this.byUsername = new FailureWindow(config.loginMaxFailures, windowMs);
    this.byAddress = new FailureWindow(config.loginMaxFailuresPerAddress, windowMs);
  }

  private hash(password: string) {
    return Bun.password.hash(password, { algorithm: "argon2id", memoryCost: this.config.argon2MemoryKib, timeCost: 2 });
  }

  /** Creates an account. Hashing happens before (outside) the write. */
  async register(input: Credentials & { display_name?: string }): Promise<UserRow> {
    const username = input.username.toLowerCase();
    const characters = [...input.password].length;
    if (characters < PASSWORD_CHARACTERS.min || characters > PASSWORD_CHARACTERS.max)
      throw invalid("password", `${PASSWORD_CHARACTERS.min}–${PASSWORD_CHARACTERS.max} characters`);
    const displayName = input.display_name === undefined ? username : cleanDisplayName(input.display_name);
    if (this.db.select({ id: users.id }).from(users).where(eq(users.username, username)).get())
      throw conflict("username is taken");
    const passwordHash = await this.hash(input.password);
    const now = Date.now();
    try {
      return this.db
        .insert(users)
        .values({ id: Bun.randomUUIDv7(), username, displayName, passwordHash, profileImageUrl: null, lastActiveAt: now, createdAt: now, updatedAt: now })
        .returning()
        .get();
    } catch (e) {
      // Two registrations of one name racing past the check above: the unique index decides.
      if (String(e).includes("UNIQUE")) throw conflict("username is taken");
      throw e;
    }
  }

  /** Checks credentials; failures are counted per username and per client address. */
  async login(input: Credentials, address: string): Promise<UserRow> {
    const username = input.username.toLowerCase();
    const wait = Math.max(this.byUsername.blockedFor(username), this.byAddress.blockedFor(address));
    if (wait > 0) throw new AppError("rate_limited", "too many failed logins, try again later", undefined, wait);
    // Counted as a failure before the (slow) check, so parallel guesses cannot all slip
    // under the limit; taken back if it succeeds.
    this.byUsername.fail(username);
    this.byAddress.fail(address);

    const row = this.db.select().from(users).where(eq(users.username, username)).get();
    const ok = row
      ? await Bun.password.verify(input.password, row.passwordHash)
      : (await Bun.password.verify(input.password, await (dummyHash ??= this.hash("not-a-real-password"))), false);
    if (!row || !ok) throw new AppError("unauthorized", "wrong username or password");
    this.byUsername.reset(username);
    this.byAddress.forgive(address);
    return row;
  }
}
