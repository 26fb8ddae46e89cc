import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { reject, type Outcome } from '../../actors/contract/rejections.js';
import { buildApp } from '../../api/app.js';
import type { BookingView, CreateBookingInput, FleetService } from '../../actors/contract/views.js';
import { bookingIdFor, canonicalJson, requestHash } from '../../api/idempotency.js';
import { MemoryIdempotencyStore, deferred, sampleBooking, stubFleet, testDeps, type StubFleet } from '../helpers/stub-fleet.js';
import { asCustomer } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function start(overrides: Partial<FleetService> = {}): { app: FastifyInstance; stub: StubFleet; store: MemoryIdempotencyStore } {
  const stub = stubFleet(overrides);
  const store = new MemoryIdempotencyStore();
  app = buildApp(testDeps({ fleet: stub.fleet, idempotency: store }));
  return { app, stub, store };
}

const book = (app: FastifyInstance, key: string, payload: Record<string, unknown> = { vehicleId: 'veh-1' }, customer = 'alice') =>
  app.inject({ method: 'POST', url: '/bookings', headers: { ...asCustomer(customer), 'idempotency-key': key }, payload });

describe('Idempotency-Key on POST /bookings', () => {
  it('the same key and body replays the stored response: one call into FleetService, Idempotent-Replayed: true', async () => {
    const { app, stub } = start();
    const first = await book(app, 'order-1');
    const second = await book(app, 'order-1');
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second.statusCode).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect(second.headers.location).toBe(first.headers.location);
    expect(stub.callsTo('createBooking')).toHaveLength(1);
  });

  it('defaults count as sent: {vehicleId} and the same with explicit defaults are one request', async () => {
    const { app, stub } = start();
    await book(app, 'order-1', { vehicleId: 'veh-1' });
    const replay = await book(app, 'order-1', { durationMinutes: 30, paymentMethod: 'tok_visa', vehicleId: 'veh-1' });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(stub.callsTo('createBooking')).toHaveLength(1);
  });

  it('the same key with another body → 422 idempotency-key-reused, nothing runs', async () => {
    const { app, stub } = start();
    await book(app, 'order-1', { vehicleId: 'veh-1' });
    const response = await book(app, 'order-1', { vehicleId: 'veh-2' });
    expect(response.statusCode).toBe(422);
    expect(response.json().type).toBe('https://fleetactors.dev/problems/idempotency-key-reused');
    expect(stub.callsTo('createBooking')).toHaveLength(1);
  });

  it('the same key while the first request still runs → 409 idempotency-key-in-use; afterwards it replays', async () => {
    const release = deferred<void>();
    const { app, stub } = start({
      createBooking: async (input: CreateBookingInput): Promise<Outcome<BookingView>> => {
        await release.promise;
        return { ok: true, value: sampleBooking({ id: input.bookingId }) };
      },
    });
    const first = book(app, 'order-1');
    await waitFor(() => stub.callsTo('createBooking').length === 1, { what: 'the first request to reach FleetService' });

    const concurrent = await book(app, 'order-1');
    expect(concurrent.statusCode).toBe(409);
    expect(concurrent.json().type).toBe('https://fleetactors.dev/problems/idempotency-key-in-use');
    expect(concurrent.headers['retry-after']).toBe('1');

    release.resolve();
    expect((await first).statusCode).toBe(201);
    const retry = await book(app, 'order-1');
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(stub.callsTo('createBooking')).toHaveLength(1);
  });

  it('keys are scoped per customer: the same key from two customers makes two bookings with different ids', async () => {
    const { app, stub } = start();
    const alice = await book(app, 'order-1', { vehicleId: 'veh-1' }, 'alice');
    const bob = await book(app, 'order-1', { vehicleId: 'veh-1' }, 'bob');
    expect(bob.statusCode).toBe(201);
    expect(bob.headers['idempotent-replayed']).toBeUndefined();
    expect(bob.json().customerId).toBe('bob');
    expect(bob.json().id).not.toBe(alice.json().id);
    expect(stub.callsTo('createBooking')).toHaveLength(2);
  });

  it('errors are stored and replayed too (402 declined)', async () => {
    const { app, stub } = start({ createBooking: async () => reject({ type: 'PaymentDeclined', authorizationId: 'auth_9', reason: 'card_declined' }) });
    const first = await book(app, 'order-1', { vehicleId: 'veh-1', paymentMethod: 'tok_chargeDeclined' });
    const second = await book(app, 'order-1', { vehicleId: 'veh-1', paymentMethod: 'tok_chargeDeclined' });
    expect(first.statusCode).toBe(402);
    expect(second.statusCode).toBe(402);
    expect(second.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect(stub.callsTo('createBooking')).toHaveLength(1);
  });

  it('an unknown outcome (ActorUnavailable) is not stored: the retry runs again, on the same booking id', async () => {
    let attempt = 0;
    const { app, stub, store } = start({
      createBooking: async (input) =>
        ++attempt === 1 ? reject({ type: 'ActorUnavailable', actor: `booking/${input.bookingId}`, timeoutMs: 15000 }) : { ok: true, value: sampleBooking({ id: input.bookingId }) },
    });
    expect((await book(app, 'order-1')).statusCode).toBe(503);
    // The key stays claimed (so another body is still a 422) but no response is stored.
    expect([...store.entries.values()].filter((entry) => entry.statusCode !== null)).toHaveLength(0);
    const retry = await book(app, 'order-1');
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    const ids = stub.callsTo('createBooking').map((args) => (args[0] as CreateBookingInput).bookingId);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
  });

  it('an exception is not stored and frees the key', async () => {
    let attempt = 0;
    const { app, store } = start({
      createBooking: async (input) => {
        if (++attempt === 1) throw new Error('boom');
        return { ok: true, value: sampleBooking({ id: input.bookingId }) };
      },
    });
    expect((await book(app, 'order-1')).statusCode).toBe(500);
    // The key stays claimed (so another body is still a 422) but no response is stored.
    expect([...store.entries.values()].filter((entry) => entry.statusCode !== null)).toHaveLength(0);
    expect((await book(app, 'order-1')).statusCode).toBe(201);
  });

  it('a claim without an answer that is not running (a claim actor of the version before leases answers so) runs again', async () => {
    const store = new MemoryIdempotencyStore();
    // What an older claim actor answers for its own claim: no answer, and nothing about a lease.
    store.claim = async (_customer, _key, hash) => ({ requestHash: hash, statusCode: null, body: null });
    const stub = stubFleet();
    app = buildApp(testDeps({ fleet: stub.fleet, idempotency: store }));
    const response = await book(app, 'order-old');
    expect(response.statusCode).toBe(201);
    expect(stub.callsTo('createBooking')).toHaveLength(1);
  });

  it('with a key the booking id is derived from customer and key, and stored under them', async () => {
    const { app, stub, store } = start();
    await book(app, 'order-1');
    const input = stub.callsTo('createBooking')[0]![0] as CreateBookingInput;
    expect(input.bookingId).toBe(bookingIdFor('alice', 'order-1'));
    expect(store.find('alice', 'order-1')).toMatchObject({ statusCode: 201, requestHash: requestHash({ vehicleId: 'veh-1', paymentMethod: 'tok_visa', durationMinutes: 30 }) });
  });

  it('a response stored by an earlier process is replayed (the store is the memory, not the app)', async () => {
    const store = new MemoryIdempotencyStore();
    const body = { vehicleId: 'veh-1', paymentMethod: 'tok_visa', durationMinutes: 30 };
    store.save('alice', 'order-1', requestHash(body), 201, sampleBooking({ id: 'bk_from_before' }));
    const stub = stubFleet();
    app = buildApp(testDeps({ fleet: stub.fleet, idempotency: store }));
    const response = await book(app, 'order-1');
    expect(response.json().id).toBe('bk_from_before');
    expect(stub.calls).toEqual([]);
  });
});

describe('bookingIdFor', () => {
  it('is stable per (customer, key) and differs across customers and keys', () => {
    const id = bookingIdFor('alice', 'k');
    expect(id).toMatch(/^bk_[0-9a-f]{24}$/);
    expect(bookingIdFor('alice', 'k')).toBe(id);
    expect(bookingIdFor('bob', 'k')).not.toBe(id);
    expect(bookingIdFor('alice', 'k2')).not.toBe(id);
  });

  it('is random without a key', () => {
    expect(bookingIdFor('alice', undefined)).not.toBe(bookingIdFor('alice', undefined));
    expect(bookingIdFor('alice', undefined)).toMatch(/^bk_[0-9a-f]{24}$/);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[2,{"y":2,"z":1}]},"b":1}');
    expect(requestHash({ a: 1, b: 2 })).toBe(requestHash({ b: 2, a: 1 }));
    expect(requestHash({ a: 1 })).not.toBe(requestHash({ a: '1' }));
  });
});
