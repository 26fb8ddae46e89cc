import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { signToken } from '../../actors/contract/tokens.js';
import { createTokenVerifier } from '../../api/auth.js';
import { stubFleet, testDeps, type StubFleet } from '../helpers/stub-fleet.js';
import { waitFor } from '../helpers/wait.js';
import { TEST_JWT_SECRET, asCustomer, asOperator, expiredToken, tokenFor } from '../helpers/tokens.js';

let app: FastifyInstance;
let stub: StubFleet;
beforeEach(() => {
  stub = stubFleet();
  app = buildApp(testDeps({ fleet: stub.fleet }));
});
afterEach(() => app.close());

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const unsigned = (claims: Record<string, unknown>): string =>
  `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

describe('401 for a missing or bad token', () => {
  it('without Authorization: 401 problem and a Bearer challenge', async () => {
    const response = await app.inject({ url: '/vehicles' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="fleetactors"');
    expect(response.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/unauthorized', status: 401, instance: '/vehicles' });
  });

  it.each([
    ['not a Bearer scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, 'invalid_request'],
    ['garbage', bearer('not.a.jwt'), 'invalid_token'],
    ['signed with another secret', bearer(tokenFor('alice', 'customer', { secret: 'another-secret-of-enough-length' })), 'invalid_token'],
    ['alg none', bearer(unsigned({ sub: 'alice', role: 'operator', exp: inAnHour() })), 'invalid_token'],
    ['an unknown role', bearer(createSigner({ key: TEST_JWT_SECRET, expiresIn: 60_000 })({ sub: 'alice', role: 'admin' })), 'invalid_token'],
    ['no exp', bearer(createSigner({ key: TEST_JWT_SECRET })({ sub: 'alice', role: 'customer' })), 'invalid_token'],
    ['a sub with a control character', bearer(createSigner({ key: TEST_JWT_SECRET, expiresIn: 60_000 })({ sub: 'a\nb', role: 'customer' })), 'invalid_token'],
    ['no sub', bearer(createSigner({ key: TEST_JWT_SECRET, expiresIn: 60_000 })({ role: 'customer' })), 'invalid_token'],
  ])('a token that is %s → 401', async (_case, headers, error) => {
    const response = await app.inject({ url: '/vehicles', headers });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe(`Bearer realm="fleetactors", error="${error}"`);
    expect(response.json().type).toBe('https://fleetactors.dev/problems/unauthorized');
    expect(stub.calls).toEqual([]);
  });

  it('without a token, the problem says how to make one (npm run token)', async () => {
    const response = await app.inject({ url: '/vehicles' });
    expect(response.json().detail).toContain('npm run -s token -- --sub <you> --role customer');
  });

  it('a token signed with another secret: the problem points at a FLEET_JWT_SECRET mismatch', async () => {
    const response = await app.inject({ url: '/vehicles', headers: bearer(tokenFor('alice', 'customer', { secret: 'another-secret-of-enough-length' })) });
    expect(response.statusCode).toBe(401);
    expect(response.json().detail).toMatch(/signature does not match .* another FLEET_JWT_SECRET/);
  });

  it('an expired token → 401 saying so', async () => {
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: bearer(expiredToken()), payload: { vehicleId: 'veh-1' } });
    expect(response.statusCode).toBe(401);
    expect(response.json().detail).toContain('expired');
    expect(stub.calls).toEqual([]);
  });

  it('authenticates before reading the body: no token + bad JSON is still 401', async () => {
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: { 'content-type': 'application/json' }, payload: '{nope' });
    expect(response.statusCode).toBe(401);
  });
});

describe('roles', () => {
  it('POST /vehicles is for operators: a customer gets 403 and nothing is registered', async () => {
    const response = await app.inject({ method: 'POST', url: '/vehicles', headers: asCustomer(), payload: { type: 'car', location: { lat: 0, lon: 0 } } });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/forbidden', status: 403 });
    expect(stub.calls).toEqual([]);
  });

  it('POST /bookings is for customers: an operator gets 403', async () => {
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: asOperator(), payload: { vehicleId: 'veh-1' } });
    expect(response.statusCode).toBe(403);
    expect(response.json().type).toBe('https://fleetactors.dev/problems/forbidden');
    expect(stub.calls).toEqual([]);
  });

  it('a customer touching another customer’s booking gets the 403 FleetService decides', async () => {
    stub = stubFleet({ getBooking: async (bookingId) => ({ ok: false, rejection: { type: 'BookingForbidden', bookingId } }) });
    await app.close();
    app = buildApp(testDeps({ fleet: stub.fleet }));
    const response = await app.inject({ url: '/bookings/bk_other', headers: asCustomer('mallory') });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/booking-forbidden', bookingId: 'bk_other' });
  });

  it('the role check runs before validation: a customer posting an invalid vehicle gets 403, not 400', async () => {
    const response = await app.inject({ method: 'POST', url: '/vehicles', headers: asCustomer(), payload: { type: 'plane' } });
    expect(response.statusCode).toBe(403);
  });
});

describe('public routes', () => {
  it.each(['/health', '/metrics', '/openapi.json', '/docs'])('%s needs no token', async (url) => {
    const response = await app.inject({ url });
    expect(response.statusCode).toBe(200);
  });
});

describe('signToken / createTokenVerifier', () => {
  it('round-trips sub and role', () => {
    const verify = createTokenVerifier('a-secret-that-is-long-enough');
    expect(verify(signToken({ sub: 'op', role: 'operator', ttlSeconds: 60 }, 'a-secret-that-is-long-enough'))).toEqual({
      ok: true,
      caller: { id: 'op', role: 'operator' },
      expiresAtMs: expect.any(Number),
    });
  });

  it('answers a token seen before from its cache until the token expires, then refuses it', async () => {
    const verify = createTokenVerifier(TEST_JWT_SECRET);
    const token = signToken({ sub: 'shortlived', role: 'customer', ttlSeconds: 2 }, TEST_JWT_SECRET);
    const expiresAt = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    const first = verify(token);
    expect(first).toEqual({ ok: true, caller: { id: 'shortlived', role: 'customer' }, expiresAtMs: expect.any(Number) });
    expect(verify(token)).toEqual(first);
    await waitFor(() => Date.now() > expiresAt + 5, { timeoutMs: 3000, what: 'the token to expire' });
    expect(verify(token)).toEqual({ ok: false, reason: expect.stringMatching(/^the token has expired/) });
    // Another secret's token is never answered from the cache of this one.
    expect(createTokenVerifier('another-secret-long-enough')(signToken({ sub: 'x', role: 'customer', ttlSeconds: 60 }, TEST_JWT_SECRET))).toEqual({ ok: false, reason: expect.stringMatching(/another FLEET_JWT_SECRET/) });
  });

  it('sets exp from ttlSeconds', () => {
    const token = signToken({ sub: 'a', role: 'customer', ttlSeconds: 90, issuedAtMs: 1_700_000_000_000 }, TEST_JWT_SECRET);
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    expect(claims).toMatchObject({ sub: 'a', role: 'customer', iat: 1_700_000_000, exp: 1_700_000_090 });
  });
});
