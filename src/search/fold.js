// fold(): the one definition of how search compares text, used by the server (text.ts)
// and by the indexer worker (which gets this file's text, as it cannot import modules).

/** Latin letters beyond ASCII (Latin-1 to Extended-B, Extended Additional) and combining accents: the only text fold() changes beyond case. */
const ACCENTED = /[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f]/;

/**
 * Whether fold() removes Latin letters' marks from `s` (else it only lower-cases it).
 * @param {string} s
 * @returns {boolean}
 */
export const stripsMarks = (s) => ACCENTED.test(s);
const LATIN_THEN_MARKS = /(\p{Script=Latin})\p{M}+/gu;

/**
 * Lower-case Latin letters that Unicode does not decompose into a letter and an accent (a
 * stroke, a ligature), as their writers type them on a keyboard without them: "Łódź" is
 * found by "lodz", "œuvre" by "oeuvre", "Straße" by "strasse".
 */
const UNDECOMPOSED = { "ß": "ss", "æ": "ae", "ð": "d", "ø": "o", "þ": "th", "đ": "d", "ħ": "h", "ł": "l", "œ": "oe", "ŧ": "t" };
const UNDECOMPOSED_LETTER = /[ßæðøþđħłœŧ]/g;

/**
 * A lower-cased piece of text with its undecomposed Latin letters spelt out (UNDECOMPOSED).
 * @param {string} s
 * @returns {string}
 */
export const spellOut = (s) => s.replace(UNDECOMPOSED_LETTER, (c) => UNDECOMPOSED[c]);

/**
 * Lower-cased, with the diacritics of Latin letters removed ("Café" → "cafe") and the
 * letters Unicode does not decompose spelt out ("Łódź" → "lodz"). Thai vowel signs and
 * other scripts' combining marks are letters, and stay.
 * @param {string} s
 * @returns {string}
 */
export function fold(s) {
  // Most text (English, Thai, CJK) has nothing to strip: 0.7 µs instead of 15 for a Thai line.
  if (!stripsMarks(s)) return s.toLowerCase();
  return spellOut(s.normalize("NFD").replace(LATIN_THEN_MARKS, "$1").normalize("NFC").toLowerCase());
}
