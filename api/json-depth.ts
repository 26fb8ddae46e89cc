/**
 * How deeply a request body may nest arrays and objects. Every body the API accepts is at most two
 * levels deep (api/schemas.ts); 32 leaves room for schemas to grow while keeping each consumer that
 * walks a body recursively (zod, JSON.stringify for the Idempotency-Key fingerprint, the logger) a few
 * dozen frames deep, whatever a client sends. Bodies are at most BODY_LIMIT_BYTES long, so width is
 * bounded by that limit; this bounds depth.
 */
export const MAX_BODY_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * The offset of the first `[` or `{` that opens level `maxDepth + 1`, or null: one pass over the text,
 * no recursion, no allocation, so it costs the same on any input and can run before anything parses.
 * It is not a validator: it only tracks whether it is inside a string (and skips the character after
 * a backslash there), so brackets inside strings do not count. Where this model and a JSON parser's
 * disagree (a raw line break or a bad escape inside a string) the parser has already failed at that
 * character, so a structure the guard did not count is never parsed. A closing bracket never takes the
 * depth below zero: `]]]…[[[…` cannot buy extra levels.
 */
export function firstTooDeep(text: string, maxDepth: number): number | null {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === BACKSLASH) i++;
      else if (code === QUOTE) inString = false;
    } else if (code === QUOTE) {
      inString = true;
    } else if (code === OPEN_BRACKET || code === OPEN_BRACE) {
      depth++;
      if (depth > maxDepth) return i;
    } else if ((code === CLOSE_BRACKET || code === CLOSE_BRACE) && depth > 0) {
      depth--;
    }
  }
  return null;
}
