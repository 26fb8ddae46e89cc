import type { FastifyInstance } from 'fastify';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { MAX_BODY_DEPTH } from '../../api/json-depth.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { stubFleet, testDeps, type StubFleet } from '../helpers/stub-fleet.js';
import { asCustomer } from '../helpers/tokens.js';

/**
 * Issue 19: a body of `[[[[…` made the error message's re-parse overflow the stack (500 `internal`, a
 * RangeError in the log, and seconds of latency for everyone at 150 such requests a second). Over a
 * real socket, on every kind of path: a known route, an unknown one, 405 and OPTIONS.
 */

const DEEP = '['.repeat(65_000);
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

let app: FastifyInstance;
let base: string;
let stub: StubFleet;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  stub = stubFleet();
  // The default BODY_LIMIT_BYTES (64 KiB): the body of the report fits under it.
  app = buildApp(testDeps({ fleet: stub.fleet, logger: createLogger('info', sink) }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  base = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  await app.close();
});

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly problem: Record<string, unknown>;
}

async function send(method: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(base + path, { method, headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: response.status, contentType: response.headers.get('content-type'), problem: (await response.json()) as Record<string, unknown> };
}

function expectProblem(answer: Answer, status: number, slug: string): void {
  expect(answer.status, JSON.stringify(answer.problem)).toBe(status);
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  expect(answer.problem).toMatchObject({ type: `https://fleetactors.dev/problems/${slug}`, status });
}

/** Nothing the server logged was an error, and no stack overflow appeared anywhere. */
function expectNoFailureLogged(): void {
  expect(logLines.filter((line) => typeof line.level === 'number' && line.level >= 50)).toEqual([]);
  expect(JSON.stringify(logLines)).not.toMatch(/RangeError|call stack/);
}

describe('a body nested deeper than MAX_BODY_DEPTH, over a real socket', () => {
  it.each([
    ['POST /nope, no token (unknown route)', 'POST', '/nope', {}],
    ['POST /bookings with a token', 'POST', '/bookings', asCustomer()],
    ['OPTIONS /bookings (no OPTIONS route)', 'OPTIONS', '/bookings', {}],
    ['OPTIONS /nope', 'OPTIONS', '/nope', {}],
    ['PUT /bookings with a token (405 path)', 'PUT', '/bookings', asCustomer()],
    ['DELETE /nope', 'DELETE', '/nope', {}],
  ])('%s: 400 body-too-deep before any parse, never 500', async (_case, method, path, headers) => {
    const answer = await send(method, path, DEEP, headers);
    expectProblem(answer, 400, 'body-too-deep');
    expect(answer.problem.detail).toBe(
      `The body nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep: level ${MAX_BODY_DEPTH + 1} opens at line 1, column ${MAX_BODY_DEPTH + 1} (position ${MAX_BODY_DEPTH}).`,
    );
    expect(answer.problem.instance).toBe(path);
    expect(stub.calls).toEqual([]);
    expectNoFailureLogged();
  });

  it('150 at once, the rate of the report: every one 400 body-too-deep, nothing logged as a failure', async () => {
    const answers = await Promise.all(Array.from({ length: 150 }, (_, i) => send('POST', i % 2 === 0 ? '/nope' : '/bookings', DEEP, i % 2 === 0 ? {} : asCustomer())));
    for (const answer of answers) expectProblem(answer, 400, 'body-too-deep');
    expectNoFailureLogged();
  });

  it('without a token on an authenticated route the 401 comes first: the body is never read', async () => {
    expectProblem(await send('POST', '/bookings', DEEP), 401, 'unauthorized');
  });
});

describe('bodies within the limits, over a real socket', () => {
  it(`a body exactly ${MAX_BODY_DEPTH} levels deep is parsed: the route answers (validation, 404, 405), never body-too-deep`, async () => {
    const atLimit = `{"vehicleId":"veh-1","extra":${nested(MAX_BODY_DEPTH - 1)}}`;
    const refused = await send('POST', '/bookings', atLimit, asCustomer());
    expectProblem(refused, 400, 'validation');
    expect(refused.problem.errors).toContainEqual({ path: 'body.extra', message: 'unknown field' });
    expectProblem(await send('POST', '/nope', nested(MAX_BODY_DEPTH)), 404, 'not-found');
    expectProblem(await send('PUT', '/bookings', nested(MAX_BODY_DEPTH), asCustomer()), 405, 'method-not-allowed');
    // One level more is refused before parsing.
    expectProblem(await send('POST', '/nope', nested(MAX_BODY_DEPTH + 1)), 400, 'body-too-deep');
    expectNoFailureLogged();
  });

  it('brackets inside strings do not count towards the depth', async () => {
    const response = await fetch(`${base}/bookings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...asCustomer() },
      body: JSON.stringify({ vehicleId: 'veh-1', paymentMethod: `tok_${'['.repeat(100)}"\\` }),
    });
    expect(response.status).toBe(201);
  });

  it('an ordinary booking still books', async () => {
    const response = await fetch(`${base}/bookings`, { method: 'POST', headers: { 'content-type': 'application/json', ...asCustomer() }, body: JSON.stringify({ vehicleId: 'veh-1' }) });
    expect(response.status).toBe(201);
  });

  it('a malformed body still gets the positional message, on a route and off one', async () => {
    const body = '{\n  "vehicleId": "veh-1"\n  "durationMinutes": 30\n}';
    const expected = 'The body is not valid JSON: comma expected near "\\"durationMinutes\\"" at line 3, column 3 (position 27).';
    for (const [path, headers] of [['/bookings', asCustomer()], ['/nope', {}]] as const) {
      const answer = await send('POST', path, body, headers);
      expectProblem(answer, 400, 'malformed-json');
      expect(answer.problem.detail).toBe(expected);
    }
    // Shallow enough for the guard, broken at the very end: the scanner walks it without recursing.
    const unclosed = await send('POST', '/nope', nested(MAX_BODY_DEPTH).slice(0, -1));
    expectProblem(unclosed, 400, 'malformed-json');
    expect(unclosed.problem.detail).toBe(`The body is not valid JSON: close bracket expected at line 1, column ${2 * MAX_BODY_DEPTH} (position ${2 * MAX_BODY_DEPTH - 1}).`);
    expectNoFailureLogged();
  });
});
