import type { VehicleType } from '../contract/views.js';
import type { Money } from '../contract/views.js';

/**
 * The fleet's prices, in one place (docs/contract.md, "Pricing"; the GBFS pricing plans read the same
 * table). Minor units (euro cents). A trip costs the unlock fee plus every started minute between the
 * unlock and the lock. The authorization made at booking holds the booked duration; it is a hold, not
 * a cap: a ride that outruns it is captured in full (the payment actor raises the hold first).
 */
export const TARIFFS: Readonly<Record<VehicleType, { readonly unlockFee: number; readonly perMinute: number }>> = {
  car: { unlockFee: 100, perMinute: 39 },
  scooter: { unlockFee: 100, perMinute: 25 },
  bike: { unlockFee: 50, perMinute: 15 },
};
export const CURRENCY = 'EUR';

/** The tariff a booking of this type is charged with: also what GBFS system_pricing_plans.json publishes. */
export const tariffOf = (vehicleType: VehicleType): { readonly unlockFee: number; readonly perMinute: number } => TARIFFS[vehicleType];

export function authorizationAmount(vehicleType: VehicleType, durationMinutes: number): Money {
  const tariff = TARIFFS[vehicleType];
  return { amount: tariff.unlockFee + tariff.perMinute * durationMinutes, currency: CURRENCY };
}

/** What a trip owes: the unlock fee and every started minute ridden (at least one), whatever was authorized. */
export function tripCharge(vehicleType: VehicleType, unlockedAt: number, endedAt: number): Money {
  const tariff = TARIFFS[vehicleType];
  const minutes = Math.max(1, Math.ceil((endedAt - unlockedAt) / 60_000));
  return { amount: tariff.unlockFee + tariff.perMinute * minutes, currency: CURRENCY };
}
