/**
 * The two ways a schema lets an unchecked value through (issue #19), found by walking it:
 * - a Transform (Elysia's t.Integer, t.Numeric, t.BooleanString…): `Value.Check` accepts
 *   its encoded form (any numeric string) and never runs the decoder that checks the range;
 * - a union with several object branches, one of which allows unknown fields: a value of
 *   one branch can carry an unchecked field named as in another, and a handler that picks
 *   the branch with `"field" in data` reads it.
 */
import { TransformKind, type TSchema } from "@sinclair/typebox";

type Node = Record<string | symbol, unknown>;
const isNode = (v: unknown): v is Node => typeof v === "object" && v !== null;

/** Human-readable places in `schema` where one of the two patterns occurs; [] when strict. */
export function looseSpots(schema: TSchema | Node | undefined, at = "(root)"): string[] {
  if (!isNode(schema)) return [];
  const spots: string[] = [];
  if (TransformKind in schema) spots.push(`${at}: coerces (a Transform such as Elysia's t.Integer; use Type.Integer from typebox)`);
  const branches = Array.isArray(schema.anyOf) ? (schema.anyOf as Node[]) : [];
  const objects = branches.filter((b) => isNode(b) && b.type === "object");
  if (objects.length > 1)
    for (const [i, b] of objects.entries()) if (b.additionalProperties !== false) spots.push(`${at}: union branch ${i} accepts unknown fields (additionalProperties: false)`);
  for (const [i, b] of branches.entries()) spots.push(...looseSpots(b, `${at}|${i}`));
  for (const key of ["allOf", "oneOf"] as const) if (Array.isArray(schema[key])) (schema[key] as Node[]).forEach((b, i) => spots.push(...looseSpots(b, `${at}&${i}`)));
  if (isNode(schema.properties)) for (const [k, v] of Object.entries(schema.properties)) spots.push(...looseSpots(v as Node, `${at}.${k}`));
  if (isNode(schema.items)) spots.push(...looseSpots(schema.items, `${at}[]`));
  if (isNode(schema.additionalProperties)) spots.push(...looseSpots(schema.additionalProperties, `${at}.*`));
  return spots;
}
