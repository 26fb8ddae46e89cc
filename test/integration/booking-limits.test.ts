import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOfVehicle } from '../../runtime/kernel/placement.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * MAX_ACTIVE_BOOKINGS_PER_CUSTOMER on the real system, three shards (inline): a customer's bookings
 * spread over the shards, the main thread counts them all.
 */

const SHARDS = 3;
const PROBLEM_TYPE = 'https://fleetactors.dev/problems/';

let t: TestFleet;
let vehicleSeq = 0;

beforeAll(async () => {
  t = await startTestFleet({ FLEET_SHARDS: String(SHARDS), MAX_ACTIVE_BOOKINGS_PER_CUSTOMER: '1', PAYMENT_TIMEOUT_MS: '500' });
}, 60_000);
afterAll(async () => t?.close());

/** `count` fresh vehicles, registered, spread over every shard. */
async function newVehicles(count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => `lim-v${(vehicleSeq += 1)}`);
  for (const id of ids) expect((await t.registerVehicle(id)).statusCode).toBe(201);
  return ids;
}

const cancel = (bookingId: string, as: string) => t.request({ method: 'POST', url: `/bookings/${bookingId}/cancel`, as });
const journalRowsOf = (customerId: string) => t.count("SELECT count(*) AS n FROM journal WHERE event_type = 'BookingRequested' AND json_extract(data, '$.customerId') = ?", customerId);

function expectLimit(response: LightMyRequestResponse): void {
  expect(response.statusCode, response.body).toBe(409);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json()).toMatchObject({ type: `${PROBLEM_TYPE}active-booking-limit`, status: 409, limit: 1, instance: '/bookings' });
}

describe('at most MAX_ACTIVE_BOOKINGS_PER_CUSTOMER live bookings per customer', () => {
  it('10 concurrent bookings of different vehicles on every shard by one customer → exactly one 201; the refusals never reach a journal', async () => {
    const vehicles = await newVehicles(10);
    expect(new Set(vehicles.map((id) => shardOfVehicle(id, SHARDS))).size).toBe(SHARDS);
    const answers = await Promise.all(vehicles.map((vehicleId) => t.book('burst', vehicleId)));
    const created = answers.filter((answer) => answer.statusCode === 201);
    expect(created).toHaveLength(1);
    for (const answer of answers.filter((each) => each.statusCode !== 201)) expectLimit(answer);
    // Each refusal names the live booking: the way back to an id the customer lost.
    const liveId = created[0]!.json<{ id: string }>().id;
    for (const answer of answers.filter((each) => each.statusCode !== 201)) {
      expect(answer.json().liveBookingIds).toEqual([liveId]);
      expect(answer.json().detail).toContain(liveId);
    }
    expect(journalRowsOf('burst')).toBe(1);
    // Everybody else books as before, concurrently.
    const others = await Promise.all((await newVehicles(6)).map((vehicleId, index) => t.book(`other-${index}`, vehicleId)));
    expect(others.map((answer) => answer.statusCode)).toEqual(Array(6).fill(201));
  });

  it('a booking that ended (cancelled) or never held anything (payment declined) does not count', async () => {
    const [first, second, third] = await newVehicles(3);
    const held = await t.book('cycler', first!);
    expect(held.statusCode, held.body).toBe(201);
    expectLimit(await t.book('cycler', second!));
    expect((await cancel(held.json<{ id: string }>().id, 'cycler')).statusCode).toBe(200);
    expect((await t.book('cycler-2', second!, { paymentMethod: 'tok_chargeDeclined' })).statusCode).toBe(402);
    const again = await t.book('cycler-2', third!);
    expect(again.statusCode, again.body).toBe(201);
    const after = await t.book('cycler', second!);
    expect(after.statusCode, after.body).toBe(201);
  });

  it('Idempotency-Key: the same request replays its 201, another body is still 422, and a 409 for the limit is not stored', async () => {
    const [mine, other, later] = await newVehicles(3);
    const key = { 'idempotency-key': 'limit-key-1' };
    const booked = await t.book('keyed', mine!, {}, key);
    expect(booked.statusCode, booked.body).toBe(201);
    const replay = await t.book('keyed', mine!, {}, key);
    expect(replay.statusCode, replay.body).toBe(201);
    expect(replay.json<{ id: string }>().id).toBe(booked.json<{ id: string }>().id);
    const reused = await t.book('keyed', other!, {}, key);
    expect(reused.statusCode, reused.body).toBe(422);
    expect(reused.json()).toMatchObject({ type: `${PROBLEM_TYPE}idempotency-key-reused` });

    const laterKey = { 'idempotency-key': 'limit-key-2' };
    expectLimit(await t.book('keyed', later!, {}, laterKey));
    expect((await cancel(booked.json<{ id: string }>().id, 'keyed')).statusCode).toBe(200);
    // The same request once the other booking ended: it runs now, it was not answered from the store.
    const retried = await t.book('keyed', later!, {}, laterKey);
    expect(retried.statusCode, retried.body).toBe(201);
  });

  it('a limit of 2 lets exactly two of a concurrent burst through', async () => {
    const two = await startTestFleet({ FLEET_SHARDS: String(SHARDS), MAX_ACTIVE_BOOKINGS_PER_CUSTOMER: '2' });
    try {
      const ids = Array.from({ length: 8 }, (_, index) => `two-v${index}`);
      for (const id of ids) expect((await two.registerVehicle(id)).statusCode).toBe(201);
      const answers = await Promise.all(ids.map((vehicleId) => two.book('pair', vehicleId)));
      expect(answers.filter((answer) => answer.statusCode === 201)).toHaveLength(2);
      expect(answers.filter((answer) => answer.statusCode === 409)).toHaveLength(6);
    } finally {
      await two.close();
    }
  }, 60_000);
});
