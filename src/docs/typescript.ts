/**
 * Models as TypeScript type text: for the generated client types (scripts/client-types.ts)
 * and the WebSocket page (/docs/ws). Named models print as their name.
 */
import type { TSchema } from "elysia";
import { nameOf } from "../lib/model";

type Node = {
  type?: string;
  const?: unknown;
  anyOf?: Node[];
  /** OpenAPI's form of a union of literals (a query parameter's). */
  enum?: unknown[];
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  patternProperties?: Record<string, Node>;
  description?: string;
  /** A reference into an OpenAPI document's components (#/components/schemas/Name). */
  $ref?: string;
};

const KEY = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `schema` as a TypeScript type; named sub-schemas (and `schema` itself unless `inline`) by name. */
export function tsType(schema: TSchema, inline = false, indent = ""): string {
  const print = (node: Node, top: boolean, pad: string): string => {
    const name = nameOf(node as TSchema);
    if (name && !top) return name;
    if (node.$ref) return node.$ref.slice(node.$ref.lastIndexOf("/") + 1);
    if (node.const !== undefined) return JSON.stringify(node.const);
    if (node.enum?.length) return node.enum.map((v) => JSON.stringify(v)).join(" | ");
    if (node.anyOf) {
      const parts = node.anyOf.map((n) => print(n, false, pad));
      return [...new Set(parts)].join(" | ") || "undefined";
    }
    switch (node.type) {
      case "string":
        return "string";
      case "number":
      case "integer":
        return "number";
      case "boolean":
        return "boolean";
      case "null":
        return "null";
      case "undefined":
        return "undefined";
      case "array": {
        const item = print(node.items ?? {}, false, pad);
        return /[|&{ ]/.test(item) && !item.startsWith("{") ? `(${item})[]` : `${item}[]`;
      }
      case "object": {
        if (node.patternProperties) return `Record<string, ${print(Object.values(node.patternProperties)[0] ?? {}, false, pad)}>`;
        const entries = Object.entries(node.properties ?? {});
        if (!entries.length) return "Record<string, never>";
        const inner = pad + "  ";
        const lines = entries.map(([key, value]) => {
          const optional = node.required?.includes(key) ? "" : "?";
          const doc = value.description && !nameOf(value as TSchema) ? `${inner}/** ${value.description} */\n` : "";
          return `${doc}${inner}${KEY.test(key) ? key : JSON.stringify(key)}${optional}: ${print(value, false, inner)};`;
        });
        return `{\n${lines.join("\n")}\n${pad}}`;
      }
      default:
        return "unknown";
    }
  };
  return print(schema as Node, inline, indent);
}
