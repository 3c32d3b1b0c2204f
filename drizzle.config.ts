import { defineConfig } from "drizzle-kit";

// One schema definition per dialect, one migration set each, both embedded in the
// executable: `bun run db:generate` (SQLite, drizzle/) and `bun run db:generate:pg`
// (PostgreSQL, drizzle/pg/, cluster mode).
export default process.env.DRIZZLE_DIALECT === "postgresql"
  ? defineConfig({ dialect: "postgresql", schema: "./src/platform/postgres/schema.ts", out: "./drizzle/pg" })
  : defineConfig({ dialect: "sqlite", schema: "./src/db/schema.ts", out: "./drizzle" });
