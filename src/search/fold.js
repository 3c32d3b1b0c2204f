// fold(): the one definition of how search compares text, used by the server (text.ts)
// and by the indexer worker (which gets this file's text, as it cannot import modules).

/** Latin letters beyond ASCII (Latin-1 to Extended-B, Extended Additional) and combining accents: the only text fold() changes beyond case. */
const ACCENTED = /[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f]/;
const LATIN_THEN_MARKS = /(\p{Script=Latin})\p{M}+/gu;

/**
 * Lower-cased, with the diacritics of Latin letters removed ("Café" → "cafe"), as SQLite's
 * trigram tokenizer with remove_diacritics folds: Thai vowel signs and other scripts'
 * combining marks are letters there, and stay.
 * @param {string} s
 * @returns {string}
 */
export function fold(s) {
  // Most text (English, Thai, CJK) has nothing to strip: 0.7 µs instead of 15 for a Thai line.
  if (!ACCENTED.test(s)) return s.toLowerCase();
  return s.normalize("NFD").replace(LATIN_THEN_MARKS, "$1").normalize("NFC").toLowerCase();
}
