// Node import hook for openapi-typescript: it builds its output with the TypeScript 5 compiler
// API, which the repo's TypeScript 7 (native, no JS API) lacks; `typescript` resolves to the
// pinned `typescript-5` package for it. Use: node --import ./scripts/typescript-5.mjs …
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent(`export async function resolve(specifier, context, next) {
      return next(specifier === "typescript" ? "typescript-5" : specifier, context);
    }`),
);
