import type { VehicleType } from '../contract/views.js';
import type { Money } from '../contract/views.js';

/** Tariffs in minor units (euro cents). The authorization holds the whole booked duration. */
const TARIFFS: Record<VehicleType, { readonly unlockFee: number; readonly perMinute: number }> = {
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

/** Started minutes count; never more than was authorized (a capture above the hold would fail). */
export function tripCharge(vehicleType: VehicleType, unlockedAt: number, endedAt: number, authorized: number): Money {
  const tariff = TARIFFS[vehicleType];
  const minutes = Math.max(1, Math.ceil((endedAt - unlockedAt) / 60_000));
  return { amount: Math.min(authorized, tariff.unlockFee + tariff.perMinute * minutes), currency: CURRENCY };
}
