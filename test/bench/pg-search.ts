/**
 * Search on PostgreSQL (cluster mode): the search scenario's data (test/bench/search.ts,
 * English and Thai, one user in `memberOf` groups) written into a fresh database, then
 * one-word, three-word and 2-character queries timed through PgSearchIndex (the query the
 * server runs, without HTTP: until the PostgreSQL message store exists there is no cluster
 * server to ask), each page checked against brute force, and the index's size.
 *
 *   bun test/bench/pg-search.ts [--messages=200000] [--conversations=400] [--member-of=50] [--queries=200]
 *
 * Needs PostgreSQL (TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres);
 * runs outside `bun run bench`, whose private network namespace has no PostgreSQL.
 */
import { loadavg } from "node:os";
import { migratePostgres, openPostgres } from "../../src/platform/postgres/client";
import { PgSearchIndex } from "../../src/platform/postgres/search";
import { fold, parseQuery } from "../../src/search/text";
import { createTestDatabase } from "../services";
import { cpuSeconds, percentiles, round } from "./lib/stats";
import { bruteForce, corpus, queryKinds, type Generated } from "./search";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const s = { messages: arg("messages", 200_000), conversations: arg("conversations", 400), memberOf: arg("member-of", 50), queries: arg("queries", 200) };
const LIMIT = 20;
const REPEAT = 3;

const database = await createTestDatabase("parley_bench_search");
const db = openPostgres(database.url, 4);
try {
  await migratePostgres(db);
  const sql = db.$client;
  const c = corpus(s);
  const t0 = performance.now();
  /** Rows in multi-row INSERTs (PostgreSQL takes at most 65,535 parameters a statement). */
  const insert = async (table: string, columns: string[], rows: unknown[][]) => {
    for (let i = 0; i < rows.length; i += 5000) {
      const chunk = rows.slice(i, i + 5000);
      const values = chunk.map((_, r) => `(${columns.map((_, k) => `$${r * columns.length + k + 1}`).join(", ")})`).join(", ");
      await sql.unsafe(`INSERT INTO ${table} (${columns.join(", ")}) VALUES ${values}`, chunk.flat());
    }
  };
  await insert("users", ["id", "username", "display_name", "password_hash", "last_active_at", "created_at", "updated_at"], c.users.map((u) => [u.id, u.username, u.displayName, "x", c.start, c.start, c.start]));
  await insert("conversations", ["id", "type", "title", "created_by", "created_at", "updated_at", "activity_at"], c.convs.map((g) => [g.id, "group", g.title, g.members[0], c.start, c.start, g.activityAt]));
  await insert("conversation_members", ["conversation_id", "user_id", "role", "joined_at"], c.convs.flatMap((g) => g.members.map((u, k) => [g.id, u, k === 0 ? "owner" : "member", c.start])));
  const g: Pick<Generated, "mine"> = { mine: [] };
  let batch: unknown[][] = [];
  const columns = ["id", "conversation_id", "sender_id", "message_type", "content", "search_text", "created_at"];
  for (const m of c.messages()) {
    // What the message store writes with every message: search_text = fold(content).
    batch.push([m.id, m.conversationId, m.senderId, "text", m.content, fold(m.content), m.createdAt]);
    if (m.mine) g.mine.push({ id: m.id, content: m.content, words: m.words });
    if (batch.length === 50_000) (await insert("messages", columns, batch), (batch = []));
  }
  await insert("messages", columns, batch);
  const loadS = round((performance.now() - t0) / 1000, 1);
  await sql`VACUUM ANALYZE`;

  // Searches on one connection of their own, so that its server process's CPU time is
  // theirs: what a search costs PostgreSQL, whatever else runs on the machine.
  const searchDb = openPostgres(database.url, 1);
  const [{ pid }] = await searchDb.$client`SELECT pg_backend_pid() AS pid`;
  const index = new PgSearchIndex(searchDb);
  const searcher = c.searcher;
  const latency: Record<string, Record<string, number>> = {};
  const hits: Record<string, number> = {};
  let wrong = 0;
  const best: Record<string, Record<string, number>> = {};
  const cpu: Record<string, Record<string, number>> = {};
  const slowest: [number, string, string][] = [];
  for (const [kind, make] of Object.entries(queryKinds(g))) {
    const times: number[] = [];
    const bestTimes: number[] = [];
    const cpuTimes: number[] = [];
    let found = 0;
    for (let i = 0; i < s.queries; i++) {
      const q = make();
      let ids: string[] = [];
      // Each query REPEAT times: the first time, and the best (the machine is shared; the
      // best of a few is what the query costs when no one else holds the cores).
      const runs: number[] = [];
      const cpu0 = cpuSeconds(pid);
      for (let r = 0; r < REPEAT; r++) {
        const started = performance.now();
        // As the service asks: a page and one more (to know whether there is a next page).
        ({ ids } = await index.findMessages({ userId: searcher, terms: parseQuery(q), limit: LIMIT + 1 }));
        runs.push(performance.now() - started);
      }
      cpuTimes.push(((cpuSeconds(pid) - cpu0) * 1000) / REPEAT);
      slowest.push([cpuTimes.at(-1)!, kind, q]);
      times.push(runs[0]!);
      bestTimes.push(Math.min(...runs));
      const page = ids.slice(0, LIMIT);
      found += page.length;
      if (page.join() !== bruteForce(g, q, LIMIT).join()) (wrong++, console.error(`wrong page for ${JSON.stringify(q)}`));
    }
    latency[kind] = percentiles(times, [50, 99, 100]);
    best[kind] = percentiles(bestTimes, [50, 99, 100]);
    cpu[kind] = percentiles(cpuTimes, [50, 99, 100]);
    hits[kind] = round(found / s.queries, 1);
  }
  const load = loadavg()[0]!;
  // BENCH_SLOWEST=N: the N queries that cost PostgreSQL the most CPU, to stderr.
  if (process.env.BENCH_SLOWEST) for (const [ms, kind, q] of slowest.sort((a, b) => b[0] - a[0]).slice(0, Number(process.env.BENCH_SLOWEST))) console.error(`${round(ms)} ms ${kind} ${q}`);
  const mb = async (relation: string) => round(Number((await sql`SELECT pg_total_relation_size(${relation}::regclass) AS n`)[0].n) / 1e6, 1);
  const [settings] = await sql`SELECT current_setting('shared_buffers') AS shared_buffers, current_setting('server_version') AS version`;
  console.log(JSON.stringify({
    scenario: "search_postgres",
    ...s,
    searchable_messages: g.mine.length,
    latency_ms: latency,
    best_of_repeats_ms: best,
    postgres_cpu_ms: cpu,
    repeats: REPEAT,
    load_average_1m: round(load, 1),
    mean_hits_per_page: hits,
    wrong_pages: wrong,
    load_s: loadS,
    messages_table_mb: round(Number((await sql`SELECT pg_relation_size('messages') AS n`)[0].n) / 1e6, 1),
    messages_total_mb: await mb("messages"),
    trigram_index_mb: await mb("messages_search_text"),
    postgres: settings,
  }));
  await searchDb.$client.close();
  if (wrong) process.exitCode = 1;
} finally {
  await db.$client.close();
  if (process.env.BENCH_KEEP) console.error(`kept database ${database.name}`);
  else await database.drop();
}
