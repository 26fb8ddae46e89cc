import type { FastifyError, FastifyInstance } from 'fastify';
import { firstTooDeep, MAX_BODY_DEPTH } from './json-depth.js';
import { firstJsonError } from './json-syntax.js';

/**
 * The JSON body parser: fastify's own (same prototype-poisoning protection), with two additions that
 * keep a body from costing more than one pass over its bytes (issue 19):
 *
 * - before anything parses it, a body nested deeper than MAX_BODY_DEPTH is refused (400
 *   `body-too-deep`). Its size is already bounded: fastify stops reading at BODY_LIMIT_BYTES (413)
 *   before this parser runs.
 * - a body that does not parse gets a message saying where it broke, found by an iterative scanner
 *   (api/json-syntax.ts). Fastify's error carries no position and V8's messages differ by Node version.
 *
 * Fastify runs a route's content-type parser for unknown routes too (the 404 and 405 answers come from
 * the not-found handler, after parsing), and for OPTIONS and DELETE as for POST: registered once on the
 * root, before any route, this parser is the only one every path uses. It runs after the onRequest
 * hooks, so a body is never read for a request the per-address limit or (on authenticated routes) the
 * token check refuses.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    const tooDeep = firstTooDeep(text, MAX_BODY_DEPTH);
    if (tooDeep !== null) {
      done(new BodyTooDeepError(text, tooDeep), undefined);
      return;
    }
    parseJson(request, text, (error, value) => {
      if (error && (error as FastifyError).code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        // Valid JSON that fastify still refuses carries a key that could poison prototypes.
        error.message = whereJsonBreaks(text) ?? 'The body must not contain "__proto__" or "constructor": {"prototype": …} keys.';
      }
      done(error, value);
    });
  });
}

/** Its `code` is what api/error-handling.ts maps to the `body-too-deep` problem. */
export class BodyTooDeepError extends Error {
  readonly code = 'FLEET_ERR_BODY_TOO_DEEP';
  readonly statusCode = 400;

  constructor(text: string, offset: number) {
    super(`The body nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep: level ${MAX_BODY_DEPTH + 1} opens ${at(text, offset)}.`);
    this.name = 'BodyTooDeepError';
  }
}

/** `The body is not valid JSON: comma expected near "\"b\"" at line 2, column 3 (position 12).`; null for valid JSON. */
export function whereJsonBreaks(text: string): string | null {
  const error = firstJsonError(text);
  if (error === null) return null;
  const found = error.length > 0 ? JSON.stringify(text.slice(error.offset, error.offset + Math.min(error.length, 20))) : null;
  const problem = error.problem === 'unexpected' ? `unexpected ${found ?? 'end'}` : `${error.problem}${found ? ` near ${found}` : ''}`;
  return `The body is not valid JSON: ${problem} ${at(text, error.offset)}.`;
}

/** `at line 2, column 3 (position 12)`: lines split at \n, columns and positions in UTF-16 code units. */
function at(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `at line ${line}, column ${offset - lineStart + 1} (position ${offset})`;
}
