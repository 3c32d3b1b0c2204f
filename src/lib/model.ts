/**
 * Building blocks of the models (`src/<feature>/model.ts`): the TypeBox schemas that are
 * the one definition of every shape on the wire. REST validation, the OpenAPI and
 * AsyncAPI documents, the services' types and the reference client's types all come
 * from them.
 *
 * Output shapes (responses, events, server frames) are closed (`additionalProperties:
 * false`), so a field the server sends but the model does not name fails the test suite's
 * check (test/contract.ts) instead of going undocumented.
 */
import { t, type Static, type TSchema } from "elysia";
import { Type, type TObject, type TProperties } from "@sinclair/typebox";

export type { Static };

const NAMES = new WeakMap<TSchema, string>();
const BY_NAME = new Map<string, TSchema>();

/**
 * Gives a schema its name in the documents (OpenAPI `components.schemas`, AsyncAPI
 * `components.schemas`) and in the generated client types; every use of that very object
 * elsewhere becomes a reference to it.
 */
export function named<T extends TSchema>(name: string, schema: T): T {
  if (BY_NAME.has(name)) throw new Error(`models: two models are named ${name}`);
  NAMES.set(schema, name);
  BY_NAME.set(name, schema);
  return schema;
}

export const nameOf = (schema: TSchema): string | undefined => NAMES.get(schema);
/** Every named model, in the order they were defined. */
export const namedModels = (): ReadonlyMap<string, TSchema> => BY_NAME;

/** A closed object: an output shape, exactly these fields. */
export const Shape = <P extends TProperties>(properties: P, options: { description?: string } = {}): TObject<P> =>
  t.Object(properties, { additionalProperties: false, ...options });

export const Id = t.String();
/** ISO-8601 UTC with milliseconds; `description`: what the time is of, where the field's name is not enough. */
export const TimestampOf = (description?: string) => t.String({ format: "date-time", ...(description && { description }) });
export const Timestamp = TimestampOf();
/**
 * A string of at most `max` characters as the server counts them (code points, often after
 * trimming), which the service checks with its own message. The schema's own bound is a
 * looser one in UTF-16 units (`units`: TypeBox counts those, and 64 emoji are 128), against
 * bodies made to be huge; the documents say `max`, which JSON Schema counts in code points
 * (a generated client's checks then match the server's: from an acceptance pass).
 */
export const Characters = (max: number, units: number, options: { minLength?: number; description?: string } = {}) =>
  t.String({ ...options, maxLength: units, documented: { maxLength: max } });

/** A plain JSON integer (Elysia's `t.Integer` also accepts numeric strings). */
export const Int = (options: { minimum?: number; maximum?: number; description?: string } = {}) => Type.Integer(options);
export const Nullable = <T extends TSchema>(schema: T) => t.Union([schema, t.Null()]);
export const OneOf = <const L extends string[]>(...values: L) => t.Union(values.map((v) => t.Literal(v)) as { [K in keyof L]: ReturnType<typeof t.Literal<L[K]>> });

/** A page of a list (PROTOCOL §2). */
export const PageOf = <T extends TSchema>(item: T) => Shape({ items: t.Array(item), next_cursor: Nullable(t.String({ description: "pass as ?cursor= for the next page" })) });

/** What a feature's model declares besides its schemas; src/models.ts gathers them. */
export interface FeatureModel {
  /** Persisted events (with `seq`; PROTOCOL §6): type → `data` schema. */
  events?: Record<string, TSchema>;
  /** Server → client frames that are not persisted (replies, presence, typing, alerts). */
  signals?: Record<string, TSchema>;
  /** Client → server frames: type → `data` schema. */
  requests?: Record<string, TSchema>;
  /** The `result` of the `ack` that answers a request carrying a `request_id`: request type → schema. */
  acks?: Record<string, TSchema>;
  /** The frames (other than `ack` and `error`) that answer a request: request type → signal types. */
  replies?: Record<string, string[]>;
}
