/**
 * JSON can carry lone UTF-16 surrogates (`"\ud800"`), which SQLite stores as U+FFFD. Input
 * is made well-formed the same way on arrival, so what a request echoes, what its event
 * carries and what is read back later are one text.
 */
import { invalid } from "../errors";

export function wellFormed<T>(value: T, depth = 0): T {
  if (typeof value === "string") return (value.isWellFormed() ? value : value.toWellFormed()) as T;
  // Every accepted body is a few levels deep; anything deeper fails validation anyway.
  if (depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = wellFormed(value[i], depth + 1);
  } else if (typeof value === "object" && value !== null) {
    // Own keys only, and written back only when changed (a "__proto__" key stays a plain key).
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const v = o[k];
      const w = wellFormed(v, depth + 1);
      if (w !== v) o[k] = w;
    }
  }
  return value;
}

const MAX_DEPTH = 8;

/** Whether JSON text may hold a surrogate escape (cheap test before walking the parse). */
export const mayHoldSurrogates = (json: string) => /\\u[dD][89a-fA-F]/.test(json);

/** C0 and C1 control characters and DEL: never part of a name, a title or a search. */
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Invisible format characters (PROTOCOL §7.3): zero-width spaces and joiners, directional
 * marks, embeddings, overrides and isolates, and the byte-order mark — the contract's list —
 * and what it calls "bidirectional controls and other invisible format characters" beyond
 * it: every other format character (Unicode's Cf: U+061C ARABIC LETTER MARK, the soft hyphen
 * U+00AD, U+180E, U+2060–U+2064 and U+206A–U+206F, U+FFF9–U+FFFB, the tags U+E0001–U+E007F,
 * musical and hieroglyph format controls…) and the invisible combining grapheme joiner
 * U+034F and Khmer vowels U+17B4–U+17B5. In a name they make one text read as another
 * ("\u202Egnp.exe", "ali\u200Bce", "ali\u00ADce"). Kept: the prepended concatenation marks
 * (Arabic number signs, U+0600–U+0605 and the like), which are seen, and the tags of the
 * flags of England, Scotland and Wales (🏴 + tags + U+E007F; EMOJI_TAG_SEQUENCE).
 */
const FORMAT = /[[\p{Cf}\u034f\u17b4\u17b5]--[\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u{110bd}\u{110cd}]]/v;
/** The three emoji tag sequences Unicode recommends (England, Scotland, Wales): any other run of tags is hidden text. */
const EMOJI_TAG_SEQUENCE = /\u{1F3F4}\u{E0067}\u{E0062}(?:\u{E0065}\u{E006E}\u{E0067}|\u{E0073}\u{E0063}\u{E0074}|\u{E0077}\u{E006C}\u{E0073})\u{E007F}/gu;

/** Whether `text` holds an invisible format character (FORMAT), outside an emoji tag sequence. */
export const hasFormatCharacters = (text: string) => FORMAT.test(text) && FORMAT.test(text.replace(EMOJI_TAG_SEQUENCE, ""));

/**
 * What shows as nothing: spaces, the characters Unicode tells renderers to ignore (Hangul
 * fillers, variation selectors…) and the blank Braille pattern. A name of only these reads
 * as no name. Within a name most are kept (a variation selector makes an emoji one); a
 * Hangul filler only within a syllable (STRAY_HANGUL_FILLER).
 */
const BLANK = /^[\s\p{Default_Ignorable_Code_Point}\u2800]*$/u;
/** Whether `text` shows as nothing (BLANK). */
export const isBlank = (text: string) => BLANK.test(text);

/**
 * Direction controls: marks, embeddings, overrides and isolates. Never part of an emoji
 * (unlike the zero-width joiner, variation selectors and tags, which make emoji sequences).
 */
export const DIRECTION_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/**
 * Hangul fillers outside a syllable, which show as nothing and are the usual way to fake a
 * blank or look-alike name: the compatibility fillers U+3164 and U+FFA0 are never part of
 * a syllable; the conjoining U+115F (no initial) only before a vowel jamo, U+1160 (no
 * vowel) only after an initial jamo, where they stand for a missing part of a syllable
 * (the two together are a syllable of nothing, and show as nothing).
 */
const STRAY_HANGUL_FILLER = /[\u3164\uffa0]|\u115f(?![\u1161-\u11a7\ud7b0-\ud7c6])|(?<![\u1100-\u115e\ua960-\ua97c])\u1160/;
/**
 * A combining mark first (after nothing that shows): it has no letter of its own to sit on,
 * so it joins whatever is shown before the name ("Alice, ́Bob"), and a name of only marks is
 * accents over nothing.
 */
const LEADING_MARK = /^[\s\p{Default_Ignorable_Code_Point}\u2800]*\p{M}/u;
/** Whether `raw` is, once trimmed and composed as cleanName keeps names, the stored name `stored`. */
export const sameName = (raw: string, stored: string) => raw.trim().normalize("NFC") === stored;
/** Line and paragraph separators: a name is one line (the C0 check refuses the rest). */
const LINE_SEPARATORS = /[\u2028\u2029]/;

/**
 * A display name or title: trimmed, in NFC, not blank, no control characters, no invisible
 * format characters or stray Hangul fillers, no combining mark first, at most `max`
 * characters (code points).
 */
export function cleanName(field: string, raw: string, max: number): string {
  // Checked before trimming: JavaScript's trim() would silently drop a leading U+FEFF.
  if (hasFormatCharacters(raw)) throw invalid(field, "must not contain invisible format characters (such as U+200B–U+200F, U+202A–U+202E, U+2066–U+2069, U+FEFF, U+00AD)");
  // Composed (NFC): "Re\u0301my" (as macOS writes file names) and "Rémy" are one name, counted alike (it was kept decomposed).
  const name = raw.trim().normalize("NFC");
  if (BLANK.test(name)) throw invalid(field, "must not be blank");
  if (CONTROL_CHARACTERS.test(name) || LINE_SEPARATORS.test(name)) throw invalid(field, "must not contain control characters or line breaks");
  if (STRAY_HANGUL_FILLER.test(name)) throw invalid(field, "must not contain a Hangul filler outside a syllable (it shows as nothing)");
  if (LEADING_MARK.test(name)) throw invalid(field, "must not begin with an accent or vowel sign that has no letter before it");
  if ([...name].length > max) throw invalid(field, `at most ${max} characters`);
  return name;
}
