/**
 * The search scenario: a database of `messages` messages (English and Thai) across
 * `conversations` groups, written straight into a migrated data directory (a million REST
 * calls would take longer than the benchmark), one user a member of `memberOf` of them.
 * Times one-word, three-word and 2-character searches over HTTP, checks a sample of pages
 * against a brute-force answer, reports the index's size and build time, and compares
 * send capacity with the search queue on and off in the same run.
 */
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fold, matchesAll, parseQuery } from "../../src/search/text";
import { migrateDataDir, startParley, type ServerUnderTest } from "./lib/server";
import { percentiles, round } from "./lib/stats";
import { sends, type SendScenario } from "./scenarios";

export interface SearchScenario {
  messages: number;
  conversations: number;
  memberOf: number;
  /** Queries timed per kind. */
  queries: number;
  capacity: Omit<SendScenario, "name" | "via">;
  /** On/off pairs of capacity runs (their ratios' median is reported). */
  capacityRounds: number;
}

const EN = ("the be to of and in that have it for not on with he as you do at this but his by from they we say her she or will my one all would there their " +
  "what so up out if about who get which go me when make can like time no just him know take people into year your good some could them see other than then " +
  "now look only come its over think also back after use two how our work first well way even new want because any these give day most us meeting project " +
  "deadline coffee lunch tomorrow today report budget design review client server database search message please thanks update schedule office travel " +
  "weekend family dinner movie music game team plan idea question answer problem issue bug release version launch sales market price order ship invoice " +
  "contract email phone call video photo picture share file document draft final café résumé naïve").split(" ");
const TH = ("สวัสดี ประชุม พรุ่งนี้ วันนี้ กี่โมง ขอบคุณ ครับ ค่ะ อาหาร กลางวัน โครงการ รายงาน ลูกค้า เซิร์ฟเวอร์ ฐานข้อมูล ค้นหา ข้อความ กรุณา อัปเดต ตาราง " +
  "สำนักงาน เดินทาง สุดสัปดาห์ ครอบครัว อาหารเย็น ภาพยนตร์ เพลง เกม ทีม แผน ความคิด คำถาม คำตอบ ปัญหา ราคา สั่งซื้อ จัดส่ง ใบแจ้งหนี้ สัญญา อีเมล " +
  "โทรศัพท์ วิดีโอ รูปภาพ แบ่งปัน ไฟล์ เอกสาร ร่าง สุดท้าย กาแฟ งบประมาณ ออกแบบ ตรวจสอบ").split(" ");

/** A small deterministic generator (the same data every run). */
function random(seed: number) {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x7fffffff);
}

/** Messages as the generated database holds them: 4–15 words, 70 % English, 30 % Thai. */
function sentences(rnd: () => number) {
  // Common words often, rare ones seldom (Zipf-like), as in real text.
  const pick = <T>(list: T[]) => list[Math.floor(list.length * rnd() ** 1.6)]!;
  return () => {
    const n = 4 + Math.floor(rnd() * 12);
    const thai = rnd() < 0.3;
    const words = Array.from({ length: n }, () => pick(thai ? TH : EN));
    // Thai is mostly written without spaces between words.
    return { words, content: words.join(thai && rnd() < 0.7 ? "" : " ") };
  };
}

export interface Generated {
  username: string;
  password: string;
  /** The searcher's messages, oldest first: what a brute-force search reads. */
  mine: { id: string; content: string; words: string[] }[];
}

/**
 * The scenario's data, the same every run whatever database it goes into: users (the last
 * one searches), groups (the searcher in `memberOf` of them), then messages, oldest first.
 */
export function corpus(s: Pick<SearchScenario, "messages" | "conversations" | "memberOf">) {
  const rnd = random(42);
  const sentence = sentences(rnd);
  const now = Date.now();
  const start = now - s.messages * 5 - 60_000;
  const userCount = Math.max(10, s.conversations);
  const users = Array.from({ length: userCount + 1 }, () => Bun.randomUUIDv7("hex", start - 1000));
  const searcher = users[userCount]!;
  const username = `searcher${Math.random().toString(36).slice(2, 8)}`;
  const userRows = users.map((id, i) => ({ id, username: i === userCount ? username : `bench_${id.slice(-12)}`, displayName: i === userCount ? "Searcher" : `User ${i}` }));
  const convs: { id: string; title: string; activityAt: number; members: string[] }[] = [];
  const every = Math.floor(s.conversations / s.memberOf);
  for (let c = 0; c < s.conversations; c++) {
    const id = Bun.randomUUIDv7("hex", start - 500);
    const members = [...new Set([users[Math.floor(rnd() * userCount)]!, users[Math.floor(rnd() * userCount)]!, users[Math.floor(rnd() * userCount)]!])];
    if (c % every === 0 && c / every < s.memberOf) members.push(searcher);
    convs.push({ id, title: `room ${c}`, activityAt: start * 1000 + c, members });
  }
  function* messages() {
    for (let k = 0; k < s.messages; k++) {
      const conv = convs[Math.floor(rnd() * convs.length)]!;
      const { words, content } = sentence();
      const at = start + k * 5;
      const id = Bun.randomUUIDv7("hex", at);
      yield { id, conversationId: conv.id, senderId: conv.members[Math.floor(rnd() * conv.members.length)]!, content, createdAt: at, words, mine: conv.members.includes(searcher) };
    }
  }
  return { start, users: userRows, searcher, username, password: "password123", convs, messages };
}

/** Writes users, groups, memberships and messages straight into a migrated parley.db. */
function generate(dataDir: string, s: SearchScenario): Generated {
  const c = corpus(s);
  const db = new Database(join(dataDir, "parley.db"));
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = OFF");
  const hash = Bun.password.hashSync(c.password, { algorithm: "argon2id", memoryCost: 1024, timeCost: 2 });
  const statements: ReturnType<Database["prepare"]>[] = [];
  const prepare = (sql: string) => (statements.push(db.prepare(sql)), statements[statements.length - 1]!);
  db.transaction(() => {
    const user = prepare("INSERT INTO users (id, username, display_name, password_hash, last_active_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (const u of c.users) user.run(u.id, u.username, u.displayName, hash, c.start, c.start, c.start);
    const conv = prepare("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES (?, 'group', ?, ?, ?, ?, ?)");
    const member = prepare("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)");
    for (const g of c.convs) {
      conv.run(g.id, g.title, g.members[0]!, c.start, c.start, g.activityAt);
      g.members.forEach((u, k) => member.run(g.id, u, k === 0 ? "owner" : "member", c.start));
    }
  })();
  const mine: Generated["mine"] = [];
  const insert = prepare("INSERT INTO messages (id, conversation_id, sender_id, message_type, content, created_at) VALUES (?, ?, ?, 'text', ?, ?)");
  const BATCH = 10_000;
  const all = c.messages();
  for (let i = 0; i < s.messages; i += BATCH) {
    db.transaction(() => {
      for (let k = i; k < Math.min(i + BATCH, s.messages); k++) {
        const m = all.next().value!;
        insert.run(m.id, m.conversationId, m.senderId, m.content, m.createdAt);
        if (m.mine) mine.push({ id: m.id, content: m.content, words: m.words });
      }
    })();
  }
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  // A connection with live statements outlives close() and keeps its locks.
  for (const stmt of statements) stmt.finalize();
  db.close();
  return { username: c.username, password: c.password, mine };
}

/** Until the server's background indexer has everything queued; returns the seconds it took. */
async function indexed(dataDir: string, timeoutS: number): Promise<number> {
  const t0 = performance.now();
  const db = new Database(join(dataDir, "parley.db"));
  try {
    db.run(`ATTACH DATABASE '${join(dataDir, "search.db")}' AS search`);
    for (;;) {
      // New messages past indexed_rowid, where the index has that mark (not before 0014_search_new_messages).
      const byRowid = (db.query("SELECT name FROM pragma_table_info('state', 'search') WHERE name = 'indexed_rowid'").values() as [string][]).length > 0;
      const [[left]] = db
        .query(`SELECT (SELECT count(*) FROM search_pending WHERE seq > (SELECT indexed_seq FROM search.state))${byRowid ? " + (SELECT count(*) FROM messages WHERE rowid > (SELECT indexed_rowid FROM search.state))" : ""}`)
        .values() as [[number]];
      if (left === 0) return round((performance.now() - t0) / 1000, 1);
      if (performance.now() - t0 > timeoutS * 1000) throw new Error(`search index not built after ${timeoutS} s (${left} left)`);
      await Bun.sleep(200);
    }
  } finally {
    db.close();
  }
}

/** Bytes of the live pages of a database file (WAL included), in MB. */
function databaseMb(file: string): number {
  const db = new Database(file);
  try {
    const [[pages]] = db.query("PRAGMA page_count").values() as [[number]];
    const [[size]] = db.query("PRAGMA page_size").values() as [[number]];
    return round((pages * size) / 1e6, 1);
  } finally {
    db.close();
  }
}

/** The kinds of query timed, each a generator of queries (the same sequence every run). */
export function queryKinds(g: Pick<Generated, "mine">): Record<string, () => string> {
  const rnd = random(7);
  const any = <T>(list: T[]) => list[Math.floor(rnd() * list.length)]!;
  const word = () => (rnd() < 0.6 ? any(EN.filter((w) => [...w].length >= 3)) : any(TH));
  return {
    one_word: word,
    // Three words of one of the searcher's messages (so there is something to find) …
    three_words: () => {
      const words = [...new Set(any(g.mine).words.filter((w) => [...w].length >= 3))];
      return (words.length >= 3 ? words.slice(0, 3) : [...words, word(), word()].slice(0, 3)).join(" ");
    },
    // … and three taken at random (often nothing: every match in the database is looked at).
    three_random_words: () => [word(), word(), word()].join(" "),
    two_characters: () => {
      const w = [...word()];
      const at = Math.floor(rnd() * (w.length - 1));
      return w.slice(at, at + 2).join("");
    },
  };
}

/** What a correct first page holds: every term in the text, newest first. */
export function bruteForce(g: Pick<Generated, "mine">, q: string, limit: number): string[] {
  const terms = parseQuery(q);
  const out: string[] = [];
  for (let k = g.mine.length - 1; k >= 0 && out.length < limit; k--) if (matchesAll(fold(g.mine[k]!.content), terms)) out.push(g.mine[k]!.id);
  return out;
}

export async function searchScenario(s: SearchScenario) {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-search-"));
  migrateDataDir(dataDir);
  const t0 = performance.now();
  const g = generate(dataDir, s);
  const generateS = round((performance.now() - t0) / 1000, 1);
  const sut = await startParley({}, dataDir);
  let summary: Record<string, unknown>;
  try {
    const buildS = await indexed(dataDir, 1800);
    const login = await (await fetch(`${sut.base}/api/auth/login`, { method: "POST", body: JSON.stringify({ username: g.username, password: g.password }) })).json() as { token: string };
    const kinds = queryKinds(g);
    const latency: Record<string, Record<string, number>> = {};
    const hits: Record<string, number> = {};
    let wrong = 0;
    let checked = 0;
    for (const [kind, make] of Object.entries(kinds)) {
      const times: number[] = [];
      let found = 0;
      for (let i = 0; i < s.queries; i++) {
        const q = make();
        const started = performance.now();
        const res = await fetch(`${sut.base}/api/search/messages?q=${encodeURIComponent(q)}&limit=20`, { headers: { authorization: `Bearer ${login.token}` } });
        const body = (await res.json()) as { items: { message: { id: string } }[] };
        times.push(performance.now() - started);
        if (!res.ok) throw new Error(`search ${q}: ${res.status} ${JSON.stringify(body)}`);
        found += body.items.length;
        // A sample checked against brute force (every query in --quick).
        if (i % 10 === 0 || s.queries <= 30) {
          checked++;
          const want = bruteForce(g, q, 20);
          const got = body.items.map((it) => it.message.id);
          if (want.join() !== got.join()) {
            wrong++;
            console.error(`search: wrong page for ${JSON.stringify(q)}: ${got.length} ids, expected ${want.length}`);
          }
        }
      }
      latency[kind] = percentiles(times, [50, 99, 100]);
      hits[kind] = round(found / s.queries, 1);
    }
    summary = {
      scenario: "search",
      messages: s.messages,
      conversations: s.conversations,
      member_of: s.memberOf,
      searchable_messages: g.mine.length,
      queries_per_kind: s.queries,
      latency_ms: latency,
      mean_hits_per_page: hits,
      checked_pages: checked,
      wrong_pages: wrong,
      generate_s: generateS,
      index_build_s: buildS,
      parley_db_mb: databaseMb(join(dataDir, "parley.db")),
      search_db_mb: databaseMb(join(dataDir, "search.db")),
      search_db_file_mb: round((statSync(join(dataDir, "search.db")).size + walSize(join(dataDir, "search.db-wal"))) / 1e6, 1),
    };
  } finally {
    await sut.stop();
    if (!process.env.BENCH_KEEP) rmSync(dataDir, { recursive: true, force: true });
  }
  return { ...summary, ...(await searchCapacity(s.capacity, s.capacityRounds)) };
}

const walSize = (file: string) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};

/**
 * The send path's triggers dropped, and the indexer told it has every message already
 * (where it reads new messages from messages itself, since 0014_search_new_messages): the
 * server as it was before search.
 */
async function withoutSearchQueue(sut: ServerUnderTest) {
  const db = new Database(join(sut.dataDir, "parley.db"));
  for (const t of ["search_pending_insert", "search_pending_update", "search_pending_delete"]) db.run(`DROP TRIGGER ${t}`);
  db.run(`ATTACH DATABASE '${join(sut.dataDir, "search.db")}' AS search`);
  if ((db.query("SELECT name FROM pragma_table_info('state', 'search') WHERE name = 'indexed_rowid'").values() as [string][]).length > 0)
    db.run("UPDATE search.state SET indexed_rowid = ?", [Number.MAX_SAFE_INTEGER]);
  db.close();
}

const SETTLE_MS = 5500;
/** Sends before the measured ones, so that the JIT's one-off work (the indexer's code too) is left out. */
const WARMUP_S = 3;

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * Persisted send capacity (REST, like `capacity`) with the search queue and indexer on, and
 * off, in `rounds` back-to-back pairs (the order alternating, so a drift of the machine's
 * load favours neither). Two measures per pair: the throughput ratio, which moves with
 * whatever else the shared machine runs, and the ratio of server CPU per persisted send
 * (off / on), which is the capacity ratio of a CPU-bound server and moves far less. The
 * "on" CPU includes the worker's until the index holds every message sent (its catch-up
 * after the last send), so deferring work does not make it look cheaper. Messages are text
 * like the search database's, so the index pays for real trigrams. Each server first sends
 * for WARMUP_S unmeasured: a short run would otherwise charge the JIT's one-off compiles
 * (of the indexer's code too) to its few thousand sends.
 */
export async function searchCapacity(capacity: SearchScenario["capacity"], rounds: number) {
  const text = sentences(random(11));
  const pairs: Record<"on" | "off", { sent_per_s: number; cpu_us_per_send: number; by_thread: Record<string, number>; caught_up_s?: number }>[] = [];
  for (let round = 0; round < rounds; round++) {
    const pair: Partial<(typeof pairs)[number]> = {};
    for (const variant of round % 2 ? (["on", "off"] as const) : (["off", "on"] as const)) {
      const sut = await startParley();
      try {
        if (variant === "off") await withoutSearchQueue(sut);
        const r = await sends(sut, {
          name: `capacity_search_${variant}`,
          via: "rest",
          ...capacity,
          text: () => text().content,
          // Until the index holds everything sent, so its catch-up counts in the server
          // CPU; both variants wait as long (the threads' idle CPU counts alike), at least
          // the indexer's longest wait for a batch (5 s) and a poll.
          settle: async (s) => {
            const until = performance.now() + SETTLE_MS;
            const caughtUp = variant === "on" ? await indexed(s.dataDir, 600) : undefined;
            await Bun.sleep(Math.max(0, until - performance.now()));
            return caughtUp;
          },
          byThread: true,
          warmupSeconds: WARMUP_S,
        });
        const byThread = r.server_cpu_us_per_message_by_thread!;
        const cpuUs = r.server_cpu_us_per_message_all_threads!;
        pair[variant] = { sent_per_s: r.sent_per_s as number, cpu_us_per_send: cpuUs, by_thread: byThread, ...(variant === "on" ? { caught_up_s: r.settled as number } : {}) };
        console.error(`search capacity, round ${round + 1}/${rounds}, index ${variant}: ${r.sent_per_s} msg/s, ${cpuUs} µs server CPU per send (live threads: ${Object.entries(byThread).map(([name, us]) => `${name} ${us}`).join(", ")})${variant === "on" ? `, index caught up ${r.settled} s after the last delivery` : ""}`);
      } finally {
        await sut.stop();
        rmSync(sut.dataDir, { recursive: true, force: true });
      }
    }
    pairs.push(pair as (typeof pairs)[number]);
  }
  const throughput = pairs.map((p) => round(p.on.sent_per_s / Math.max(1, p.off.sent_per_s), 2));
  const cpu = pairs.map((p) => round(p.off.cpu_us_per_send / p.on.cpu_us_per_send, 2));
  return {
    send_capacity_rounds: pairs,
    send_capacity_ratio_each: throughput,
    cpu_per_send_ratio_each: cpu,
    // Medians over the pairs.
    send_capacity_index_on: median(pairs.map((p) => p.on.sent_per_s)),
    send_capacity_index_off: median(pairs.map((p) => p.off.sent_per_s)),
    send_capacity_ratio: median(throughput),
    cpu_us_per_send_index_on: median(pairs.map((p) => p.on.cpu_us_per_send)),
    cpu_us_per_send_index_off: median(pairs.map((p) => p.off.cpu_us_per_send)),
    // off / on: the capacity of a CPU-bound server with the index, as a share of without.
    cpu_per_send_ratio: median(cpu),
    // Where the difference goes: µs per send by kind of thread (main, Worker 1: the
    // checkpointer, Worker 2: the indexer, JITWorker…), on minus off, median over the pairs. Live threads
    // only: a JIT thread that ended in a run takes its time with it (a negative figure).
    cpu_us_per_send_by_thread_on_minus_off: Object.fromEntries(
      [...new Set(pairs.flatMap((p) => [...Object.keys(p.on.by_thread), ...Object.keys(p.off.by_thread)]))].map((name) => [name, round(median(pairs.map((p) => (p.on.by_thread[name] ?? 0) - (p.off.by_thread[name] ?? 0))), 1)]),
    ),
  };
}
