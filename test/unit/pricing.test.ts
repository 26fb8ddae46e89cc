import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURRENCY, authorizationAmount, tripCharge } from '../../actors/booking/pricing.js';
import type { VehicleType } from '../../actors/contract/views.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2025, 0, 2, 8, 0, 0);

describe('authorizationAmount', () => {
  it.each<[VehicleType, number, number]>([
    // unlock fee + per-minute tariff × booked minutes, in cents
    ['car', 30, 100 + 39 * 30],
    ['scooter', 30, 100 + 25 * 30],
    ['bike', 30, 50 + 15 * 30],
    ['car', 1, 139],
    ['bike', 120, 50 + 15 * 120],
  ])('holds the whole booked duration for a %s of %i minutes: %i cents', (vehicleType, minutes, cents) => {
    expect(authorizationAmount(vehicleType, minutes)).toEqual({ amount: cents, currency: 'EUR' });
  });

  it('is in euros', () => {
    expect(CURRENCY).toBe('EUR');
  });
});

describe('tripCharge', () => {

  it.each<[string, number, number]>([
    ['a trip of 0 ms is charged the minimum minute', 0, 1],
    ['a trip of 1 ms is one started minute', 1, 1],
    ['exactly one minute is one minute', MINUTE, 1],
    ['one minute and 1 ms is two started minutes', MINUTE + 1, 2],
    ['10.5 minutes are 11 started minutes', 10.5 * MINUTE, 11],
    ['an end stamped before the unlock (clock skew) still costs the minimum minute', -5_000, 1],
  ])('%s', (_name, durationMs, minutes) => {
    expect(tripCharge('car', T0, T0 + durationMs)).toEqual({ amount: 100 + 39 * minutes, currency: 'EUR' });
  });

  it('uses the tariff of the vehicle type', () => {
    expect(tripCharge('scooter', T0, T0 + 5 * MINUTE).amount).toBe(100 + 25 * 5);
    expect(tripCharge('bike', T0, T0 + 5 * MINUTE).amount).toBe(50 + 15 * 5);
  });

  it('charges every minute ridden, past the hold too: the authorization is a hold, not a cap (issue 19)', () => {
    const hold = authorizationAmount('car', 30).amount;
    expect(tripCharge('car', T0, T0 + 45 * MINUTE)).toEqual({ amount: hold + 15 * 39, currency: 'EUR' });
    expect(tripCharge('car', T0, T0 + 30 * MINUTE)).toEqual({ amount: hold, currency: 'EUR' });
    expect(tripCharge('car', T0, T0 + 29 * MINUTE).amount).toBe(hold - 39);
    // The attack's bike: booked 1 minute (hold 65), ridden 3.09 minutes: 4 started minutes.
    expect(authorizationAmount('bike', 1).amount).toBe(65);
    expect(tripCharge('bike', T0, T0 + 3.09 * MINUTE).amount).toBe(110);
  });

  it('property: the booked duration costs exactly its hold; at least the minimum, never less for a longer trip', () => {
    const typeArb = fc.constantFrom<VehicleType>('car', 'scooter', 'bike');
    fc.assert(
      fc.property(typeArb, fc.integer({ min: 1, max: 240 }), fc.integer({ min: 0, max: 6 * 60 * MINUTE }), fc.integer({ min: 0, max: 60 * MINUTE }), (type, booked, trip, more) => {
        const hold = authorizationAmount(type, booked).amount;
        const charge = tripCharge(type, T0, T0 + trip).amount;
        if (trip <= booked * MINUTE) expect(charge).toBeLessThanOrEqual(hold);
        expect(tripCharge(type, T0, T0 + booked * MINUTE).amount).toBe(hold);
        expect(charge).toBeGreaterThanOrEqual(authorizationAmount(type, 1).amount);
        expect(Number.isInteger(charge)).toBe(true);
        expect(tripCharge(type, T0, T0 + trip + more).amount).toBeGreaterThanOrEqual(charge);
      }),
    );
  });
});
