/**
 * Models as plain JSON Schema for the documents: named models become references
 * (`$ref: <prefix><Name>`), TypeBox's non-JSON parts (symbols, `undefined` branches) go, and
 * a `documented` keyword's bounds replace the schema's own (see lib/model `Characters`).
 */
import type { TSchema } from "elysia";
import { nameOf, namedModels } from "../lib/model";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** `schema` as JSON Schema; named sub-schemas (and `schema` itself unless `inline`) as references under `prefix`. */
export function toJsonSchema(schema: TSchema, prefix: string, inline = false): Json {
  const walk = (node: unknown, top: boolean): Json => {
    if (Array.isArray(node)) return node.map((n) => walk(n, false));
    if (node === null || typeof node !== "object") return node as Json;
    const name = nameOf(node as TSchema);
    if (name && !top) return { $ref: prefix + name };
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(node)) {
      if (value === undefined || key === "documented") continue;
      // `t.Undefined()` (a frame with no data) has no JSON form: absence says it.
      if (key === "anyOf" && Array.isArray(value)) {
        const kept = value.filter((v) => (v as { type?: string }).type !== "undefined");
        out.anyOf = kept.map((n) => walk(n, false));
        continue;
      }
      out[key] = walk(value, false);
    }
    // After the schema's own keys (TypeBox writes `type` after the options): the documents' bounds win.
    const documented = (node as { documented?: Record<string, Json> }).documented;
    if (documented) Object.assign(out, documented);
    return out;
  };
  return walk(schema, inline);
}

/** Every named model as JSON Schema, by name, for `components.schemas`. */
export function components(prefix: string): Record<string, Json> {
  return Object.fromEntries([...namedModels()].map(([name, schema]) => [name, toJsonSchema(schema, prefix, true)]));
}
