/**
 * Mutators: each turns a valid input (a REST body, a frame's data) into a hostile one, the
 * way an attacker or a broken client would: wrong types, garbage, deep nesting, odd
 * unicode, huge strings, numeric strings, extra or missing fields, other users' ids.
 */
import type { Rng } from "./rng";

/** Strings that have broken parsers, databases and terminals before. */
export const ODD_STRINGS = [
  "", " ", "\u0000", "a\u0000b", "\ud800", "\udfff", "x\ud83d", "\udc00y", "\u202e\u2066evil\u2069", "\u200b", "\ufeff", "\u3000", "\uffff", "\ufffd",
  "e\u0301\u0301\u0301", "👨‍👩‍👧‍👦", "🏳️‍🌈", "ก่ำ", "مرحبا", "\r\n", "\t", "\u0085", "\u2028\u2029", "%00", "%E0%A4%A", "../../etc/passwd", "' OR 1=1 --",
  "\"; DROP TABLE users; --", "<script>alert(1)</script>", "${process.exit()}", "\\", "\\u0000", "__proto__", "constructor", "null", "undefined", "true",
  "💩".repeat(33), "@", "@everyone", "a".repeat(65), "A".repeat(129),
];

/** Strings a lax parser reads as numbers (the `limit: " "` of issue #19). */
export const NUMERIC_STRINGS = [" ", "0", "-1", "-0", "\t\n", "\u3000", "1", "50", "100", "101", "100000", "1e3", "0x10", "1.5", "NaN", "Infinity", "-Infinity", "99999999999999999999", "+5", "5 ", "٣", "1_000"];

export const ODD_NUMBERS = [0, -1, -0, 1, 1.5, 100, 101, 1e308, -1e308, 2 ** 53 + 1, 1e-7, 4294967296, -2147483649];

/** Field names that mean something somewhere in the API: extra fields a handler might read. */
export const LOADED_NAMES = ["user_id", "user_ids", "conversation_id", "message_id", "id", "sender_id", "role", "type", "limit", "cursor", "title", "content",
  "member_ids", "is_typing", "friend_id", "password_hash", "created_by", "seq", "__proto__", "constructor", "prototype", "toString"];

/** A string of each odd kind, or a mix of odd characters. */
export function oddString(r: Rng): string {
  if (r.chance(0.6)) return r.pick(ODD_STRINGS);
  const parts = ["\u0000", "\ud800", "\udc00", "\u202e", "\u200d", "\u0301", "😀", "\u3000", "\n", "'", "\"", "\\", "%", "a", "ท", "\u0007"];
  let s = "";
  for (let i = r.int(40) + 1; i > 0; i--) s += r.pick(parts);
  return s;
}

/** Around and past the limits: 4,000 characters of content, 20,000 units, the 64 KiB body. */
export function hugeString(r: Rng): string {
  return r.pick(["a", "é", "😀", " ", "\u0000", "\ud800"]).repeat(r.pick([257, 4_001, 20_001, 33_000, 70_000]) / 2 + 1);
}

/** `value` wrapped `levels` deep in arrays or objects. */
export function nest(value: unknown, levels: number, asObject: boolean): unknown {
  let v = value;
  for (let i = 0; i < levels; i++) v = asObject ? { a: v } : [v];
  return v;
}

/** Any JSON value, small. */
export function anyValue(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 5 : 7)) {
    case 0: return null;
    case 1: return r.chance(0.5);
    case 2: return r.pick(ODD_NUMBERS);
    case 3: return oddString(r);
    case 4: return r.pick(NUMERIC_STRINGS);
    case 5: return Array.from({ length: r.int(4) }, () => anyValue(r, depth + 1));
    default: return Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick(LOADED_NAMES), anyValue(r, depth + 1)]));
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Paths to the fields of `value` (objects and arrays, two levels down). */
export function fieldPaths(value: unknown, prefix: (string | number)[] = [], depth = 0): (string | number)[][] {
  if (depth > 2) return [];
  const out: (string | number)[][] = [];
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : isObj(value) ? Object.entries(value) : [];
  for (const [k, v] of entries) {
    out.push([...prefix, k]);
    out.push(...fieldPaths(v, [...prefix, k], depth + 1));
  }
  return out;
}

function setAt(root: unknown, path: (string | number)[], make: (old: unknown) => unknown, remove = false) {
  let at = root as Obj;
  for (const k of path.slice(0, -1)) at = at[k as string] as Obj;
  const last = path[path.length - 1]!;
  if (remove) {
    if (Array.isArray(at)) at.splice(last as number, 1);
    else delete at[last as string];
  } else at[last as string] = make(at[last as string]);
}

/** Another type than the old value's. */
function wrongType(r: Rng, old: unknown): unknown {
  for (;;) {
    const v = anyValue(r);
    if (typeof v !== typeof old || Array.isArray(v) !== Array.isArray(old)) return v;
  }
}

export interface MutationContext {
  /** Ids of other users' conversations, messages, friendships: never the fuzzer's own. */
  foreignIds: string[];
  /** How deep to nest (a deep-nesting mutation picks one). */
  depths: number[];
}

/** The mutators of one field: name → new value from the old one. */
const FIELD_MUTATORS: Record<string, (r: Rng, old: unknown, c: MutationContext) => unknown> = {
  wrongType: (r, old) => wrongType(r, old),
  numericString: (r) => r.pick(NUMERIC_STRINGS),
  oddNumber: (r) => r.pick(ODD_NUMBERS),
  oddUnicode: (r, old) => (typeof old === "string" && r.chance(0.5) ? old + oddString(r) : oddString(r)),
  hugeString: (r) => hugeString(r),
  deepNest: (r, old, c) => nest(old ?? "x", r.pick(c.depths), r.chance(0.5)),
  nullify: () => null,
  foreignId: (r, _old, c) => r.pick(c.foreignIds),
  array: (r, old) => (r.chance(0.5) ? [old] : Array.from({ length: r.pick([0, 1, 501, 2000]) }, (_, i) => (typeof old === "string" ? `${old.slice(0, 64)}${i}` : i))),
};

/** Mutators of the whole input. */
const WHOLE_MUTATORS: Record<string, (r: Rng, value: unknown, c: MutationContext) => unknown> = {
  extraFields: (r, value, c) => {
    const o = isObj(value) ? value : {};
    // defineProperty: a "__proto__" key must stay a key, not set the prototype.
    for (let i = r.int(3) + 1; i > 0; i--) {
      const v = r.chance(0.2) ? nest(anyValue(r), r.pick(c.depths), r.chance(0.5)) : anyValue(r);
      Object.defineProperty(o, r.pick(LOADED_NAMES), { value: v, enumerable: true, writable: true, configurable: true });
    }
    return o;
  },
  garbage: (r) => anyValue(r),
  wholeDeep: (r, value, c) => nest(value, r.pick(c.depths), r.chance(0.5)),
};

export const MUTATOR_NAMES = [...Object.keys(FIELD_MUTATORS), "dropField", ...Object.keys(WHOLE_MUTATORS)];

/**
 * One mutation of `value` (which it may change in place): returns the new value and the
 * mutator's name.
 */
export function mutate(r: Rng, value: unknown, c: MutationContext): { value: unknown; name: string; path?: (string | number)[] } {
  const paths = fieldPaths(value);
  if (paths.length === 0 || r.chance(0.15)) {
    const name = r.pick(Object.keys(WHOLE_MUTATORS));
    return { value: WHOLE_MUTATORS[name]!(r, value, c), name };
  }
  const path = r.pick(paths);
  if (r.chance(0.1)) {
    setAt(value, path, () => undefined, true);
    return { value, name: "dropField", path };
  }
  const name = r.pick(Object.keys(FIELD_MUTATORS));
  setAt(value, path, (old) => FIELD_MUTATORS[name]!(r, old, c));
  return { value, name, path };
}
