/**
 * How deep a JSON body or frame may nest, one rule for REST and WebSocket alike (§5: frames
 * obey the same rules as REST; a frame nested 50 deep was taken while the same body was 422).
 */
import { AppError } from "../errors";

/** Deeper than any accepted body; far below what makes Elysia's error mapping overflow the stack. */
export const MAX_NESTING = 32;

/** Whether JSON text nests arrays/objects deeper than `limit` (a scan, no recursion). */
export function nestsDeeperThan(json: string, limit = MAX_NESTING): boolean {
  // Each level takes at least one character.
  if (json.length <= limit) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > limit) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/** The error of a body ("body", field "(body)") or a frame ("frame", "(frame)") nested too deep. */
export const tooDeep = (what: "body" | "frame") =>
  new AppError("validation_failed", `${what} is nested more than ${MAX_NESTING} levels deep`, [{ field: `(${what})`, message: `at most ${MAX_NESTING} levels of arrays and objects` }]);
