import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rejection } from '../../actors/contract/rejections.js';
import { buildApp } from '../../api/app.js';
import type { FleetService } from '../../actors/contract/views.js';
import { HTTP_PROBLEMS, PROBLEM_TYPE_BASE, REJECTION_PROBLEMS } from '../../api/problems.js';
import {
  BookingParamsSchema,
  CreateBookingBodySchema,
  IdempotencyKeySchema,
  ListVehiclesQuerySchema,
  RegisterVehicleBodySchema,
  UnlockBodySchema,
} from '../../api/schemas.js';
import { jsonSchemaOf, mutatedObject, typeConfused, validValue } from '../helpers/schema-arbitrary.js';
import { stubFleet, testDeps } from '../helpers/stub-fleet.js';
import { authAs } from '../helpers/tokens.js';

/**
 * Fuzzing from the schemas (api/schemas.ts): every route gets valid, mutated, malformed, oversize and
 * type-confused bodies, headers, params and queries, as customer, operator, anonymous or with a broken
 * token, while the fleet behind answers success or any rejection. Whatever comes in, the answer is
 * the route's documented success or a documented 4xx problem+json with a known type: never a 5xx, a
 * crash or a hang. Through `inject` (many cases), then fewer over a real socket.
 */

const BODY_LIMIT = 4096;
/** Cases per route through inject, and in all over the socket; ~15 s together on a loaded 2-core box. */
const INJECT_RUNS_PER_ROUTE = Number(process.env.FUZZ_RUNS ?? 250);
const SOCKET_RUNS = Math.max(20, Math.floor(INJECT_RUNS_PER_ROUTE / 2));
const RAW_RUNS = 40;
const HANG_MS = 10_000;

/** Answers any route may give, whatever its own list (docs/contract.md, "Errors"). */
const FRAMEWORK_STATUSES = new Set([400, 401, 403, 404, 405, 413, 414, 415, 429, 431]);
const KNOWN_TYPES = new Set([...Object.values(HTTP_PROBLEMS), ...Object.values(REJECTION_PROBLEMS)].map((problem) => PROBLEM_TYPE_BASE + problem.slug));

const ID = validValue(jsonSchemaOf(BookingParamsSchema).properties!.id!) as fc.Arbitrary<string>;

/** An HTTP header value Node will send: tab, printable ASCII and Latin-1. */
const headerText = (maxLength: number) =>
  fc.string({ unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }), fc.constant(0x09)).map((code) => String.fromCharCode(code)), maxLength });

/** A path parameter: a valid id, anything at all (encoded), or one far too long. */
const param = fc.oneof(
  { weight: 3, arbitrary: ID },
  { weight: 3, arbitrary: fc.string({ maxLength: 80 }).filter((text) => text.length > 0) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 90, maxLength: 400 }) },
).map((text) => encodeURIComponent(text));

type Body = { readonly payload: string; readonly contentType: string | null };

function bodies(schema: ReturnType<typeof jsonSchemaOf>): fc.Arbitrary<Body> {
  const json = (value: fc.Arbitrary<unknown>) => value.map((body) => JSON.stringify(body) ?? 'null');
  const payload = fc.oneof(
    { weight: 4, arbitrary: json(validValue(schema)) },
    { weight: 4, arbitrary: json(mutatedObject(schema)) },
    { weight: 2, arbitrary: json(typeConfused(schema)) },
    { weight: 2, arbitrary: fc.string({ maxLength: 60 }) },
    { weight: 1, arbitrary: json(validValue(schema)).map((text) => text.slice(0, Math.max(1, text.length - 3))) },
    { weight: 1, arbitrary: fc.integer({ min: BODY_LIMIT + 1, max: 3 * BODY_LIMIT }).map((size) => JSON.stringify({ padding: 'x'.repeat(size) })) },
    { weight: 1, arbitrary: fc.constant('') },
  );
  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constant('application/json') },
    { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/problem+json', 'multipart/form-data; boundary=x') },
    { weight: 1, arbitrary: headerText(40) },
    { weight: 1, arbitrary: fc.constant(null) },
  );
  return fc.record({ payload, contentType });
}

function query(schema: ReturnType<typeof jsonSchemaOf>): fc.Arbitrary<string> {
  const encode = (value: unknown) =>
    new URLSearchParams(
      Object.entries(value !== null && typeof value === 'object' && !Array.isArray(value) ? value : { q: value }).map(([name, item]): [string, string] => [name, typeof item === 'string' ? item : (JSON.stringify(item) ?? '')]),
    ).toString();
  return fc.oneof(validValue(schema).map(encode), mutatedObject(schema).map(encode), fc.string({ maxLength: 40 }).map((raw) => encodeURI(raw)));
}

type Auth = 'customer' | 'operator' | 'none' | 'garbage';
const auth = fc.constantFrom<Auth>('customer', 'customer', 'operator', 'operator', 'none', 'garbage');
function authHeaders(who: Auth): Record<string, string> {
  if (who === 'none') return {};
  if (who === 'garbage') return { authorization: 'Bearer not.a.token' };
  return authAs(who === 'customer' ? 'fuzz-customer' : 'fuzz-operator', who);
}

interface FuzzRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly url: string;
  readonly route: string;
  readonly headers: Record<string, string>;
  readonly payload?: string;
}

function withBody(method: 'POST', route: string, url: fc.Arbitrary<string>, schema: ReturnType<typeof jsonSchemaOf>, extraHeaders: fc.Arbitrary<Record<string, string>> = fc.constant({})): fc.Arbitrary<FuzzRequest> {
  return fc.record({ url, who: auth, body: bodies(schema), extra: extraHeaders }).map(({ url, who, body, extra }) => ({
    method,
    url,
    route,
    headers: { ...authHeaders(who), ...(body.contentType === null ? {} : { 'content-type': body.contentType }), ...extra },
    payload: body.payload,
  }));
}

function withoutBody(method: 'GET' | 'POST' | 'DELETE', route: string, url: fc.Arbitrary<string>): fc.Arbitrary<FuzzRequest> {
  return fc.record({ url, who: auth }).map(({ url, who }) => ({ method, url, route, headers: authHeaders(who) }));
}

const idempotencyKey = fc.option(fc.oneof(validValue(jsonSchemaOf(IdempotencyKeySchema)) as fc.Arbitrary<string>, headerText(300)), { nil: undefined });

/** Every route of the API (events and traces are not served without their ports), as `[method path template, requests]`. */
const ROUTES: ReadonlyArray<readonly [string, fc.Arbitrary<FuzzRequest>]> = [
  ['POST /vehicles', withBody('POST', '/vehicles', fc.constant('/vehicles'), jsonSchemaOf(RegisterVehicleBodySchema))],
  ['GET /vehicles', withoutBody('GET', '/vehicles', query(jsonSchemaOf(ListVehiclesQuerySchema)).map((q) => `/vehicles?${q}`))],
  ['GET /vehicles/{id}', withoutBody('GET', '/vehicles/{id}', param.map((id) => `/vehicles/${id}`))],
  ['POST /vehicles/{id}/credentials', withoutBody('POST', '/vehicles/{id}/credentials', param.map((id) => `/vehicles/${id}/credentials`))],
  ['DELETE /vehicles/{id}/presence', withoutBody('DELETE', '/vehicles/{id}/presence', param.map((id) => `/vehicles/${id}/presence`))],
  [
    'POST /bookings',
    withBody('POST', '/bookings', fc.constant('/bookings'), jsonSchemaOf(CreateBookingBodySchema), idempotencyKey.map((key): Record<string, string> => (key === undefined ? {} : { 'idempotency-key': key }))),
  ],
  ['GET /bookings/{id}', withoutBody('GET', '/bookings/{id}', param.map((id) => `/bookings/${id}`))],
  ['POST /bookings/{id}/unlock', withoutBody('POST', '/bookings/{id}/unlock', param.map((id) => `/bookings/${id}/unlock`))],
  ['POST /bookings/{id}/cancel', withoutBody('POST', '/bookings/{id}/cancel', param.map((id) => `/bookings/${id}/cancel`))],
  ['POST /bookings/{id}/end', withoutBody('POST', '/bookings/{id}/end', param.map((id) => `/bookings/${id}/end`))],
  ['POST /unlock', withBody('POST', '/unlock', fc.constant('/unlock'), jsonSchemaOf(UnlockBodySchema))],
  ['GET /health', withoutBody('GET', '/health', fc.constant('/health'))],
  ['GET /metrics', withoutBody('GET', '/metrics', fc.constant('/metrics'))],
  // Any method on any path, encoded: the 404/405 side.
  ['any', fc.record({ method: fc.constantFrom<'GET' | 'POST' | 'DELETE'>('GET', 'POST', 'DELETE'), path: fc.array(param, { minLength: 1, maxLength: 4 }), who: auth }).map(({ method, path, who }) => ({ method, url: `/${path.join('/')}`, route: 'any', headers: authHeaders(who) }))],
];

/**
 * What the fleet answers next: success, or one of the refusals that call can really give. Only the
 * client's (4xx) ones: the 503/504 of an actor or a vehicle that does not answer are documented answers
 * of the system, not of the HTTP layer that is fuzzed here.
 */
const notFound: Rejection = { type: 'BookingNotFound', bookingId: 'bk_1' };
const forbidden: Rejection = { type: 'BookingForbidden', bookingId: 'bk_1' };
const wrongState: Rejection = { type: 'InvalidBookingState', bookingId: 'bk_1', status: 'COMPLETED', expected: ['CONFIRMED'] };
const REFUSALS: { readonly [M in 'registerVehicle' | 'createBooking' | 'getBooking' | 'unlock' | 'cancel' | 'end']: readonly Rejection[] } = {
  registerVehicle: [{ type: 'VehicleAlreadyRegistered', vehicleId: 'veh-1' }],
  createBooking: [
    { type: 'VehicleNotFound', vehicleId: 'veh-1' },
    { type: 'VehicleUnavailable', vehicleId: 'veh-1', status: 'IN_USE' },
    { type: 'VehicleLowBattery', vehicleId: 'veh-1', battery: 4 },
    { type: 'PaymentDeclined', authorizationId: 'auth_1', reason: 'card_declined' },
    { type: 'BookingAlreadyExists', bookingId: 'bk_1' },
    { type: 'ActiveBookingLimitReached', customerId: 'fuzz-customer', limit: 1, liveBookingIds: ['bk_s0_fuzz'] },
  ],
  getBooking: [notFound, forbidden],
  unlock: [notFound, forbidden, wrongState, { type: 'VehicleRejectedCommand', vehicleId: 'veh-1', command: 'UNLOCK', reason: 'kickstand down' }],
  cancel: [notFound, forbidden, wrongState],
  end: [notFound, forbidden, wrongState],
};
/** An index into the called method's refusals (modulo their count), or null for success. */
const nextOutcome = fc.option(fc.nat({ max: 100 }), { nil: null, freq: 2 });

let app: FastifyInstance;
let base: string;
let port: number;
let refuseNext: number | null = null;
/** Documented statuses per `METHOD /path/{param}`, from the app's own OpenAPI document. */
let documented: Map<string, Set<number>>;
let injectCases = 0;
let socketCases = 0;
let rawCases = 0;

function fuzzFleet(): FleetService {
  const canned = stubFleet().fleet;
  const orRefuse =
    <A extends unknown[], T>(method: keyof typeof REFUSALS, call: (...args: A) => Promise<T>) =>
    async (...args: A): Promise<T> => {
      const refusals = REFUSALS[method];
      return (refuseNext === null ? await call(...args) : { ok: false, rejection: refusals[refuseNext % refusals.length] }) as T;
    };
  return {
    ...canned,
    registerVehicle: orRefuse('registerVehicle', canned.registerVehicle),
    createBooking: orRefuse('createBooking', canned.createBooking),
    getBooking: orRefuse('getBooking', canned.getBooking),
    unlock: orRefuse('unlock', canned.unlock),
    cancel: orRefuse('cancel', canned.cancel),
    end: orRefuse('end', canned.end),
  };
}

beforeAll(async () => {
  app = buildApp(testDeps({ fleet: fuzzFleet() }, { BODY_LIMIT_BYTES: String(BODY_LIMIT) }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  port = address.port;
  base = `http://127.0.0.1:${port}`;
  const doc = (await app.inject({ url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>();
  documented = new Map();
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) documented.set(`${method.toUpperCase()} ${path}`, new Set(Object.keys(operation.responses).map(Number)));
  }
});

afterAll(async () => {
  // The lead reports this figure.
  console.log(`fuzz cases run: ${injectCases} through inject, ${socketCases} over a real socket, ${rawCases} raw socket writes (${injectCases + socketCases + rawCases} in all)`);
  await app?.close();
});

interface Answer {
  readonly statusCode: number;
  readonly contentType: string;
  readonly body: string;
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms: ${what}`)), HANG_MS);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

/** The oracle: a documented status, problem+json with a known type for every error, never a 5xx. */
function check(request: FuzzRequest, answer: Answer): void {
  const what = `${request.method} ${request.url.slice(0, 200)} → ${answer.statusCode} ${answer.body.slice(0, 300)}`;
  // /health answers 503 by contract when a dependency is down; the stub's are all up.
  expect(answer.statusCode, what).toBeLessThan(500);
  const allowed = documented.get(`${request.method} ${request.route}`);
  if (answer.statusCode >= 400) {
    expect(FRAMEWORK_STATUSES.has(answer.statusCode) || allowed?.has(answer.statusCode), `undocumented status: ${what}`).toBe(true);
    expect(answer.contentType, what).toMatch(/^application\/problem\+json/);
    const problem = JSON.parse(answer.body) as Record<string, unknown>;
    expect(KNOWN_TYPES.has(String(problem.type)), `unknown problem type: ${what}`).toBe(true);
    expect(problem.status, what).toBe(answer.statusCode);
    expect(typeof problem.title === 'string' && typeof problem.detail === 'string', what).toBe(true);
  } else {
    expect(allowed?.has(answer.statusCode), `undocumented success: ${what}`).toBe(true);
  }
}

describe('fuzzing every route from its schemas', () => {
  it.each(ROUTES.map(([name, requests]) => [name, requests] as const))('%s through inject: only documented answers', async (_name, requests) => {
    await fc.assert(
      fc.asyncProperty(requests, nextOutcome, async (request, outcome) => {
        refuseNext = outcome;
        injectCases += 1;
        const response = await within(app.inject({ method: request.method, url: request.url, headers: request.headers, ...(request.payload === undefined ? {} : { payload: request.payload }) }), request.url);
        check(request, { statusCode: response.statusCode, contentType: String(response.headers['content-type'] ?? ''), body: response.body });
      }),
      { numRuns: INJECT_RUNS_PER_ROUTE },
    );
  });

  it('every route over a real socket: only documented answers, the server still serving after each', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(...ROUTES.map(([, requests]) => requests)), nextOutcome, async (request, outcome) => {
        refuseNext = outcome;
        socketCases += 1;
        const response = await within(
          fetch(base + request.url, { method: request.method, headers: request.headers, ...(request.payload === undefined ? {} : { body: request.payload }) }),
          request.url,
        );
        check(request, { statusCode: response.status, contentType: response.headers.get('content-type') ?? '', body: await response.text() });
      }),
      { numRuns: SOCKET_RUNS },
    );
  });

  it('raw bytes on the socket (broken request lines, headers, framing): an HTTP answer or a closed connection, never a crash', async () => {
    const token = (code: number) => String.fromCharCode(code);
    const junk = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map(token), maxLength: 200 });
    const rawRequest = fc.oneof(
      junk,
      junk.map((line) => `GET /${line} HTTP/1.1\r\nHost: x\r\n\r\n`),
      junk.map((header) => `POST /bookings HTTP/1.1\r\nHost: x\r\nX-Fuzz: ${header}\r\ncontent-length: 2\r\n\r\n{}`),
      fc.integer({ min: -5, max: 100 }).map((length) => `POST /unlock HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n{"bookingId":"b"}`),
      fc.constant(`POST /unlock HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\nzz\r\n`),
    );
    await fc.assert(
      fc.asyncProperty(rawRequest, async (bytes) => {
        rawCases += 1;
        const answer = await within(rawExchange(port, bytes), JSON.stringify(bytes.slice(0, 80)));
        if (answer.length > 0) {
          const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
          expect(status, answer.slice(0, 300)).toBeLessThan(500);
          if (status >= 400) expect(answer, answer.slice(0, 300)).toMatch(/content-type: application\/problem\+json/i);
        }
      }),
      { numRuns: RAW_RUNS },
    );
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});

/** Writes the bytes, half-closes, and collects whatever comes back until the server closes. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(error)));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.end(Buffer.from(bytes, 'latin1'));
  });
}
