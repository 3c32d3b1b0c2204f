// fold(): the one definition of how search compares text, used by the server (text.ts)
// and by the indexer worker (which gets this file's text, as it cannot import modules).

/**
 * Which fold() an index holds. An index (SQLite's search.db, PostgreSQL's search_text)
 * written with another version is made again when the server starts: change it with any
 * change to what fold() returns.
 */
export const FOLD_VERSION = 4;

/**
 * What fold() may change beyond case: Latin letters beyond ASCII (Latin-1 to Extended-B,
 * Extended Additional), combining accents, Greek (its accents and final sigma), Cyrillic
 * letters with a stress accent or ё, Hebrew's points and its presentation forms, Arabic's
 * harakat, its letters with a hamza or madda, and tatweel.
 */
const ACCENTED =
  /[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f\u0370-\u03ff\u1f00-\u1fff\u0400\u0401\u040d\u0450\u0451\u045d\u0591-\u05c7\ufb1d-\ufb4f\u0610-\u061a\u0622-\u0626\u0640\u064b-\u065f\u0670\u06c0\u06c2\u06d3\u06d6-\u06ed]/;

/**
 * Whether fold() does more to `s` than lower-case it.
 * @param {string} s
 * @returns {boolean}
 */
export const stripsMarks = (s) => ACCENTED.test(s);

/**
 * A letter whose marks fold() may remove (tatweel, which only stretches the letters
 * around it, counts as one and goes too), then its marks, in NFD. The letter must be a
 * letter: Hebrew's points and some of Arabic's marks belong to those scripts too.
 */
const BASE_THEN_MARKS = /((?=\p{L})[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Hebrew}\p{Script=Arabic}\u0640])(\p{M}+)/gu;
const CYRILLIC = /^\p{Script=Cyrillic}$/u;
/** A stress accent (grave, acute); on е also the diaeresis, as ё is written е; on г and к only the grave, as ѓ and ќ are letters. */
const CYRILLIC_ACCENTS = /[\u0300\u0301]/g;
const CYRILLIC_ACCENTS_ON_E = /[\u0300\u0301\u0308]/g;
const CYRILLIC_ACCENTS_ON_G_K = /\u0300/g;
const accentsOn = (base) => (base === "е" || base === "Е" ? CYRILLIC_ACCENTS_ON_E : /^[гГкК]$/.test(base) ? CYRILLIC_ACCENTS_ON_G_K : CYRILLIC_ACCENTS);

/**
 * The marks (NFD) that fold() keeps after `base`, a letter that BASE_THEN_MARKS matches:
 * none after Latin, Greek, Hebrew and Arabic letters (accents, breathings, vowel points,
 * harakat, hamza and madda above a letter); after a Cyrillic letter all but a stress
 * accent and ё's diaeresis, as й, ї, ў, ѓ and ќ are letters of their own.
 * @param {string} base
 * @param {string} marks
 * @returns {string}
 */
export const keptMarks = (base, marks) => (CYRILLIC.test(base) ? marks.replace(accentsOn(base), "") : "");

/**
 * Lower-case Latin letters that Unicode does not decompose into a letter and an accent (a
 * stroke, a ligature, Turkish's dotless ı), as their writers type them on a keyboard without
 * them: "Łódź" is found by "lodz", "œuvre" by "oeuvre", "Straße" by "strasse", "ıspanak" by
 * "ispanak" and "ISPANAK" (ı's capital is I, which lower-cases to i outside Turkish; since 4).
 */
const UNDECOMPOSED = { "ß": "ss", "æ": "ae", "ð": "d", "ı": "i", "ø": "o", "þ": "th", "đ": "d", "ħ": "h", "ł": "l", "œ": "oe", "ŧ": "t" };
const UNDECOMPOSED_LETTER = /[ßæðıøþđħłœŧ]/g;

/**
 * A lower-cased piece of text with its undecomposed Latin letters spelt out (UNDECOMPOSED),
 * and Greek's final sigma as σ (lower-casing gives ς at a word's end: "ΟΔΟΣ" is found by "οδοσ").
 * @param {string} s
 * @returns {string}
 */
export const spellOut = (s) => s.replace(UNDECOMPOSED_LETTER, (c) => UNDECOMPOSED[c]).replaceAll("ς", "σ");

/**
 * Hangul letters written on their own (compatibility jamo ㄱ ㅠ ㄳ, and their half-width
 * forms): NFKC makes them conjoining jamo, which compose with the syllable before ("감사ㄳ"
 * became "감삯", and "감사" no longer found it; "ㅋㅋㅠㅠ" became "ㅋ큐ㅠ"). Left as typed.
 */
export const STANDALONE_HANGUL = /[\u3131-\u318e\uffa0-\uffdc]/;
const OUTSIDE_STANDALONE_HANGUL = /[^\u3131-\u318e\uffa0-\uffdc]+/g;

/**
 * `s` in NFKC, but for the Hangul letters written on their own (STANDALONE_HANGUL), which
 * never compose with what is around them as typed.
 * @param {string} s
 * @returns {string}
 */
export const compatible = (s) => (STANDALONE_HANGUL.test(s) ? s.replace(OUTSIDE_STANDALONE_HANGUL, (run) => run.normalize("NFKC")) : s.normalize("NFKC"));

/**
 * Compatibility forms as what they stand for (NFKC: fullwidth "Ａｂｃ" as "Abc", "ﬁ" as
 * "fi", half-width katakana as katakana, "²" as "2"), and decomposed text composed (NFD
 * Hangul as typed elsewhere); then lower-cased, with the diacritics of Latin, Greek, Hebrew
 * and Arabic letters and the stress accents of Cyrillic ones removed ("Café" → "cafe",
 * "Αθήνα" → "αθηνα", "Ёлка" → "елка"), tatweel removed, the Latin letters Unicode does not
 * decompose spelt out ("Łódź" → "lodz", "ı" → "i") and final sigma as σ. Thai vowel signs,
 * Devanagari's, and other scripts' combining marks are letters, and stay.
 * @param {string} s
 * @returns {string}
 */
export function fold(s) {
  // NFKC of text that is already (nearly all) costs ~0.1 µs.
  const k = compatible(s);
  // Most text (English, Thai, CJK) has nothing to strip: 0.7 µs instead of 15 for a Thai line.
  if (!stripsMarks(k)) return k.toLowerCase();
  const stripped = k.normalize("NFD").replace(BASE_THEN_MARKS, (_, base, marks) => base + keptMarks(base, marks));
  return spellOut(stripped.replaceAll("\u0640", "").normalize("NFC").toLowerCase());
}
