/**
 * Finds where a text stops being JSON (RFC 8259, as JSON.parse reads it), for the message a client
 * gets. A loop with an explicit stack of open containers, no recursion: its cost is one pass over the
 * text whatever the nesting, so a body of `[[[[…` cannot exhaust the call stack the way a recursive
 * descent parser does (issue 19).
 */

export interface JsonSyntaxError {
  /** Where the offending token starts, in UTF-16 code units. */
  readonly offset: number;
  /** The offending token's length: 0 at the end of the text. */
  readonly length: number;
  /** What went wrong, in words (`comma expected`); `unexpected` for a token that is not JSON at all. */
  readonly problem: string;
}

type TokenKind = '{' | '}' | '[' | ']' | ':' | ',' | 'string' | 'scalar' | 'eof';

interface Token {
  readonly kind: TokenKind;
  readonly offset: number;
  readonly length: number;
}

/** What the next token must be. */
type Expect = 'value' | 'value-or-]' | 'key-or-}' | 'key' | ':' | ',-or-close' | 'eof';

const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
const LOOKS_NUMERIC = /^-?[0-9]/;
const SIMPLE_ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);
const HEX4 = /^[0-9a-fA-F]{4}$/;

const isWhitespace = (code: number): boolean => code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
/** Ends a bare word (`true`, `12`, `tru`, `'name'`): whitespace or a character that is a token by itself. */
const WORD_ENDS = new Set([...'{}[]":,'].map((char) => char.charCodeAt(0)));
const endsWord = (code: number): boolean => isWhitespace(code) || WORD_ENDS.has(code);

/** The first place `text` is not JSON, or null when JSON.parse would accept it. */
export function firstJsonError(text: string): JsonSyntaxError | null {
  // secure-json-parse (fastify's parser) drops a leading byte order mark before JSON.parse.
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const open: Array<'{' | '['> = [];
  let expect: Expect = 'value';

  // Ends: every token but the end of the text is at least one character long, so `pos` only moves on,
  // and every state either takes the end (`eof`) or refuses it.
  for (;;) {
    const scanned = scan(text, pos);
    if ('problem' in scanned) return scanned;
    const token = scanned;
    pos = token.offset + token.length;
    const fail = (problem: string): JsonSyntaxError => ({ problem, offset: token.offset, length: token.length });
    const afterValue = (): Expect => (open.length === 0 ? 'eof' : ',-or-close');

    switch (expect) {
      case 'value':
      case 'value-or-]':
        if (token.kind === '{' || token.kind === '[') {
          open.push(token.kind);
          expect = token.kind === '{' ? 'key-or-}' : 'value-or-]';
        } else if (token.kind === 'string' || token.kind === 'scalar') {
          expect = afterValue();
        } else if (token.kind === ']' && expect === 'value-or-]') {
          open.pop();
          expect = afterValue();
        } else {
          return fail('value expected');
        }
        break;
      case 'key-or-}':
      case 'key':
        if (token.kind === 'string') expect = ':';
        else if (token.kind === '}' && expect === 'key-or-}') {
          open.pop();
          expect = afterValue();
        } else return fail('property name expected');
        break;
      case ':':
        if (token.kind !== ':') return fail('colon expected');
        expect = 'value';
        break;
      case ',-or-close': {
        const inObject = open[open.length - 1] === '{';
        if (token.kind === ',') expect = inObject ? 'key' : 'value';
        else if (token.kind === (inObject ? '}' : ']')) {
          open.pop();
          expect = afterValue();
        } else if (token.kind === 'eof' || token.kind === '}' || token.kind === ']') {
          return fail(inObject ? 'close brace expected' : 'close bracket expected');
        } else return fail('comma expected');
        break;
      }
      case 'eof':
        if (token.kind === 'eof') return null;
        return fail('end of file expected');
    }
  }
}

/** The token at `from` (after whitespace), or what makes it not JSON. */
function scan(text: string, from: number): Token | JsonSyntaxError {
  let offset = from;
  while (offset < text.length && isWhitespace(text.charCodeAt(offset))) offset++;
  if (offset >= text.length) return { kind: 'eof', offset: text.length, length: 0 };
  const char = text[offset]!;
  switch (char) {
    case '{':
    case '}':
    case '[':
    case ']':
    case ':':
    case ',':
      return { kind: char, offset, length: 1 };
    case '"':
      return scanString(text, offset);
  }
  let end = offset + 1;
  while (end < text.length && !endsWord(text.charCodeAt(end))) end++;
  const word = text.slice(offset, end);
  const length = end - offset;
  if (word === 'true' || word === 'false' || word === 'null' || NUMBER.test(word)) return { kind: 'scalar', offset, length };
  return { problem: LOOKS_NUMERIC.test(word) ? 'invalid number format' : 'unexpected', offset, length };
}

function scanString(text: string, offset: number): Token | JsonSyntaxError {
  for (let i = offset + 1; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x22) return { kind: 'string', offset, length: i + 1 - offset };
    if (code === 0x5c) {
      const escape = text[i + 1];
      if (escape === undefined) break;
      if (escape === 'u') {
        if (!HEX4.test(text.slice(i + 2, i + 6))) return { problem: 'invalid unicode escape', offset: i, length: Math.min(6, text.length - i) };
        i += 5;
      } else if (SIMPLE_ESCAPES.has(escape)) {
        i += 1;
      } else {
        return { problem: 'invalid escape character', offset: i, length: 2 };
      }
    } else if (code === 0x0a || code === 0x0d) {
      // Most often a string whose closing quote is missing: say where the line ends it.
      return { problem: 'line break in string', offset: i, length: 1 };
    } else if (code < 0x20) {
      return { problem: 'control character in string', offset: i, length: 1 };
    }
  }
  return { problem: 'unexpected end of string', offset, length: text.length - offset };
}
