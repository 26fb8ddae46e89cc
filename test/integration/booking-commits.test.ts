import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * How many sequential durable steps (journal commits) one booking waits for, counted from the
 * journal engine's commits and read back from the journal's rows (issue 18: "fewer sequential durable
 * steps"). One unkeyed booking on an otherwise idle shard: every commit in between is one of its
 * steps, since each step waits for the one before (docs/architecture.md, "Crash points of a booking").
 * Before: 6 (BookingRequested; VehicleReserved; BookingVehicleReserved; AuthorizationRequested;
 * PaymentAuthorized; BookingConfirmed). Now 5: BookingVehicleReserved shares BookingConfirmed's commit.
 */

let t: TestFleet;

beforeAll(async () => {
  t = await startTestFleet();
});
afterAll(async () => t?.close());

const commits = async (): Promise<number> => (await t.fleet.shardStats()).reduce((sum, stats) => sum + (stats?.journal.commits ?? 0), 0);

interface Row {
  readonly position: number;
  readonly persistence_key: string;
  readonly event_type: string;
}

describe('the commits of one booking', () => {
  it('a confirmed booking is 5 sequential commits, the booking vehicle-reserved fact in its confirmation', async () => {
    expect((await t.registerVehicle('commits-v1', 'car')).statusCode).toBe(201);
    const before = await commits();
    const firstPosition = (t.db.prepare('SELECT coalesce(max(position), 0) AS p FROM journal').get() as { p: number }).p;

    const booked = await t.book('alice', 'commits-v1');
    expect(booked.statusCode, booked.body).toBe(201);
    const bookingId = (JSON.parse(booked.body) as { id: string }).id;
    const after = await commits();

    const rows = t.db.prepare('SELECT position, persistence_key, event_type FROM journal WHERE position > ? ORDER BY position').all(firstPosition) as Row[];
    expect(rows.map((row) => `${row.persistence_key.split('/')[0]}: ${row.event_type}`)).toEqual([
      'booking: BookingRequested',
      'vehicle: VehicleReserved',
      'payment: AuthorizationRequested',
      'payment: PaymentAuthorized',
      'booking: BookingVehicleReserved',
      'booking: BookingConfirmed',
    ]);
    // The reservation and the confirmation are one commit: adjacent rows of the booking, nothing between.
    const booking = rows.filter((row) => row.persistence_key === `booking/${bookingId}`);
    expect(booking.map((row) => row.event_type)).toEqual(['BookingRequested', 'BookingVehicleReserved', 'BookingConfirmed']);
    expect((booking[2]?.position ?? 0) - (booking[1]?.position ?? 0)).toBe(1);
    expect(after - before).toBe(5);
  });
});
