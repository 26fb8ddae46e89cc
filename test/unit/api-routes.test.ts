import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../api/app.js';
import type { Caller, CreateBookingInput, VehicleFilter } from '../../actors/contract/views.js';
import type { TraceContext } from '../../runtime/ground/trace-context.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { stubFleet, testDeps, type StubFleet } from '../helpers/stub-fleet.js';
import { asCustomer, asOperator } from '../helpers/tokens.js';

/** Happy paths: each route's status, shape, and what it hands to FleetService. */

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function start(stub: StubFleet = stubFleet()): { app: FastifyInstance; stub: StubFleet } {
  app = buildApp(testDeps({ fleet: stub.fleet }));
  return { app, stub };
}

const BOOKING_KEYS = ['authorization', 'charge', 'createdAt', 'customerId', 'durationMinutes', 'endedAt', 'expiresAt', 'id', 'rejectionReason', 'status', 'unlockedAt', 'vehicleId'];

describe('vehicles', () => {
  it('POST /vehicles registers with a generated veh_ id when none is given → 201 with Location', async () => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/vehicles', headers: asOperator(), payload: { type: 'bike', location: { lat: 48.1, lon: 11.5 } } });
    expect(response.statusCode).toBe(201);
    const vehicle = response.json();
    expect(vehicle).toMatchObject({ type: 'bike', model: null, status: 'AVAILABLE', location: { lat: 48.1, lon: 11.5 }, battery: null, online: null });
    expect(vehicle.id).toMatch(/^veh_[0-9a-f]{24}$/);
    expect(response.headers.location).toBe(`/vehicles/${vehicle.id}`);
    expect(stub.callsTo('registerVehicle')[0]![0]).toEqual({ id: vehicle.id, type: 'bike', model: null, location: { lat: 48.1, lon: 11.5 } });
  });

  it('POST /vehicles keeps a given id and model', async () => {
    const { app, stub } = start();
    const response = await app.inject({
      method: 'POST',
      url: '/vehicles',
      headers: asOperator(),
      payload: { id: 'car.42_B-x', type: 'car', model: 'Zoe', location: { lat: -90, lon: 180 } },
    });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ id: 'car.42_B-x', model: 'Zoe' });
    expect(stub.callsTo('registerVehicle')[0]![0]).toMatchObject({ id: 'car.42_B-x', model: 'Zoe' });
  });

  it('GET /vehicles passes the filters with the default radius and limit', async () => {
    const { app, stub } = start();
    const response = await app.inject({ url: '/vehicles?status=AVAILABLE&type=scooter&near=52.5,13.4', headers: asCustomer() });
    expect(response.statusCode).toBe(200);
    expect(response.json().items.map((vehicle: { id: string }) => vehicle.id)).toEqual(['veh-1', 'veh-2']);
    const filter = stub.callsTo('listVehicles')[0]![0] as VehicleFilter;
    expect(filter).toEqual({ status: 'AVAILABLE', type: 'scooter', near: { lat: 52.5, lon: 13.4 }, radiusM: 1000, limit: 100 });
  });

  it('GET /vehicles without filters asks for the default limit only; radiusM and limit are numbers', async () => {
    const { app, stub } = start();
    await app.inject({ url: '/vehicles', headers: asCustomer() });
    await app.inject({ url: '/vehicles?near=-33.9,18.4&radiusM=250&limit=1000', headers: asCustomer() });
    expect(stub.callsTo('listVehicles').map((args) => args[0])).toEqual([{ limit: 100 }, { near: { lat: -33.9, lon: 18.4 }, radiusM: 250, limit: 1000 }]);
  });

  it('GET /vehicles/:id answers the contract fields and strips the others', async () => {
    const vehicle = await sampleVehicleWithSecret();
    const { app } = start(stubFleet({ getVehicle: async () => vehicle }));
    const response = await app.inject({ url: '/vehicles/veh-1', headers: asCustomer() });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ id: 'veh-1', type: 'scooter', status: 'AVAILABLE', location: { lat: 52.52, lon: 13.405 }, battery: 87, online: true });
    expect(body).not.toHaveProperty('internalNote');
  });

  it('GET /vehicles/:id → 404 problem for an unknown vehicle', async () => {
    const { app } = start();
    const response = await app.inject({ url: '/vehicles/veh-404', headers: asCustomer() });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/vehicle-not-found', vehicleId: 'veh-404', instance: '/vehicles/veh-404' });
  });
});

async function sampleVehicleWithSecret() {
  return { ...(await stubFleet().fleet.getVehicle('veh-1'))!, internalNote: 'not for clients' };
}

describe('bookings', () => {
  it('POST /bookings → 201 CONFIRMED booking; defaults tok_visa and 30 minutes; random bk_ id; the caller is the customer', async () => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: asCustomer('carol'), payload: { vehicleId: 'veh-1' } });
    expect(response.statusCode).toBe(201);
    const booking = response.json();
    expect(Object.keys(booking).sort()).toEqual(BOOKING_KEYS);
    expect(booking).toMatchObject({ status: 'CONFIRMED', vehicleId: 'veh-1', customerId: 'carol', authorization: { id: 'auth_1', amount: 1500, currency: 'EUR' } });
    expect(response.headers.location).toBe(`/bookings/${booking.id}`);
    const input = stub.callsTo('createBooking')[0]![0] as CreateBookingInput;
    expect(input).toEqual({ bookingId: booking.id, customerId: 'carol', vehicleId: 'veh-1', paymentMethod: 'tok_visa', durationMinutes: 30 });
    expect(input.bookingId).toMatch(/^bk_[0-9a-f]{24}$/);
  });

  it('POST /bookings without a key gives every booking a new id', async () => {
    const { app, stub } = start();
    for (let i = 0; i < 2; i++) await app.inject({ method: 'POST', url: '/bookings', headers: asCustomer(), payload: { vehicleId: 'veh-1' } });
    const [first, second] = stub.callsTo('createBooking').map((args) => (args[0] as CreateBookingInput).bookingId);
    expect(first).not.toBe(second);
  });

  it('POST /bookings passes paymentMethod and durationMinutes through', async () => {
    const { app, stub } = start();
    const response = await app.inject({
      method: 'POST',
      url: '/bookings',
      headers: asCustomer(),
      payload: { vehicleId: 'veh-1', paymentMethod: 'tok_chargeDeclined', durationMinutes: 1440 },
    });
    expect(response.statusCode).toBe(201);
    expect(stub.callsTo('createBooking')[0]![0]).toMatchObject({ paymentMethod: 'tok_chargeDeclined', durationMinutes: 1440 });
  });

  it('GET /bookings/:id hands the caller to FleetService (it checks ownership)', async () => {
    const { app, stub } = start();
    const response = await app.inject({ url: '/bookings/bk_7', headers: asCustomer('dave') });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id: 'bk_7', customerId: 'dave' });
    expect(stub.callsTo('getBooking')[0]!.slice(0, 2)).toEqual(['bk_7', { id: 'dave', role: 'customer' } satisfies Caller]);
  });

  it('operators read any booking too (the role reaches FleetService)', async () => {
    const { app, stub } = start();
    const response = await app.inject({ url: '/bookings/bk_7', headers: asOperator('ops-9') });
    expect(response.statusCode).toBe(200);
    expect(stub.callsTo('getBooking')[0]![1]).toEqual({ id: 'ops-9', role: 'operator' });
  });

  it.each([
    ['POST /unlock', { method: 'POST' as const, url: '/unlock', payload: { bookingId: 'bk_9' } }],
    ['POST /bookings/:id/unlock', { method: 'POST' as const, url: '/bookings/bk_9/unlock' }],
  ])('%s → 200 {bookingId, vehicleId, status: SUCCESS, unlockedAt}', async (_name, request) => {
    const { app, stub } = start();
    const response = await app.inject({ ...request, headers: asCustomer() });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ bookingId: 'bk_9', vehicleId: 'veh-1', status: 'SUCCESS', unlockedAt: '2025-01-01T10:00:00.000Z' });
    expect(stub.callsTo('unlock')[0]!.slice(0, 2)).toEqual(['bk_9', { id: 'alice', role: 'customer' }]);
  });

  it('POST /bookings/:id/cancel → 200 CANCELLED', async () => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings/bk_3/cancel', headers: asCustomer() });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id: 'bk_3', status: 'CANCELLED' });
    expect(stub.callsTo('cancel')[0]![0]).toBe('bk_3');
  });

  it('POST /bookings/:id/end → 200 COMPLETED with the charge', async () => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings/bk_3/end', headers: asCustomer() });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id: 'bk_3', status: 'COMPLETED', charge: { amount: 450, currency: 'EUR' } });
    expect(stub.callsTo('end')[0]![0]).toBe('bk_3');
  });
});

describe('trace context', () => {
  it('continues the caller’s traceparent: FleetService gets it and the response carries it', async () => {
    const { app, stub } = start();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const response = await app.inject({ method: 'POST', url: '/bookings/bk_3/cancel', headers: { ...asCustomer(), traceparent } });
    expect(response.headers.traceparent).toBe(traceparent);
    expect(stub.callsTo('cancel')[0]![2]).toEqual({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' } satisfies TraceContext);
  });

  it('starts a new trace without (or with an invalid) traceparent, and says which in the response', async () => {
    const { app, stub } = start();
    const response = await app.inject({ method: 'POST', url: '/bookings', headers: { ...asCustomer(), traceparent: 'garbage' }, payload: { vehicleId: 'veh-1' } });
    const trace = stub.callsTo('createBooking')[0]![1] as TraceContext;
    expect(trace.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(response.headers.traceparent).toBe(`00-${trace.traceId}-${trace.spanId}-01`);
  });

  it('logs each request with its trace id and request id', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line)) });
    app = buildApp(testDeps({ logger }));
    const auth = asCustomer();
    const response = await app.inject({ url: '/vehicles/veh-1', headers: auth });
    const traceId = String(response.headers.traceparent).split('-')[1];
    const requestLines = lines.filter((line) => line.reqId === response.headers['x-request-id']);
    expect(requestLines.map((line) => line.msg)).toEqual([expect.stringMatching(/^GET \/vehicles\/:id 200 /)]);
    for (const line of requestLines) expect(line.traceId).toBe(traceId);
    // Bearer tokens never reach a log line.
    expect(JSON.stringify(lines)).not.toContain(auth.authorization.slice('Bearer '.length));
  });

  it('makes no per-request pino child when the request writes no line, and a line written later still has both ids', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('warn', { write: (line: string) => void lines.push(JSON.parse(line)) });
    const broken = stubFleet({
      getVehicle: async (id) => {
        if (id === 'veh-broken') throw new Error('a bug');
        return undefined;
      },
    });
    app = buildApp(testDeps({ logger, fleet: broken.fleet }));
    await app.ready();
    const children = vi.spyOn(logger, 'child');
    expect((await app.inject({ url: '/vehicles/veh-1', headers: asCustomer() })).statusCode).toBe(404);
    expect(children).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    const failed = await app.inject({ url: '/vehicles/veh-broken', headers: asCustomer() });
    expect(failed.statusCode).toBe(500);
    expect(lines.map((line) => [line.msg, line.reqId, line.traceId])).toEqual([['request failed', failed.headers['x-request-id'], String(failed.headers.traceparent).split('-')[1]]]);
  });

  it('answers each request with its own request id', async () => {
    const { app } = start();
    const [a, b] = await Promise.all([app.inject({ url: '/health' }), app.inject({ url: '/health' })]);
    expect(a.headers['x-request-id']).toBeTruthy();
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});
