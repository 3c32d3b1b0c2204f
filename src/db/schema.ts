/**
 * Drizzle tables. Times are stored as integer milliseconds since the epoch and rendered
 * as ISO-8601 strings at the edge; ids are UUIDv7 strings, so they sort by creation time.
 */
import { sqliteTable, text, integer } from "drizzle-orm/sqlite-core";

export const users = sqliteTable("users", {
  id: text().primaryKey(),
  /** Lower-case; unique. */
  username: text().notNull().unique(),
  displayName: text("display_name").notNull(),
  profileImageUrl: text("profile_image_url"),
  passwordHash: text("password_hash").notNull(),
  lastActiveAt: integer("last_active_at").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export type UserRow = typeof users.$inferSelect;
