import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import type { AppDeps } from '../../api/app.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { sampleVehicle, stubFleet, testDeps, type StubFleet } from '../helpers/stub-fleet.js';
import { asCustomer, asOperator } from '../helpers/tokens.js';

/** Every HTTP-level failure comes out as problem+json with the right status and type. */

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function start(overrides: Partial<AppDeps> = {}, env: Record<string, string> = {}): { app: FastifyInstance; stub: StubFleet } {
  const stub = stubFleet();
  app = buildApp(testDeps({ fleet: stub.fleet, ...overrides }, env));
  return { app, stub };
}

function expectProblem(response: LightMyRequestResponse, status: number, slug: string): Record<string, unknown> {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = response.json();
  expect(problem).toMatchObject({ type: `https://fleetactors.dev/problems/${slug}`, status });
  return problem;
}

const vehicle = { type: 'car', location: { lat: 52.5, lon: 13.4 } };

describe('400 validation', () => {
  it.each([
    ['a wrong type', { vehicleId: 42 }, 'body.vehicleId'],
    ['a missing field', {}, 'body.vehicleId'],
    ['an unknown field', { vehicleId: 'veh-1', price: 0 }, 'body.price'],
    ['a bad id', { vehicleId: 'veh 1/..' }, 'body.vehicleId'],
    ['durationMinutes 0', { vehicleId: 'veh-1', durationMinutes: 0 }, 'body.durationMinutes'],
    ['durationMinutes 1441', { vehicleId: 'veh-1', durationMinutes: 1441 }, 'body.durationMinutes'],
    ['durationMinutes 1.5', { vehicleId: 'veh-1', durationMinutes: 1.5 }, 'body.durationMinutes'],
    ['an empty paymentMethod', { vehicleId: 'veh-1', paymentMethod: '' }, 'body.paymentMethod'],
    ['an array body', [{ vehicleId: 'veh-1' }], 'body'],
  ])('POST /bookings with %s → 400 naming %s', async (_case, payload, path) => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: asCustomer(), payload });
    const problem = expectProblem(response, 400, 'validation');
    expect((problem.errors as { path: string }[]).map((error) => error.path)).toContain(path);
    expect(stub.calls).toEqual([]);
  });

  it.each([
    ['lat above 90', { ...vehicle, location: { lat: 90.0001, lon: 0 } }, 'body.location.lat'],
    ['lat below -90', { ...vehicle, location: { lat: -91, lon: 0 } }, 'body.location.lat'],
    ['lon above 180', { ...vehicle, location: { lat: 0, lon: 180.5 } }, 'body.location.lon'],
    ['lon below -180', { ...vehicle, location: { lat: 0, lon: -181 } }, 'body.location.lon'],
    ['lat as a string', { ...vehicle, location: { lat: '52.5', lon: 0 } }, 'body.location.lat'],
    ['an unknown vehicle type', { ...vehicle, type: 'plane' }, 'body.type'],
    ['an unknown field in location', { ...vehicle, location: { lat: 0, lon: 0, alt: 3 } }, 'body.location.alt'],
    ['an id too long', { ...vehicle, id: 'x'.repeat(65) }, 'body.id'],
  ])('POST /vehicles with %s → 400 naming %s', async (_case, payload, path) => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/vehicles', headers: asOperator(), payload });
    const problem = expectProblem(response, 400, 'validation');
    expect(problem.errors).toContainEqual({ path, message: expect.any(String) });
    expect(stub.calls).toEqual([]);
  });

  it.each([
    ['near=abc', 'querystring.near'],
    ['near=52.5', 'querystring.near'],
    ['near=52.5,13.4,7', 'querystring.near'],
    ['near=95,13.4', 'querystring.near.lat'],
    ['near=52.5,-200', 'querystring.near.lon'],
    ['radiusM=500', 'querystring.radiusM'],
    ['near=52.5,13.4&radiusM=-1', 'querystring.radiusM'],
    ['near=52.5,13.4&radiusM=ten', 'querystring.radiusM'],
    ['limit=0', 'querystring.limit'],
    ['limit=1001', 'querystring.limit'],
    ['status=BROKEN', 'querystring.status'],
    ['sort=distance', 'querystring.sort'],
  ])('GET /vehicles?%s → 400 naming %s', async (query, path) => {
    const { app, stub } = start();
    const response = await app.inject({ url: `/vehicles?${query}`, headers: asCustomer() });
    const problem = expectProblem(response, 400, 'validation');
    expect((problem.errors as { path: string }[]).map((error) => error.path)).toContain(path);
    expect(stub.calls).toEqual([]);
  });

  it('a path id outside the id alphabet → 400', async () => {
    const { app } = start();
    const problem = expectProblem(await app.inject({ url: '/bookings/bad%20id', headers: asCustomer() }), 400, 'validation');
    expect(problem.errors).toContainEqual({ path: 'params.id', message: expect.any(String) });
  });

  it.each([
    ['longer than 255', 'k'.repeat(256)],
    ['empty', ''],
    ['with a control character', 'key\u0001'],
  ])('an Idempotency-Key %s → 400', async (_case, key) => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: { ...asCustomer(), 'idempotency-key': key }, payload: { vehicleId: 'veh-1' } });
    expectProblem(response, 400, 'validation');
    expect(stub.calls).toEqual([]);
  });
});

describe('body parsing', () => {
  it('malformed JSON → 400 malformed-json', async () => {
    const { app } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: { ...asCustomer(), 'content-type': 'application/json' }, payload: '{"vehicleId": ' });
    expectProblem(response, 400, 'malformed-json');
  });

  it('an empty JSON body → 400 malformed-json', async () => {
    const { app } = start();
    const response = await app.inject({ method: 'POST', url: '/unlock', headers: { ...asCustomer(), 'content-type': 'application/json' }, payload: '' });
    expectProblem(response, 400, 'malformed-json');
  });

  it.each(['text/plain', 'application/xml', 'application/x-www-form-urlencoded'])('a %s body → 415', async (contentType) => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: { ...asCustomer(), 'content-type': contentType }, payload: 'vehicleId=veh-1' });
    expectProblem(response, 415, 'unsupported-media-type');
    expect(stub.calls).toEqual([]);
  });

  it('a body over BODY_LIMIT_BYTES → 413', async () => {
    const { app, stub } = start({}, { BODY_LIMIT_BYTES: '1024' });
    const payload = JSON.stringify({ vehicleId: 'veh-1', paymentMethod: 'x'.repeat(2000) });
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: { ...asCustomer(), 'content-type': 'application/json' }, payload });
    const problem = expectProblem(response, 413, 'body-too-large');
    expect(problem.detail).toContain('1024');
    expect(stub.calls).toEqual([]);
  });

  it('a JSON body with __proto__ is refused, never merged into an object', async () => {
    const { app, stub } = start();
    const response = await app.inject({
      method: 'POST',
      url: '/bookings',
      headers: { ...asCustomer(), 'content-type': 'application/json' },
      payload: '{"vehicleId":"veh-1","__proto__":{"admin":true}}',
    });
    expectProblem(response, 400, 'malformed-json');
    expect(stub.calls).toEqual([]);
  });
});

describe('routing', () => {
  it('an unknown route → 404 problem+json', async () => {
    const { app } = start();
    const problem = expectProblem(await app.inject({ url: '/garages/1' }), 404, 'not-found');
    expect(problem.instance).toBe('/garages/1');
  });

  it('a known path with another method → 405 with Allow', async () => {
    const { app } = start();
    const response = await app.inject({ method: 'DELETE', url: '/bookings/bk_1', headers: asCustomer() });
    expectProblem(response, 405, 'method-not-allowed');
    expect(response.headers.allow).toBe('GET, HEAD');
  });

  it('PUT /vehicles → 405 allowing GET, HEAD, POST', async () => {
    const { app } = start();
    const response = await app.inject({ method: 'PUT', url: '/vehicles', headers: asOperator(), payload: vehicle });
    expectProblem(response, 405, 'method-not-allowed');
    expect(response.headers.allow).toBe('GET, HEAD, POST');
  });

  it('a trailing slash reaches the same route', async () => {
    const { app } = start();
    expect((await app.inject({ url: '/vehicles/', headers: asCustomer() })).statusCode).toBe(200);
  });
});

describe('500', () => {
  it('an unexpected error → 500 problem without its message or stack, logged with the trace id', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line)) });
    const fleet = stubFleet({
      cancel: async () => {
        throw new Error('sqlite exploded at /var/secret/fleet.db');
      },
    }).fleet;
    app = buildApp(testDeps({ fleet, logger }));
    const response = await app.inject({ method: 'POST', url: '/bookings/bk_1/cancel', headers: asCustomer() });
    const problem = expectProblem(response, 500, 'internal');
    expect(response.body).not.toContain('sqlite');
    expect(response.body).not.toContain('at ');
    const logged = lines.find((line) => line.level === 50);
    expect(logged).toMatchObject({ traceId: problem.traceId, err: { message: 'sqlite exploded at /var/secret/fleet.db' } });
  });

  it('a full disk under the registry (SQLITE_FULL thrown) → 503 storage-full, not 500', async () => {
    const fleet = stubFleet({
      cancel: async () => {
        throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      },
    }).fleet;
    app = buildApp(testDeps({ fleet }));
    const problem = expectProblem(await app.inject({ method: 'POST', url: '/bookings/bk_1/cancel', headers: asCustomer() }), 503, 'storage-full');
    expect(problem.detail).toMatch(/disk is full/);
  });

  it('a response that breaks its schema → 500, never a half-valid body', async () => {
    const fleet = stubFleet({ getVehicle: async () => sampleVehicle({ status: 'FLYING' as never }) }).fleet;
    app = buildApp(testDeps({ fleet }));
    expectProblem(await app.inject({ url: '/vehicles/veh-1', headers: asCustomer() }), 500, 'internal');
  });
});
