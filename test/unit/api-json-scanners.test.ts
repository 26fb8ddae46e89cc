import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { whereJsonBreaks } from '../../api/json-body.js';
import { firstTooDeep, MAX_BODY_DEPTH } from '../../api/json-depth.js';
import { firstJsonError } from '../../api/json-syntax.js';

/** The two scanners a body passes through (api/json-depth.ts, api/json-syntax.ts): linear, never recursive. */

const MEGABYTE = 1024 * 1024;
/** About 1 MB of `{"a":{"a":…`, each level an open object waiting for its value. */
const OPEN_OBJECTS = '{"a":'.repeat(Math.floor(MEGABYTE / 5));

const parses = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

describe('firstTooDeep', () => {
  it('finds the bracket that opens one level too many', () => {
    expect(firstTooDeep('['.repeat(MAX_BODY_DEPTH) + ']'.repeat(MAX_BODY_DEPTH), MAX_BODY_DEPTH)).toBeNull();
    expect(firstTooDeep('['.repeat(MAX_BODY_DEPTH + 1), MAX_BODY_DEPTH)).toBe(MAX_BODY_DEPTH);
    expect(firstTooDeep('{"a":{"b":[{"c":[]}]}}', 5)).toBeNull();
    expect(firstTooDeep('{"a":{"b":[{"c":[]}]}}', 4)).toBe(16);
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    expect(firstTooDeep(JSON.stringify(['[[[[', '\\"[[[[', '{{{{"']), 2)).toBeNull();
    expect(firstTooDeep('["\\\\", [[]]]', 2)).toBe(8);
  });

  it('cannot be bought extra levels with closing brackets first', () => {
    expect(firstTooDeep(']'.repeat(1000) + '['.repeat(MAX_BODY_DEPTH + 1), MAX_BODY_DEPTH)).toBe(1000 + MAX_BODY_DEPTH);
  });

  it('1 MB of `[` and 1 MB of `{"a":` finish at the first level too many, without throwing', () => {
    expect(firstTooDeep('['.repeat(MEGABYTE), MAX_BODY_DEPTH)).toBe(MAX_BODY_DEPTH);
    expect(firstTooDeep(OPEN_OBJECTS, MAX_BODY_DEPTH)).toBe(5 * MAX_BODY_DEPTH);
    // Unbounded depth: still one pass, no recursion.
    expect(firstTooDeep('['.repeat(MEGABYTE), Number.POSITIVE_INFINITY)).toBeNull();
  });
});

describe('firstJsonError', () => {
  it('1 MB of `[` (and of `{"a":`, and a 1 MB valid deep array) is scanned without throwing', () => {
    expect(firstJsonError('['.repeat(MEGABYTE))).toEqual({ problem: 'value expected', offset: MEGABYTE, length: 0 });
    expect(firstJsonError(OPEN_OBJECTS)).toEqual({ problem: 'value expected', offset: OPEN_OBJECTS.length, length: 0 });
    expect(firstJsonError('['.repeat(MEGABYTE / 2) + ']'.repeat(MEGABYTE / 2))).toBeNull();
    expect(whereJsonBreaks('['.repeat(MEGABYTE))).toBe(`The body is not valid JSON: value expected at line 1, column ${MEGABYTE + 1} (position ${MEGABYTE}).`);
  });

  it.each([
    ['[1, 2', 'close bracket expected at line 1, column 6 (position 5)'],
    ['{"a": 1', 'close brace expected at line 1, column 8 (position 7)'],
    ['[1}', 'close bracket expected near "}" at line 1, column 3 (position 2)'],
    ['{"a" 1}', 'colon expected near "1" at line 1, column 6 (position 5)'],
    ['[1,]', 'value expected near "]" at line 1, column 4 (position 3)'],
    ['[01]', 'invalid number format near "01" at line 1, column 2 (position 1)'],
    ['[1.]', 'invalid number format near "1." at line 1, column 2 (position 1)'],
    ['[NaN]', 'unexpected "NaN" at line 1, column 2 (position 1)'],
    ['{"a": 1} {}', 'end of file expected near "{" at line 1, column 10 (position 9)'],
    ['["a\\x"]', 'invalid escape character near "\\\\x" at line 1, column 4 (position 3)'],
    ['["\\u12"]', 'invalid unicode escape near "\\\\u12\\"]" at line 1, column 3 (position 2)'],
    ['{"a": "b\n}', 'line break in string near "\\n" at line 1, column 9 (position 8)'],
    ['["a\tb"]', 'control character in string near "\\t" at line 1, column 4 (position 3)'],
    ['["abc', 'unexpected end of string near "\\"abc" at line 1, column 2 (position 1)'],
    ['  ', 'value expected at line 1, column 3 (position 2)'],
  ])('%j: %s', (text, where) => {
    expect(whereJsonBreaks(text)).toBe(`The body is not valid JSON: ${where}.`);
  });

  it('takes what fastify takes: a leading byte order mark, escapes, exponents, lone surrogates', () => {
    for (const text of ['\ufeff{"a": 1}', '"\\u00e9\\n\\/"', '[-0.5e+10, 1E3, true, false, null]', '"\ud800"', ' \t\r\n{}\n']) expect(firstJsonError(text)).toBeNull();
  });

  it('any JSON.stringify output, indented or not, is valid', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 2, '\t'), (value, indent) => {
        expect(firstJsonError(JSON.stringify(value, null, indent))).toBeNull();
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with JSON.parse on near-JSON text: an error exactly when JSON.parse refuses it', () => {
    const piece = fc.constantFrom('{', '}', '[', ']', ':', ',', '"', '\\', 'a', '"a"', '1', '-', '.', 'e', '0', 'true', 'nul', ' ', '\n', '\t', 'u', '\u0001', '\ufeff');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), (pieces) => {
        const text = pieces.join('');
        expect(firstJsonError(text) === null, text).toBe(parses(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text));
      }),
      { numRuns: 2000 },
    );
  });
});
