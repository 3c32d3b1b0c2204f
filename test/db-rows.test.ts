import { describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { openDatabase } from "../src/db/client";
import { migrate } from "../src/db/migrate";
import { rowStatement } from "../src/db/prepared";
import { members, users } from "../src/db/schema";
import { getUserRow } from "../src/users/service";
import { memberRow } from "../src/conversations/view";
import { tempDir } from "./helpers";

describe("rowStatement (hot lookups without drizzle's row mapping)", () => {
  test("reads the same rows as drizzle, every column under its key", () => {
    const db = openDatabase(`${tempDir()}/rows.db`);
    migrate(db);
    const now = Date.now();
    db.insert(users).values({ id: "u1", username: "alice", displayName: "Alice", profileImageUrl: null, passwordHash: "h", lastActiveAt: now, createdAt: now + 1, updatedAt: now + 2 }).run();
    db.$client.run("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES ('c1', 'group', 'g', 'u1', 1, 2, 3)");
    db.insert(members).values({ conversationId: "c1", userId: "u1", role: "owner", joinedAt: 5, joinedSeq: 7, lastReadMessageId: null }).run();
    expect(getUserRow(db, "u1")).toEqual(db.select().from(users).where(eq(users.id, "u1")).get()!);
    expect(memberRow(db, "c1", "u1")).toEqual(db.select().from(members).get()!);
    expect(getUserRow(db, "nobody")).toBeUndefined();
    expect(memberRow(db, "c1", "nobody")).toBeUndefined();
    db.$client.close();
  });

  test("refuses a table with a column drizzle would decode", () => {
    const db = openDatabase(`${tempDir()}/rows.db`);
    const flags = sqliteTable("flags", { id: text().primaryKey(), on: integer({ mode: "boolean" }).notNull() });
    expect(() => rowStatement(db, "flags", flags, "id = $id")).toThrow(/needs decoding/);
    db.$client.close();
  });
});
