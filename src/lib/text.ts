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
 * it: U+061C (ARABIC LETTER MARK, the one Bidi_Control character not listed), the soft
 * hyphen U+00AD, U+180E and U+2060–U+2064 (word joiner, invisible operators). In a name
 * they make one text read as another ("\u202Egnp.exe", "ali\u200Bce", "ali\u00ADce").
 */
export const FORMAT_CHARACTERS = /[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;

/**
 * A display name, title or file name: trimmed, not blank, no control characters, no
 * invisible format characters, at most `max` characters (code points).
 */
export function cleanName(field: string, raw: string, max: number): string {
  // Checked before trimming: JavaScript's trim() would silently drop a leading U+FEFF.
  if (FORMAT_CHARACTERS.test(raw)) throw invalid(field, "must not contain invisible format characters (U+00AD, U+061C, U+180E, U+200B–U+200F, U+202A–U+202E, U+2060–U+2064, U+2066–U+2069, U+FEFF)");
  const name = raw.trim();
  if (!name) throw invalid(field, "must not be blank");
  if (CONTROL_CHARACTERS.test(name)) throw invalid(field, "must not contain control characters");
  if ([...name].length > max) throw invalid(field, `at most ${max} characters`);
  return name;
}
