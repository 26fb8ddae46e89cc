import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../actors/contract/tokens.js';
import { SimulatedPaymentGateway } from '../../actors/payment/gateway.js';
import { testClock, type TestClock } from '../helpers/clock.js';
import { keyedBookingId, startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * The booking core through HTTP on the whole real system (SQLite journal, nact actors, embedded MQTT
 * broker, fastify): docs/contract.md "HTTP" for POST /bookings, GET /bookings/:id and cancel.
 */

const PROBLEM_TYPE = 'https://fleetactors.dev/problems/';
/** Long enough for tok_visa (PAYMENT_LATENCY_MS 2) under load, short enough to keep tok_timeout quick. */
const PAYMENT_TIMEOUT_MS = 300;

let t: TestFleet;
/** Booking time stands still (nothing here waits for a deadline): the booking's times are exact. */
let clock: TestClock;
let gateway: SimulatedPaymentGateway;
let vehicleSeq = 0;

beforeAll(async () => {
  clock = testClock();
  t = await startTestFleet({ PAYMENT_TIMEOUT_MS: String(PAYMENT_TIMEOUT_MS) }, { clock });
  if (!(t.fleet.local.gateway instanceof SimulatedPaymentGateway)) throw new Error('the test fleet should use the simulated gateway');
  gateway = t.fleet.local.gateway;
});
afterAll(async () => t?.close());

/** A fresh vehicle per test, so tests never depend on each other's reservations. */
async function newVehicle(type: 'car' | 'scooter' | 'bike' = 'scooter'): Promise<string> {
  const id = `api-v${(vehicleSeq += 1)}`;
  const registered = await t.registerVehicle(id, type);
  expect(registered.statusCode, registered.body).toBe(201);
  return id;
}

/** As an operator: a customer sees only vehicles they may book and their own ride. */
const getVehicle = (id: string) => t.request({ method: 'GET', url: `/vehicles/${id}`, as: 'ops', role: 'operator' });
const getBooking = (id: string, as = 'alice', role: 'customer' | 'operator' = 'customer') => t.request({ method: 'GET', url: `/bookings/${id}`, as, role });
const cancel = (id: string, as = 'alice') => t.request({ method: 'POST', url: `/bookings/${id}/cancel`, as });

/** The vehicle's holder as the read model has it (the API view does not expose it). */
function heldBy(vehicleId: string): string | null {
  const row = t.db.prepare('SELECT booking_id FROM vehicles WHERE id = ?').get(vehicleId) as { booking_id: string | null } | undefined;
  if (!row) throw new Error(`no vehicle row ${vehicleId}`);
  return row.booking_id;
}

function journalCount(persistenceKey: string, eventType: string): number {
  const row = t.db.prepare('SELECT count(*) AS n FROM journal WHERE persistence_key = ? AND event_type = ?').get(persistenceKey, eventType) as { n: number };
  return row.n;
}

function bookingsOfVehicle(vehicleId: string): number {
  return (t.db.prepare('SELECT count(*) AS n FROM bookings WHERE vehicle_id = ?').get(vehicleId) as { n: number }).n;
}

/** RFC 9457 problem: right media type, stable type URI, status mirrored, instance = the path called. */
function expectProblem(response: LightMyRequestResponse, status: number, slug: string, url?: string): Record<string, unknown> {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = response.json<Record<string, unknown>>();
  expect(problem).toMatchObject({ type: PROBLEM_TYPE + slug, status, title: expect.any(String), detail: expect.any(String) });
  if (url) expect(problem.instance).toBe(url);
  return problem;
}

describe('POST /bookings: the saga through HTTP', () => {
  it('confirms a booking: 201 with authorization, timestamps and Location; GET returns it; the vehicle is RESERVED', async () => {
    const vehicleId = await newVehicle('scooter');
    const booked = await t.book('alice', vehicleId, { durationMinutes: 20 });
    expect(booked.statusCode, booked.body).toBe(201);
    const booking = booked.json();
    expect(booking).toMatchObject({
      id: expect.stringMatching(/^bk_s0_[0-9a-f]{24}$/),
      status: 'CONFIRMED',
      vehicleId,
      customerId: 'alice',
      durationMinutes: 20,
      // scooter: 100 unlock fee + 25/min × 20 min, held on the card (actors/booking/pricing.ts)
      authorization: { id: `auth_${booking.id}`, amount: 600, currency: 'EUR' },
      charge: null,
      unlockedAt: null,
      endedAt: null,
      rejectionReason: null,
    });
    const createdAt = Date.parse(booking.createdAt);
    const expiresAt = Date.parse(booking.expiresAt);
    expect(createdAt).toBe(clock.now());
    // Confirmed: the deadline is now the unlock window (RESERVATION_WINDOW_MS, default 15 min).
    expect(expiresAt - createdAt).toBe(t.config.timing.reservationWindowMs);
    expect(booked.headers.location).toBe(`/bookings/${booking.id}`);

    const read = await getBooking(booking.id);
    expect(read.statusCode, read.body).toBe(200);
    expect(read.json()).toEqual(booking);
    // Operators see every booking.
    const asOperator = await getBooking(booking.id, 'ops', 'operator');
    expect(asOperator.statusCode).toBe(200);

    const vehicle = await getVehicle(vehicleId);
    expect(vehicle.statusCode).toBe(200);
    expect(vehicle.json()).toMatchObject({ id: vehicleId, type: 'scooter', status: 'RESERVED', online: null });
    expect(heldBy(vehicleId)).toBe(booking.id);
    expect(gateway.stateOf(booking.authorization.id)).toBe('authorized');
  });

  it('404 for an unknown vehicle', async () => {
    const response = await t.book('alice', 'no-such-vehicle');
    const problem = expectProblem(response, 404, 'vehicle-not-found', '/bookings');
    expect(problem.vehicleId).toBe('no-such-vehicle');
  });

  it('409 when the vehicle is already reserved by another booking, which keeps it', async () => {
    const vehicleId = await newVehicle();
    const first = await t.book('alice', vehicleId);
    expect(first.statusCode, first.body).toBe(201);
    const second = await t.book('bob', vehicleId);
    const problem = expectProblem(second, 409, 'vehicle-unavailable');
    expect(problem).toMatchObject({ vehicleId, vehicleStatus: 'RESERVED' });
    expect(heldBy(vehicleId)).toBe(first.json().id);
    expect((await getBooking(first.json().id)).json().status).toBe('CONFIRMED');
  });

  it('402 for a declined card: the booking is REJECTED and the vehicle AVAILABLE and bookable by someone else', async () => {
    const vehicleId = await newVehicle();
    const key = 'declined-1';
    const declined = await t.book('bob', vehicleId, { paymentMethod: 'tok_chargeDeclined' }, { 'idempotency-key': key });
    const problem = expectProblem(declined, 402, 'payment-declined');
    expect(problem.reason).toBe('card_declined');

    const bookingId = keyedBookingId('bob', key);
    const rejected = await getBooking(bookingId, 'bob');
    expect(rejected.statusCode, rejected.body).toBe(200);
    expect(rejected.json()).toMatchObject({ id: bookingId, status: 'REJECTED', rejectionReason: 'PaymentDeclined', authorization: null });
    expect((await getVehicle(vehicleId)).json().status).toBe('AVAILABLE');
    expect(heldBy(vehicleId)).toBeNull();
    expect(gateway.stateOf(`auth_${bookingId}`)).toBe('declined');

    const other = await t.book('carol', vehicleId);
    expect(other.statusCode, other.body).toBe(201);
    expect((await getVehicle(vehicleId)).json().status).toBe('RESERVED');
  });

  it('402 gateway_timeout when the gateway never answers (tok_timeout), and the vehicle is released', async () => {
    const vehicleId = await newVehicle();
    const response = await t.book('bob', vehicleId, { paymentMethod: 'tok_timeout' }, { 'idempotency-key': 'timeout-1' });
    const problem = expectProblem(response, 402, 'payment-declined');
    // The payment actor's own timeout decided (not the booking's ask timeout, which would be a 503).
    expect(problem.reason).toBe('gateway_timeout');

    const bookingId = keyedBookingId('bob', 'timeout-1');
    expect((await getBooking(bookingId, 'bob')).json()).toMatchObject({ status: 'REJECTED', rejectionReason: 'PaymentDeclined' });
    expect((await getVehicle(vehicleId)).json().status).toBe('AVAILABLE');
    expect(journalCount(`payment/auth_${bookingId}`, 'PaymentDeclined')).toBe(1);
    expect(journalCount(`vehicle/${vehicleId}`, 'VehicleReleased')).toBe(1);
    const again = await t.book('carol', vehicleId);
    expect(again.statusCode, again.body).toBe(201);
  });
});

describe('authentication and ownership', () => {
  it('401 without a token, with a malformed header, a bad signature or an expired token', async () => {
    const url = '/bookings';
    const body = JSON.stringify({ vehicleId: 'whatever' });
    const post = (authorization?: string) =>
      t.fleet.app.inject({ method: 'POST', url, payload: body, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } });

    const none = await post();
    expectProblem(none, 401, 'unauthorized', url);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="fleetactors"');

    expectProblem(await post('Basic YWxpY2U6c2VjcmV0'), 401, 'unauthorized');
    expectProblem(await post('Bearer not.a.jwt'), 401, 'unauthorized');
    const forged = signToken({ sub: 'alice', role: 'customer', ttlSeconds: 3600 }, 'another-secret-of-enough-length');
    const badSignature = await post(`Bearer ${forged}`);
    expectProblem(badSignature, 401, 'unauthorized');
    expect(badSignature.headers['www-authenticate']).toContain('error="invalid_token"');
    const expired = signToken({ sub: 'alice', role: 'customer', ttlSeconds: 60, issuedAtMs: Date.now() - 3_600_000 }, t.config.auth.jwtSecret);
    expectProblem(await post(`Bearer ${expired}`), 401, 'unauthorized');

    const read = await t.fleet.app.inject({ method: 'GET', url: '/bookings/bk_whatever' });
    expectProblem(read, 401, 'unauthorized');
  });

  it("403 when a customer reads or cancels another customer's booking; the booking stays as it was", async () => {
    const vehicleId = await newVehicle();
    const booking = (await t.book('alice', vehicleId)).json();
    const url = `/bookings/${booking.id}`;
    expectProblem(await getBooking(booking.id, 'mallory'), 403, 'booking-forbidden', url);
    expectProblem(await cancel(booking.id, 'mallory'), 403, 'booking-forbidden', `${url}/cancel`);
    expect((await getBooking(booking.id)).json().status).toBe('CONFIRMED');
    expect((await getVehicle(vehicleId)).json().status).toBe('RESERVED');
    expect(journalCount(`booking/${booking.id}`, 'BookingCancelled')).toBe(0);
  });

  it('403 when an operator tries to book (POST /bookings is for customers), before anything is reserved', async () => {
    const vehicleId = await newVehicle();
    const response = await t.request({ method: 'POST', url: '/bookings', as: 'ops', role: 'operator', body: { vehicleId } });
    expectProblem(response, 403, 'forbidden', '/bookings');
    expect((await getVehicle(vehicleId)).json().status).toBe('AVAILABLE');
    expect(bookingsOfVehicle(vehicleId)).toBe(0);
  });

  it('404 for a booking that does not exist, for reads and cancels', async () => {
    expectProblem(await getBooking('bk_000000000000000000000000'), 404, 'booking-not-found');
    expectProblem(await cancel('bk_000000000000000000000001'), 404, 'booking-not-found');
  });
});

describe('request validation', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['an unknown field', { vehicleId: 'X', colour: 'red' }, 'body.colour'],
    ['a missing vehicleId', { paymentMethod: 'tok_visa' }, 'body.vehicleId'],
    ['a numeric vehicleId', { vehicleId: 42 }, 'body.vehicleId'],
    ['a vehicleId with a slash', { vehicleId: 'a/b' }, 'body.vehicleId'],
    ['durationMinutes as a string', { vehicleId: 'X', durationMinutes: '30' }, 'body.durationMinutes'],
    ['durationMinutes of 0', { vehicleId: 'X', durationMinutes: 0 }, 'body.durationMinutes'],
    ['a fractional durationMinutes', { vehicleId: 'X', durationMinutes: 1.5 }, 'body.durationMinutes'],
    ['an empty paymentMethod', { vehicleId: 'X', paymentMethod: '' }, 'body.paymentMethod'],
  ])('400 for %s, and nothing is booked', async (_case, body, path) => {
    const vehicleId = await newVehicle();
    const payload = { ...body, ...(body.vehicleId === 'X' ? { vehicleId } : {}) };
    const response = await t.request({ method: 'POST', url: '/bookings', body: payload });
    const problem = expectProblem(response, 400, 'validation', '/bookings');
    expect(problem.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    expect(bookingsOfVehicle(vehicleId)).toBe(0);
    expect((await getVehicle(vehicleId)).json().status).toBe('AVAILABLE');
  });

  it('400 for a body that is not JSON, 400 for an array body', async () => {
    const malformed = await t.request({ method: 'POST', url: '/bookings', headers: { 'content-type': 'application/json' }, body: undefined });
    // No payload at all with a JSON content type: fastify's empty-body error.
    expectProblem(malformed, 400, 'malformed-json');
    const broken = await t.fleet.app.inject({
      method: 'POST',
      url: '/bookings',
      headers: { authorization: `Bearer ${signToken({ sub: 'alice', role: 'customer', ttlSeconds: 60 }, t.config.auth.jwtSecret)}`, 'content-type': 'application/json' },
      payload: '{"vehicleId": ',
    });
    expectProblem(broken, 400, 'malformed-json');
    expectProblem(await t.request({ method: 'POST', url: '/bookings', body: [{ vehicleId: 'x' }] }), 400, 'validation');
  });
});

describe('Idempotency-Key', () => {
  it('a key used again with another body is refused with 422, and the same body still answers the same booking', async () => {
    const vehicleId = await newVehicle();
    const headers = { 'idempotency-key': 'lost-response' };
    const first = await t.book('alice', vehicleId, { durationMinutes: 10 }, headers);
    expect(first.statusCode, first.body).toBe(201);

    const other = await t.book('alice', vehicleId, { durationMinutes: 20 }, headers);
    expect(other.statusCode, other.body).toBe(422);
    expect(other.json().type).toBe('https://fleetactors.dev/problems/idempotency-key-reused');
    const same = await t.book('alice', vehicleId, { durationMinutes: 10 }, headers);
    expect(same.statusCode, same.body).toBe(201);
    expect(same.json().id).toBe(first.json().id);
  });

  it('a retry with the same key and body answers the same booking; no second booking is made', async () => {
    const vehicleId = await newVehicle();
    const headers = { 'idempotency-key': 'retry-1' };
    const first = await t.book('alice', vehicleId, { durationMinutes: 10 }, headers);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const booking = first.json();
    expect(booking.id).toBe(keyedBookingId('alice', 'retry-1'));

    // Same body with its keys in another order: canonical JSON makes it the same request.
    const retry = await t.request({ method: 'POST', url: '/bookings', as: 'alice', body: { durationMinutes: 10, vehicleId }, headers });
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json()).toEqual(booking);
    expect(retry.headers.location).toBe(`/bookings/${booking.id}`);

    expect(bookingsOfVehicle(vehicleId)).toBe(1);
    expect(journalCount(`vehicle/${vehicleId}`, 'VehicleReserved')).toBe(1);
    expect(journalCount(`booking/${booking.id}`, 'BookingRequested')).toBe(1);
    expect(heldBy(vehicleId)).toBe(booking.id);
    expect((await getVehicle(vehicleId)).json().status).toBe('RESERVED');
  });

  it('two concurrent requests with one key make one booking; the second is told the key is in use or gets the replay', async () => {
    const vehicleId = await newVehicle();
    const headers = { 'idempotency-key': 'race-1' };
    const answers = await Promise.all([t.book('alice', vehicleId, {}, headers), t.book('alice', vehicleId, {}, headers)]);
    const created = answers.filter((answer) => answer.statusCode === 201 && answer.headers['idempotent-replayed'] === undefined);
    expect(created, answers.map((answer) => answer.body).join('\n')).toHaveLength(1);
    const other = answers.find((answer) => answer !== created[0])!;
    if (other.statusCode === 409) {
      expectProblem(other, 409, 'idempotency-key-in-use');
      expect(other.headers['retry-after']).toBe('1');
    } else {
      expect(other.statusCode).toBe(201);
      expect(other.json().id).toBe(created[0]!.json().id);
    }
    expect(bookingsOfVehicle(vehicleId)).toBe(1);
    expect(journalCount(`vehicle/${vehicleId}`, 'VehicleReserved')).toBe(1);
  });

  it('422 for the same key with another body; the first booking is untouched', async () => {
    const [first, second] = [await newVehicle(), await newVehicle()];
    const headers = { 'idempotency-key': 'reuse-1' };
    const booked = await t.book('alice', first, {}, headers);
    expect(booked.statusCode, booked.body).toBe(201);
    expectProblem(await t.book('alice', second, {}, headers), 422, 'idempotency-key-reused', '/bookings');
    expectProblem(await t.book('alice', first, { durationMinutes: 45 }, headers), 422, 'idempotency-key-reused');
    expect((await getVehicle(second)).json().status).toBe('AVAILABLE');
    expect(bookingsOfVehicle(second)).toBe(0);
    expect(heldBy(first)).toBe(booked.json().id);
  });

  it('keys are scoped per customer: the same key from another customer is a new booking', async () => {
    const [first, second] = [await newVehicle(), await newVehicle()];
    const headers = { 'idempotency-key': 'shared-key' };
    const alice = await t.book('alice', first, {}, headers);
    const bob = await t.book('bob', second, {}, headers);
    expect(alice.statusCode, alice.body).toBe(201);
    expect(bob.statusCode, bob.body).toBe(201);
    expect(bob.headers['idempotent-replayed']).toBeUndefined();
    expect(bob.json().id).not.toBe(alice.json().id);
    expect(bob.json().customerId).toBe('bob');
  });

  it('an error is stored and replayed: a 409 stays a 409 for that key even once the vehicle is free again', async () => {
    const vehicleId = await newVehicle();
    const holder = (await t.book('alice', vehicleId)).json();
    const headers = { 'idempotency-key': 'replay-409' };
    const refused = await t.book('bob', vehicleId, {}, headers);
    const problem = expectProblem(refused, 409, 'vehicle-unavailable');

    expect((await cancel(holder.id)).statusCode).toBe(200);
    expect((await getVehicle(vehicleId)).json().status).toBe('AVAILABLE');

    const replayed = await t.book('bob', vehicleId, {}, headers);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(expectProblem(replayed, 409, 'vehicle-unavailable')).toEqual(problem);
    // The replay did not run the saga again: the vehicle is still free, and bookable with a new key.
    expect((await getVehicle(vehicleId)).json().status).toBe('AVAILABLE');
    const fresh = await t.book('bob', vehicleId, {}, { 'idempotency-key': 'replay-409-new' });
    expect(fresh.statusCode, fresh.body).toBe(201);
  });
});

describe('POST /bookings/:id/cancel', () => {
  it('cancels: 200 CANCELLED, the vehicle AVAILABLE, the authorization voided at the gateway', async () => {
    const vehicleId = await newVehicle('car');
    const booking = (await t.book('alice', vehicleId)).json();
    expect(gateway.stateOf(booking.authorization.id)).toBe('authorized');

    const cancelled = await cancel(booking.id);
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    expect(cancelled.json()).toMatchObject({ id: booking.id, status: 'CANCELLED', authorization: booking.authorization });
    expect((await getBooking(booking.id)).json().status).toBe('CANCELLED');
    expect((await getVehicle(vehicleId)).json().status).toBe('AVAILABLE');
    expect(heldBy(vehicleId)).toBeNull();
    expect(gateway.stateOf(booking.authorization.id)).toBe('voided');
    expect(journalCount(`payment/${booking.authorization.id}`, 'AuthorizationVoided')).toBe(1);
    // Compensation finished in the same request: no retry timer left for this booking.
    expect(journalCount(`booking/${booking.id}`, 'BookingCompensated')).toBe(1);
    const row = t.db.prepare('SELECT status, wake_at FROM bookings WHERE id = ?').get(booking.id) as { status: string; wake_at: number | null };
    expect(row).toEqual({ status: 'CANCELLED', wake_at: null });
  });

  it('cancelling twice answers 200 CANCELLED again and changes nothing (it does not release the next booking of the vehicle)', async () => {
    const vehicleId = await newVehicle();
    const booking = (await t.book('alice', vehicleId)).json();
    expect((await cancel(booking.id)).statusCode).toBe(200);
    const next = await t.book('bob', vehicleId);
    expect(next.statusCode, next.body).toBe(201);

    const again = await cancel(booking.id);
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().status).toBe('CANCELLED');
    expect(journalCount(`booking/${booking.id}`, 'BookingCancelled')).toBe(1);
    expect(journalCount(`vehicle/${vehicleId}`, 'VehicleReleased')).toBe(1);
    expect((await getVehicle(vehicleId)).json().status).toBe('RESERVED');
    expect(heldBy(vehicleId)).toBe(next.json().id);
  });

  it('409 when the booking can no longer be cancelled (REJECTED)', async () => {
    const vehicleId = await newVehicle();
    const key = 'cancel-rejected';
    expect((await t.book('alice', vehicleId, { paymentMethod: 'tok_chargeDeclined' }, { 'idempotency-key': key })).statusCode).toBe(402);
    const bookingId = keyedBookingId('alice', key);
    const response = await cancel(bookingId);
    const problem = expectProblem(response, 409, 'invalid-booking-state', `/bookings/${bookingId}/cancel`);
    expect(problem).toMatchObject({ bookingId, bookingStatus: 'REJECTED', expected: ['CONFIRMED'] });
  });
});

describe('a saga step that gets no answer', () => {
  let slow: TestFleet;
  beforeAll(async () => {
    // The payment actor waits longer for the gateway than the booking waits for the payment actor.
    slow = await startTestFleet({ ASK_TIMEOUT_MS: '300', PAYMENT_TIMEOUT_MS: '1000' });
    expect((await slow.registerVehicle('slow-1')).statusCode).toBe(201);
  });
  afterAll(async () => slow?.close());

  it('ends the booking for good (503 booking-aborted, stored for its key) and frees the vehicle', async () => {
    const headers = { 'idempotency-key': 'slow-gateway' };
    const first = await slow.book('alice', 'slow-1', { paymentMethod: 'tok_timeout' }, headers);
    expect(first.statusCode, first.body).toBe(503);

    const bookingId = keyedBookingId('alice', 'slow-gateway');
    await expect
      .poll(async () => (await slow.request({ method: 'GET', url: `/bookings/${bookingId}` })).json().status, { timeout: 10_000 })
      .toBe('REJECTED');

    const retried = await slow.book('alice', 'slow-1', { paymentMethod: 'tok_timeout' }, headers);
    expect(retried.statusCode, retried.body).toBe(503);
    expect(retried.json().type).toBe('https://fleetactors.dev/problems/booking-aborted');
    const replayed = await slow.book('alice', 'slow-1', { paymentMethod: 'tok_timeout' }, headers);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.json().type).toBe('https://fleetactors.dev/problems/booking-aborted');

    await expect.poll(async () => (await slow.request({ method: 'GET', url: '/vehicles/slow-1', as: 'ops', role: 'operator' })).json().status, { timeout: 10_000 }).toBe('AVAILABLE');
  });
});
