/**
 * Search text rules, the same for every index implementation (PROTOCOL §8): how `q` is
 * split into terms, how text is folded (case, accents: fold.js) for matching, and snippets.
 */
import { invalid } from "../errors";
import { CONTROL_CHARACTERS } from "../lib/text";
import { compatible, fold, keptMarks, spellOut, STANDALONE_HANGUL, stripsMarks } from "./fold.js";

export { fold };

export const MAX_QUERY = 256;
/** Terms this long or longer (in code points) can use a trigram index; shorter ones are matched by scanning. */
export const INDEXABLE = 3;

export interface Term {
  /** fold(the term as typed, NFC): what the indexes (folded texts) and scanned text are matched against. */
  folded: string;
  /** Long enough for a trigram index. */
  indexable: boolean;
}

/**
 * `"quoted phrases"` or runs of non-space; a quote without its partner is plain text. A phrase
 * may start inside a run (`say"hello"` is `say` and `hello`; it was the one word `say"hello"`,
 * quotes and all, which matched nothing).
 */
const TERM = /"([^"]*)"|((?:[^\s"]|"(?![^"]*"))+)/g;

/**
 * The terms of a query, all of which must match. 422 for an empty or blank query, one over
 * MAX_QUERY characters, or one with control characters.
 */
export function parseQuery(raw: string | undefined): Term[] {
  // Curly and fullwidth quotes (phones' smart punctuation) quote as " does.
  const q = (raw ?? "").normalize("NFC").replace(/[\u201c\u201d\u201e\u201f\uff02]/g, '"');
  if (q.trim() === "") throw invalid("q", "must not be empty");
  if (q.length > MAX_QUERY && [...q].length > MAX_QUERY) throw invalid("q", `at most ${MAX_QUERY} characters`);
  if (CONTROL_CHARACTERS.test(q)) throw invalid("q", "must not contain control characters");
  const terms = new Map<string, Term>();
  for (const m of q.matchAll(TERM)) {
    const text = m[1] ?? m[2]!;
    const folded = fold(text);
    if (text.trim() === "" || folded === "" || terms.has(folded)) continue;
    terms.set(folded, { folded, indexable: [...folded].length >= INDEXABLE });
  }
  if (terms.size === 0) throw invalid("q", "nothing to search for");
  return [...terms.values()];
}

/** A conversation as the quick switcher matches it: a group's title, a direct conversation's peer. */
export interface NamedConversation {
  id: string;
  activityAt: number;
  title: string | null;
  peerName: string | null;
  peerUsername: string | null;
}

/**
 * The page of `rows` (a user's conversations: few enough to match here, like any name
 * list) whose names hold every term, after the cursor, most recent activity first.
 */
export function matchConversations(rows: NamedConversation[], terms: readonly Term[], after: { activityAt: number; id: string } | undefined, limit: number) {
  return rows
    .filter((r) => !after || r.activityAt < after.activityAt || (r.activityAt === after.activityAt && r.id < after.id))
    .filter((r) => matchesAll(fold(`${r.title ?? ""}\n${r.peerName ?? ""}\n${r.peerUsername ?? ""}`), terms))
    .sort((a, b) => b.activityAt - a.activityAt || (a.id < b.id ? 1 : -1))
    .slice(0, limit)
    .map(({ id, activityAt }) => ({ id, activityAt }));
}

/** A letter whose marks fold() may remove, or tatweel (as fold.js BASE_THEN_MARKS). */
const BASE = /^(?=\p{L})[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Hebrew}\p{Script=Arabic}\u0640]$/u;
const MARK = /^\p{M}$/u;

/** Whether every term occurs in the text (fold(text) given). */
export const matchesAll = (folded: string, terms: readonly Term[]) => terms.every((t) => folded.includes(t.folded));

/**
 * fold() code point by code point, remembering where each folded unit came from: `from[j]`
 * and `to[j]` are the original range of the code points that folded unit j came from.
 * Its `folded` is fold(s), whatever the normal form of `s` (tests check; exported for them).
 */
export function foldWithOrigins(s: string): { folded: string; from: number[]; to: number[] } {
  let folded = "";
  const from: number[] = [];
  const to: number[] = [];
  const k = compatible(s); // as fold()
  const strip = stripsMarks(k); // as fold(): text with nothing to strip is only lower-cased
  // fold() reads the text in NFKC. Text not in it (a compatibility form, decomposed text as
  // some systems send it) is read here a code point's NFKC at a time, and those pieces may
  // compose with the one before: Hangul jamo, two-part Indic vowels, a kept Cyrillic mark.
  // Folded apart, such text was found in the index but never marked.
  const composes = s !== k;
  let base: string | null = null; // the letter that the marks being read belong to
  let baseAt = 0; // where that letter's piece starts in `folded`, and in `s`
  let baseFrom = 0;
  let lastAt = 0; // where the previous code point's piece starts in `folded`, and in `s`
  let lastFrom = 0;
  let clusterAt = 0; // where the piece of the last code point that is not a mark starts, and in `s`
  let clusterFrom = 0;
  /** `piece` (from s[at, end)) appended, or composed with the piece from `joinAt` (s from `joinFrom`) when NFC joins them. */
  const put = (piece: string, at: number, end: number, joinAt: number, joinFrom: number, join: boolean) => {
    if (join) {
      const prev = folded.slice(joinAt);
      const joined = spellOut((prev + piece).normalize("NFC").toLowerCase());
      if (joined !== prev + piece) {
        folded = folded.slice(0, joinAt) + joined;
        from.length = to.length = joinAt;
        for (let k = 0; k < joined.length; k++) (from.push(joinFrom), to.push(end));
        lastAt = joinAt;
        lastFrom = joinFrom;
        return;
      }
    }
    lastAt = folded.length;
    lastFrom = at;
    for (let k = 0; k < piece.length; k++) (from.push(at), to.push(end));
    folded += piece;
  };
  /** One code point `c` of the NFKC of s[at, end). */
  const step = (c: string, at: number, end: number) => {
    if (strip && BASE.test(c)) {
      const [letter, ...marks] = c.normalize("NFD");
      base = letter!;
      baseAt = clusterAt = folded.length;
      baseFrom = clusterFrom = at;
      put(c === "\u0640" ? "" : spellOut((letter + keptMarks(letter!, marks.join(""))).normalize("NFC").toLowerCase()), at, end, 0, 0, false);
    } else if (strip && base !== null && MARK.test(c)) {
      // A decomposed accent. One fold() keeps (the breve of й typed as и + U+0306) composes
      // with its letter; one it drops is taken into its letter's range, so that a mark
      // ends after the accent, not between it and its letter.
      const kept = keptMarks(base, c);
      if (kept) put(kept, at, end, baseAt, baseFrom, true);
      else for (let j = baseAt; j < folded.length; j++) to[j] = end;
    } else if (MARK.test(c)) {
      // A mark composes with what it follows since the last character that is not one (the
      // marks between may not block it: ¨, U+0338, U+0301 is ΅ with U+0338).
      base = null;
      // At most a stream-safe run (30 marks) back: a text of thousands of marks joined each to
      // all before it, quadratic (~200 ms for one 4,000-character message's snippet).
      put(spellOut(c.toLowerCase()), at, end, clusterAt, clusterFrom, composes && folded.length - clusterAt <= 32);
    } else {
      // Hangul's vowels and final consonants compose with the piece before (L+V, then LV+T).
      base = null;
      put(spellOut(c.toLowerCase()), at, end, lastAt, lastFrom, composes && folded.length > lastAt);
      clusterAt = lastAt;
      clusterFrom = lastFrom;
    }
  };
  for (let i = 0; i < s.length; ) {
    const cp = String.fromCodePoint(s.codePointAt(i)!);
    const end = i + cp.length;
    if (composes && !STANDALONE_HANGUL.test(cp)) for (const c of cp.normalize("NFKC")) step(c, i, end);
    else step(cp, i, end);
    i = end;
  }
  return { folded, from, to };
}

export const SNIPPET = 200;
/** Characters of context shown before the first match. */
const LEAD = 60;

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** The start of the grapheme that `at` falls in (so a cut never splits a character or a Thai syllable's marks). */
function graphemeStart(s: string, at: number): number {
  if (at <= 0 || at >= s.length) return Math.max(0, Math.min(at, s.length));
  const lo = Math.max(0, at - 32);
  let start = lo;
  for (const g of graphemes.segment(s.slice(lo, Math.min(s.length, at + 32)))) {
    if (lo + g.index > at) break;
    start = lo + g.index;
  }
  return start;
}

/**
 * The text around the first match, HTML-escaped, with every match inside it wrapped in
 * `<mark>…</mark>`: at most SNIPPET characters as sent, markup, escapes and `…` included
 * (a window of SNIPPET characters of text could be twice that once a word repeated in it
 * is marked at every turn). Matches are found on the original text's folded form and
 * mapped back, so the marks cover the original characters.
 */
export function snippet(content: string, terms: readonly Term[]): string {
  const { folded, from, to } = foldWithOrigins(content);
  const ranges: [number, number][] = [];
  for (const t of terms) {
    const n = t.folded.length;
    for (let j = folded.indexOf(t.folded); j !== -1 && n > 0; j = folded.indexOf(t.folded, j + n)) ranges.push([from[j]!, to[j + n - 1]!]);
  }
  ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const first = ranges[0]?.[0] ?? 0;
  const firstEnd = ranges[0]?.[1] ?? 0;
  let start = first <= LEAD ? 0 : graphemeStart(content, first - LEAD);
  let end = start + SNIPPET >= content.length ? content.length : graphemeStart(content, start + SNIPPET);
  const sent = (from: number, to: number) => marked(content, ranges, from, to).length;
  // Too long as sent: the lead keeps at most LEAD characters as sent, the tail what is left;
  // a first match longer than the whole is cut (the length grows with the window).
  if (sent(start, end) > SNIPPET) {
    if (start < first && sent(start, first) > LEAD + 2) start = narrowest(start, first, (from) => sent(from, first) <= LEAD + 2, content);
    const tailFrom = Math.min(end, firstEnd);
    if (sent(start, tailFrom) <= SNIPPET) end = widest(tailFrom, end, (to) => sent(start, to) <= SNIPPET, content);
    else ((start = first), (end = widest(first, tailFrom, (to) => sent(first, to) <= SNIPPET, content)));
  }
  return marked(content, ranges, start, end);
}

// Binary searches over positions, each rounded down to its grapheme's start (rounding keeps
// the order); `ok` changes once between lo and hi.

/** The greatest grapheme boundary in [lo, hi] that `ok` accepts (it accepts lo). */
function widest(lo: number, hi: number, ok: (at: number) => boolean, s: string): number {
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ok(graphemeStart(s, mid))) lo = mid;
    else hi = mid - 1;
  }
  return graphemeStart(s, lo);
}

/** The least grapheme boundary in [lo, hi] that `ok` accepts (it accepts hi). */
function narrowest(lo: number, hi: number, ok: (at: number) => boolean, s: string): number {
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (ok(graphemeStart(s, mid))) hi = mid;
    else lo = mid + 1;
  }
  return graphemeStart(s, lo);
}

/** `content[start, end)` escaped, its matches marked, `…` where it was cut. */
function marked(content: string, ranges: readonly [number, number][], start: number, end: number): string {
  let out = start > 0 ? "…" : "";
  let at = start;
  for (const [a, b] of ranges) {
    const s = Math.max(a, at);
    const e = Math.min(b, end);
    if (e <= s) continue; // inside an earlier mark, or outside the window
    out += plain(content.slice(at, s)) + "<mark>" + plain(content.slice(s, e)) + "</mark>";
    at = e;
  }
  return out + plain(content.slice(at, end)) + (end < content.length ? "…" : "");
}

/** Escaped, with line breaks and runs of spaces shown as one space. */
const plain = (s: string) => Bun.escapeHTML(s.replace(/\s+/g, " ")); // &lt; &gt; &amp; &quot; &#x27;
