/**
 * SearchIndex on PostgreSQL (cluster mode), with pg_trgm. Messages carry `search_text`,
 * fold(content) written by the app with each insert and edit (NULL once deleted: the
 * message store's part); a GIN trigram index over it answers `LIKE '%term%'`. No queue and
 * no worker: the column changes in the transaction of the write, so search is exact at
 * every moment.
 *
 * Order: newest first is message id order, descending (UUIDv7 made inside the send
 * transaction: id order is send order); a cursor is the last id of a page, and `id < it`
 * holds whether or not that message still exists.
 */
import type { PgDB } from "./client";
import type { ConversationHit, ConversationQuery, MessageHits, MessageQuery, SearchIndex } from "../../search/index";
import type { SQL } from "bun";
import { FOLD_VERSION } from "../../search/fold.js";
import { fold, matchConversations, type NamedConversation, type Term } from "../../search/text";

/** `%`, `_` and the escape character itself are text in a LIKE pattern. */
const likeContaining = (s: string) => `%${s.replace(/[\\%_]/g, "\\$&")}%`;

/**
 * Whether pg_trgm surely extracts a trigram from the term: three word characters in a row
 * (it splits text at other characters; letters, digits and their marks are word characters,
 * so Thai words with vowel and tone marks are whole). A term without one would make the
 * GIN index read all of itself; such terms are matched by scanning the caller's conversations.
 */
const TRIGRAM = /[\p{L}\p{N}\p{M}]{3}/u;
export const trigramIndexable = (t: Term) => TRIGRAM.test(t.folded);

/** How many of the newest messages a search for terms without trigrams reads before it turns to the caller's conversations. */
const WINDOW = 10_000;

/** Rows per statement when backfill() folds existing messages. */
const BACKFILL_BATCH = 2000;

export class PgSearchIndex implements SearchIndex {
  private readonly window: number;

  /** `window`: another size of the first part of a scan (tests use a tiny one, to reach the second). */
  constructor(private readonly db: PgDB, opts: { window?: number } = {}) {
    this.window = opts.window ?? WINDOW;
  }

  async stop() {}

  async findMessages(q: MessageQuery): Promise<MessageHits> {
    const params: (string | number)[] = [q.userId];
    const p = (v: string | number) => `$${params.push(v)}`;
    const where = ["m.deleted_at IS NULL"];
    // Terms with trigrams as LIKE, which the GIN index serves; the others with strpos, which
    // it cannot (their LIKE would have it read all of itself), checked on the rows read.
    for (const t of q.terms) where.push(trigramIndexable(t) ? `m.search_text LIKE ${p(likeContaining(t.folded))}` : `strpos(m.search_text, ${p(t.folded)}) > 0`);
    if (q.senderId !== undefined) where.push(`m.sender_id = ${p(q.senderId)}`);
    if (q.createdBefore !== undefined) where.push(`m.created_at < ${p(q.createdBefore)}`);
    if (q.createdAfter !== undefined) where.push(`m.created_at > ${p(q.createdAfter)}`);
    const below = q.olderThan !== undefined ? `m.id < ${p(q.olderThan)}` : "TRUE";
    const conds = where.join(" AND ");
    const limit = p(q.limit);
    const mine = `SELECT conversation_id FROM conversation_members WHERE user_id = $1${q.conversationId !== undefined ? ` AND conversation_id = ${p(q.conversationId)}` : ""}`;
    let sql: string;
    if (q.terms.some(trigramIndexable)) {
      // Membership is a condition of the same query. PostgreSQL's estimate of the terms
      // (from its sample of search_text) picks the plan: the primary key backwards, stopping
      // at a page, for a common term; the trigram index's candidates for a rarer one.
      sql = `SELECT m.id FROM messages m WHERE m.conversation_id IN (${mine}) AND ${below} AND ${conds} ORDER BY m.id DESC LIMIT ${limit}`;
    } else {
      /** Each of the caller's conversations read newest first (by its (conversation_id, id) index) until it has a page of matches; then the pages merge. */
      const perConversation = (bound: string) => `SELECT x.id FROM mine c CROSS JOIN LATERAL (
          SELECT m.id FROM messages m WHERE m.conversation_id = c.conversation_id AND ${bound} AND ${conds} ORDER BY m.id DESC LIMIT ${limit}) x ORDER BY x.id DESC LIMIT ${limit}`;
      if (q.conversationId !== undefined) sql = `WITH mine AS (${mine}) ${perConversation(below)}`;
      else {
        // No trigrams to look up. First the newest `window` messages of all (the primary key
        // backwards, stopping at a page): a common term is answered there, having read
        // little. Below them, only if the page is still short: the caller's conversations,
        // so that a rare term costs the caller's own messages, never everyone's. One
        // statement, one snapshot. (Measured: README, "Cluster mode: search".)
        const window = p(this.window);
        const boundary = `(SELECT m.id FROM messages m WHERE ${below} ORDER BY m.id DESC OFFSET ${window} - 1 LIMIT 1)`;
        sql = `WITH mine AS MATERIALIZED (${mine}),
          near AS MATERIALIZED (
            SELECT m.id FROM (SELECT * FROM messages m WHERE ${below} ORDER BY m.id DESC LIMIT ${window}) m
            WHERE m.conversation_id IN (SELECT conversation_id FROM mine) AND ${conds} ORDER BY m.id DESC LIMIT ${limit})
          SELECT id FROM near
          UNION ALL
          SELECT id FROM (${perConversation(`m.id < ${boundary}`)}) far WHERE (SELECT count(*) FROM near) < ${limit}
          ORDER BY id DESC LIMIT ${limit}`;
      }
    }
    const rows = (await this.db.$client.begin("read only", async (tx) => {
      // Planned for these very terms: a generic plan of a prepared statement (PostgreSQL's
      // choice after five runs) cannot tell a common word from a rare one, and measured
      // 0.5 ms → 1.9 s for "get" by searching the trigram index once per conversation.
      await tx`SET LOCAL plan_cache_mode = force_custom_plan`;
      return tx.unsafe(sql, params);
    })) as { id: string }[];
    return { ids: rows.map((r) => r.id) };
  }

  async findConversations(q: ConversationQuery): Promise<ConversationHit[]> {
    const rows = (await this.db.$client`
      SELECT c.id, c.activity_at AS "activityAt", c.title, u.display_name AS "peerName", u.username AS "peerUsername"
      FROM conversation_members me JOIN conversations c ON c.id = me.conversation_id
      LEFT JOIN conversation_members p ON c.type = 'direct' AND p.conversation_id = c.id AND p.user_id != me.user_id
      LEFT JOIN users u ON u.id = p.user_id
      WHERE me.user_id = ${q.userId}`) as (Omit<NamedConversation, "activityAt"> & { activityAt: string })[];
    // bigint arrives as text.
    return matchConversations(rows.map((r) => ({ ...r, activityAt: Number(r.activityAt) })), q.terms, q.after, q.limit);
  }

  /**
   * Writes search_text for live messages that lack it (rows written before the column
   * existed, or by a writer that did not fold), oldest first, in batches; returns how many.
   */
  async backfill(): Promise<number> {
    let done = 0;
    for (let after = ""; ; ) {
      const rows = (await this.db.$client`
        SELECT id, content FROM messages WHERE search_text IS NULL AND deleted_at IS NULL AND id > ${after} ORDER BY id LIMIT ${BACKFILL_BATCH}`) as { id: string; content: string }[];
      if (rows.length === 0) return done;
      done += await writeFolds(this.db.$client, rows, "m.search_text IS NULL");
      after = rows[rows.length - 1]!.id;
    }
  }
}

/**
 * Writes fold(content) into search_text for `rows` where `condition` holds, and only if the
 * row is live and its text still the one folded (an edit meanwhile wrote its own); returns how many.
 */
async function writeFolds(client: SQL, rows: { id: string; content: string }[], condition: string): Promise<number> {
  const params = rows.flatMap((r) => [r.id, r.content, fold(r.content)]);
  const values = rows.map((_, k) => `($${3 * k + 1}, $${3 * k + 2}, $${3 * k + 3})`).join(", ");
  const updated = await client.unsafe(
    `UPDATE messages m SET search_text = v.folded FROM (VALUES ${values}) AS v(id, content, folded)
     WHERE m.id = v.id AND m.content = v.content AND m.deleted_at IS NULL AND ${condition}`,
    params,
  );
  return updated.count;
}

/**
 * Text in the scripts whose folding FOLD_VERSION 2 changed (combining marks, Greek,
 * Cyrillic, Hebrew, Arabic), with Turkish's dotless ı (4: spelt out as i), and the texts not
 * in NFKC (3: compatibility forms and decomposed text are folded as NFKC): a superset of the
 * texts an earlier fold() wrote otherwise.
 */
const REFOLDED_SCRIPTS = "[\\u0131\\u0300-\\u06ff\\u1f00-\\u1fff\\ufb1d-\\ufb4f]";

/**
 * Brings search_text to the current fold() (FOLD_VERSION) once, when the database's texts
 * were written by another (meta `search_fold`; none: 1): the texts in the scripts it changed,
 * in batches, by message id. Run with the migrations, under their lock, so that one node
 * does it while the others wait. Returns how many texts changed.
 */
export async function refoldSearchTexts(client: SQL): Promise<number> {
  const [row] = (await client`SELECT value FROM meta WHERE key = 'search_fold'`) as { value: string }[];
  if (row?.value === String(FOLD_VERSION)) return 0;
  let done = 0;
  for (let after = ""; ; ) {
    const rows = (await client`
      SELECT id, content FROM messages WHERE search_text IS NOT NULL AND id > ${after}
        AND (search_text ~ ${REFOLDED_SCRIPTS} OR content IS NOT NFKC NORMALIZED) ORDER BY id LIMIT ${BACKFILL_BATCH}`) as { id: string; content: string }[];
    if (rows.length === 0) break;
    done += await writeFolds(client, rows, "m.search_text IS DISTINCT FROM v.folded");
    after = rows[rows.length - 1]!.id;
  }
  await client`INSERT INTO meta (key, value) VALUES ('search_fold', ${String(FOLD_VERSION)}) ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
  return done;
}
