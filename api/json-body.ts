import type { FastifyError, FastifyInstance } from 'fastify';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';

/**
 * The JSON body parser: fastify's own (same prototype-poisoning protection, same limits), except that a
 * body that does not parse gets a message saying where it broke. Fastify's error carries no position
 * and V8's messages differ by Node version (20 often names none), so on that failure path only, the
 * body is scanned again by jsonc-parser in strict mode, which reports the offset of the first error.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    parseJson(request, text, (error, value) => {
      if (error && (error as FastifyError).code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        // Valid JSON that fastify still refuses carries a key that could poison prototypes.
        error.message = whereJsonBreaks(text) ?? 'The body must not contain "__proto__" or "constructor": {"prototype": …} keys.';
      }
      done(error, value);
    });
  });
}

/** `The body is not valid JSON: comma expected near "\"b\"" at line 2, column 3 (position 12).`; null for valid JSON. */
export function whereJsonBreaks(text: string): string | null {
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (first === undefined) return null;
  const before = text.slice(0, first.offset);
  const line = before.split('\n').length;
  const column = first.offset - before.lastIndexOf('\n');
  const code = printParseErrorCode(first.error);
  const found = first.length > 0 ? JSON.stringify(text.slice(first.offset, first.offset + Math.min(first.length, 20))) : null;
  // `CommaExpected` → `comma expected`; jsonc-parser's `InvalidSymbol` reads better as what it is.
  const problem =
    code === 'InvalidSymbol' && found
      ? `unexpected ${found}`
      : `${code.replace(/(?<=[a-z])(?=[A-Z])/g, ' ').toLowerCase()}${found ? ` near ${found}` : ''}`;
  return `The body is not valid JSON: ${problem} at line ${line}, column ${column} (position ${first.offset}).`;
}
