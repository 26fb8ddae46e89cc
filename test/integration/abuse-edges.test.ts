import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOKING } from '../../actors/booking/actor.js';
import { rootContext } from '../../runtime/ground/trace-context.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * The edges an outside attacker tried (issue 19) on the whole real system through HTTP: nobody follows
 * someone else's ride, a stranger's requests neither hide nor swell a booking's trace, and an unknown
 * booking id costs no actor.
 */

let t: TestFleet;
let seq = 0;

beforeAll(async () => {
  t = await startTestFleet({ TRACE_MAX_STEPS: '20' });
});
afterAll(async () => t?.close());

async function newVehicle(): Promise<string> {
  const id = `edge-v${(seq += 1)}`;
  expect((await t.registerVehicle(id)).statusCode).toBe(201);
  return id;
}

async function bookFor(customer: string, vehicleId: string): Promise<string> {
  const booked = await t.book(customer, vehicleId);
  expect(booked.statusCode, booked.body).toBe(201);
  return (booked.json() as { id: string }).id;
}

const ids = (body: string): string[] => (JSON.parse(body) as { items: Array<{ id: string }> }).items.map((vehicle) => vehicle.id);

describe('privacy: customers see the vehicles they may book and their own ride', () => {
  it("another customer's reserved vehicle is out of GET /vehicles and GET /vehicles/:id; its holder and operators see it", async () => {
    const free = await newVehicle();
    const taken = await newVehicle();
    await bookFor('holder', taken);

    const strangerList = await t.request({ method: 'GET', url: '/vehicles?limit=1000', as: 'stranger' });
    expect(ids(strangerList.body)).toContain(free);
    expect(ids(strangerList.body)).not.toContain(taken);
    // Asking for the status directly does not help either.
    expect(ids((await t.request({ method: 'GET', url: '/vehicles?status=RESERVED&limit=1000', as: 'stranger' })).body)).toEqual([]);
    const strangerRead = await t.request({ method: 'GET', url: `/vehicles/${taken}`, as: 'stranger' });
    expect(strangerRead.statusCode).toBe(404);
    expect(strangerRead.body).not.toContain('"location"');

    expect(ids((await t.request({ method: 'GET', url: '/vehicles?limit=1000', as: 'holder' })).body)).toContain(taken);
    expect((await t.request({ method: 'GET', url: `/vehicles/${taken}`, as: 'holder' })).json()).toMatchObject({ id: taken, status: 'RESERVED' });
    expect(ids((await t.request({ method: 'GET', url: '/vehicles?status=RESERVED&limit=1000', as: 'ops', role: 'operator' })).body)).toContain(taken);
    expect((await t.request({ method: 'GET', url: `/vehicles/${taken}`, as: 'ops', role: 'operator' })).statusCode).toBe(200);
  });
});

describe('unknown booking ids', () => {
  it('are answered 404 without activating a booking actor', async () => {
    const before = t.fleet.local.directory.stats().byKind[BOOKING] ?? 0;
    for (let i = 0; i < 20; i += 1) {
      const response = await t.request({ method: 'GET', url: `/bookings/bk_s0_${i.toString(16).padStart(24, '0')}`, as: 'prober' });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/booking-not-found' });
    }
    for (const action of ['cancel', 'end', 'unlock']) {
      expect((await t.request({ method: 'POST', url: `/bookings/bk_s0_${'f'.repeat(24)}/${action}`, as: 'prober' })).statusCode).toBe(404);
    }
    expect(t.fleet.local.directory.stats().byKind[BOOKING] ?? 0).toBe(before);
  });

  it('a booking whose create is in flight is found by a request that reaches its shard right behind it', async () => {
    const vehicle = await newVehicle();
    const bookingId = `bk_s0_${'a1'.repeat(12)}`;
    const link = t.fleet.shards.link(0);
    const ask = (message: unknown) => link.call({ op: 'ask', target: { kind: BOOKING, id: bookingId }, message: message as never, from: 'http', trace: rootContext(), timeoutMs: 5000 }, 10_000);
    // One after the other on the shard's port: the create's activation exists, its first event is not committed yet.
    const [created, read] = await Promise.all([
      ask({ type: 'CreateBooking', customerId: 'racer', vehicleId: vehicle, paymentMethod: 'tok_visa', durationMinutes: 30 }),
      ask({ type: 'GetBooking', caller: { id: 'racer', role: 'customer' } }),
    ]);
    expect(created.ok).toBe(true);
    expect(read).toMatchObject({ ok: true, value: { bookingId } });
  });
});

describe("a booking's trace", () => {
  it("strangers' refused GETs neither hide the owner's steps nor enter the trace", async () => {
    const vehicle = await newVehicle();
    const bookingId = await bookFor('owner', vehicle);
    expect((await t.request({ method: 'POST', url: `/bookings/${bookingId}/cancel`, as: 'owner' })).statusCode).toBe(200);
    for (let i = 0; i < 60; i += 1) expect((await t.request({ method: 'GET', url: `/bookings/${bookingId}`, as: 'stranger' })).statusCode).toBe(403);
    const trace = await t.request({ method: 'GET', url: `/traces/${bookingId}`, as: 'ops', role: 'operator' });
    expect(trace.statusCode).toBe(200);
    const steps = (trace.json() as { steps: Array<{ messageType: string; outcome: unknown }> }).steps;
    expect(steps.map((step) => step.messageType)).toEqual(expect.arrayContaining(['CreateBooking', 'CancelBooking']));
    expect(JSON.stringify(steps)).not.toContain('BookingForbidden');
  });

  it('the most recent traces stay in view past the per-booking limit, with every state change', async () => {
    const vehicle = await newVehicle();
    const bookingId = await bookFor('poller', vehicle);
    for (let i = 0; i < 60; i += 1) await t.request({ method: 'GET', url: `/bookings/${bookingId}`, as: 'poller' });
    const last = await t.request({ method: 'POST', url: `/bookings/${bookingId}/cancel`, as: 'poller' });
    expect(last.statusCode).toBe(200);
    const steps = (await t.request({ method: 'GET', url: `/traces/${bookingId}`, as: 'ops', role: 'operator' })).json().steps as Array<{ messageType: string }>;
    expect(steps.map((step) => step.messageType)).toEqual(expect.arrayContaining(['CreateBooking', 'CancelBooking']));
    expect(steps.filter((step) => step.messageType === 'GetBooking').length).toBeLessThanOrEqual(50);
  });

  it('one client-chosen traceparent grows one trace only up to TRACE_MAX_STEPS', async () => {
    const vehicle = await newVehicle();
    const bookingId = await bookFor('reuser', vehicle);
    const traceId = 'ab'.repeat(16);
    const traceparent = `00-${traceId}-${'cd'.repeat(8)}-01`;
    for (let i = 0; i < 60; i += 1) await t.request({ method: 'GET', url: `/bookings/${bookingId}`, as: 'reuser', headers: { traceparent } });
    const trace = await t.request({ method: 'GET', url: `/traces/${traceId}`, as: 'ops', role: 'operator' });
    expect(trace.statusCode).toBe(200);
    expect((trace.json() as { steps: unknown[] }).steps).toHaveLength(20);
    expect(t.countTraceSteps('SELECT count(*) AS n FROM trace_steps WHERE trace_id = ?', traceId)).toBe(20);
  });
});
