import { describe, expect, it } from 'vitest';
import { evolve, initialBookingState, isFinal, statusAfter, type BookingEvent, type BookingState } from '../../actors/booking/decider.js';
import { FINAL_STATUSES, LIVE_STATUSES, sqlStatusList } from '../../actors/booking/lifecycle.js';
import { fromBookingRecord, toBookingRecord, type BookingRecord } from '../../actors/booking/record.js';
import type { Rejection } from '../../actors/contract/rejections.js';

/**
 * What the booking's state means outside the actor: which statuses are live and final (the live-booking
 * count, the purge), the status each event leads to (the read-model projector, which sees events only),
 * and the flat record traces show and snapshots store.
 */

const B = 'b-1';
const T0 = Date.UTC(2025, 0, 2, 8, 0, 0);
const authorization = { id: `auth_${B}`, amount: 1270, currency: 'EUR' };
const declined: Rejection = { type: 'PaymentDeclined', authorizationId: `auth_${B}`, reason: 'card_declined' };
const unavailable: Rejection = { type: 'VehicleUnavailable', vehicleId: 'v-1', status: 'RESERVED' };

const requested: BookingEvent = { type: 'BookingRequested', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', paymentMethod: 'tok_visa', durationMinutes: 30, at: T0, confirmBy: T0 + 30_000 };
const vehicleReserved: BookingEvent = { type: 'BookingVehicleReserved', bookingId: B, vehicleId: 'v-1', vehicleType: 'car', at: T0 + 100 };
const confirmed: BookingEvent = { type: 'BookingConfirmed', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', vehicleType: 'car', durationMinutes: 30, authorization, at: T0 + 300, expiresAt: T0 + 900_000 };
const activated: BookingEvent = { type: 'BookingActivated', bookingId: B, vehicleId: 'v-1', unlockedAt: T0 + 60_000 };
const returned: BookingEvent = { type: 'VehicleReturned', bookingId: B, vehicleId: 'v-1', lockedAt: T0 + 1_260_000, at: T0 + 1_260_050 };
const completed: BookingEvent = { type: 'BookingCompleted', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', charge: { amount: 880, currency: 'EUR' }, unlockedAt: T0 + 60_000, endedAt: T0 + 1_260_000 };
const cancelled: BookingEvent = { type: 'BookingCancelled', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', cancelledBy: 'c-1', at: T0 + 120_000 };
const expired = (previousStatus: 'REQUESTED' | 'VEHICLE_RESERVED' | 'CONFIRMED'): BookingEvent => ({ type: 'BookingExpired', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', previousStatus, at: T0 + 900_000 });
const rejected = (rejection: Rejection, needsCompensation: boolean): BookingEvent => ({ type: 'BookingRejected', bookingId: B, vehicleId: 'v-1', rejection, needsCompensation, at: T0 + 100 });
const compensated: BookingEvent = { type: 'BookingCompensated', bookingId: B, at: T0 + 2_000_000 };
const opened: BookingEvent = { type: 'VehicleOpenedAfterEnd', bookingId: B, vehicleId: 'v-1', unlockedAt: T0 + 2_100_000, at: T0 + 2_100_010 };
const relocked = (needsCompensation: boolean): BookingEvent => ({ type: 'VehicleRelocked', bookingId: B, vehicleId: 'v-1', lockedAt: T0 + 2_100_900, needsCompensation, at: T0 + 2_101_000 });

/** Journals as the decider writes them: together they hold every event type, in every state it is emitted from. */
const HISTORIES: readonly (readonly BookingEvent[])[] = [
  [requested, vehicleReserved, confirmed, activated, returned, completed, opened, relocked(false)],
  [requested, vehicleReserved, confirmed, cancelled, opened, relocked(true), compensated],
  [requested, vehicleReserved, confirmed, cancelled, compensated, opened, relocked(false)],
  [requested, expired('REQUESTED'), compensated],
  [requested, vehicleReserved, expired('VEHICLE_RESERVED'), opened, relocked(true), compensated],
  [requested, vehicleReserved, confirmed, expired('CONFIRMED'), compensated],
  [requested, rejected(unavailable, false)],
  [requested, vehicleReserved, rejected(declined, true), compensated, opened, relocked(false)],
];

/** Every state each history passes through, with the event that led there. */
const steps = HISTORIES.flatMap((history) => {
  let state: BookingState = initialBookingState;
  return history.map((event) => {
    const before = state;
    state = evolve(state, event);
    return { before, event, after: state };
  });
});

describe('live and final statuses', () => {
  it('split every status in two: live ones hold a vehicle, final ones never change status again', () => {
    expect([...LIVE_STATUSES, ...FINAL_STATUSES].sort()).toEqual(['ACTIVE', 'CANCELLED', 'COMPLETED', 'CONFIRMED', 'EXPIRED', 'REJECTED', 'REQUESTED', 'VEHICLE_RESERVED']);
    expect(LIVE_STATUSES.filter((status) => isFinal(status))).toEqual([]);
    expect(isFinal('NEW')).toBe(false);
  });

  it('a final status is never left, whatever the journal holds after it', () => {
    for (const { before, after } of steps) if (isFinal(before.status)) expect(after.status).toBe(before.status);
  });

  it('writes the SQL list the live-booking count excludes', () => {
    expect(sqlStatusList(FINAL_STATUSES)).toBe("'COMPLETED', 'CANCELLED', 'EXPIRED', 'REJECTED'");
  });
});

describe('statusAfter (the projector’s status, from the event alone)', () => {
  it('agrees with evolve for every event in every state the decider emits it from', () => {
    for (const { before, event, after } of steps) expect(statusAfter(event) ?? before.status, `${event.type} after ${before.status}`).toBe(after.status);
  });

  it('the histories hold every event type', () => {
    const types = new Set(steps.map(({ event }) => event.type));
    expect([...types].sort()).toEqual([
      'BookingActivated',
      'BookingCancelled',
      'BookingCompensated',
      'BookingCompleted',
      'BookingConfirmed',
      'BookingExpired',
      'BookingRejected',
      'BookingRequested',
      'BookingVehicleReserved',
      'VehicleOpenedAfterEnd',
      'VehicleRelocked',
      'VehicleReturned',
    ]);
  });
});

describe('the booking record (traces, snapshots)', () => {
  const KEYS = ['status', 'bookingId', 'customerId', 'vehicleId', 'vehicleType', 'paymentMethod', 'durationMinutes', 'createdAt', 'expiresAt', 'authorization', 'unlockedAt', 'endedAt', 'charge', 'rejection', 'needsCompensation', 'mustLock'];

  it('has every field, always in the same order, in every state', () => {
    expect(Object.keys(toBookingRecord(initialBookingState))).toEqual(KEYS);
    for (const { after } of steps) expect(Object.keys(toBookingRecord(after))).toEqual(KEYS);
  });

  it('reads back, through JSON as a snapshot is stored, into the very same state', () => {
    expect(fromBookingRecord(JSON.parse(JSON.stringify(toBookingRecord(initialBookingState))))).toEqual(initialBookingState);
    for (const { after } of steps) expect(fromBookingRecord(JSON.parse(JSON.stringify(toBookingRecord(after))))).toEqual(after);
  });

  it('reads a snapshot the build before the union wrote (one record with nullable fields)', () => {
    // As the previous build's evolve left a returned trip whose capture failed, and snapshotted it.
    const legacy: BookingRecord = {
      status: 'ACTIVE',
      bookingId: B,
      customerId: 'c-1',
      vehicleId: 'v-1',
      vehicleType: 'car',
      paymentMethod: 'tok_visa',
      durationMinutes: 30,
      createdAt: T0,
      expiresAt: T0 + 900_000,
      authorization,
      unlockedAt: T0 + 60_000,
      endedAt: T0 + 1_260_000,
      charge: null,
      rejection: null,
      needsCompensation: false,
      mustLock: false,
    };
    const state = fromBookingRecord(JSON.parse(JSON.stringify(legacy)));
    expect(state).toEqual(HISTORIES[0]!.slice(0, 5).reduce(evolve, initialBookingState));
    // …and goes on from there with the events after the snapshot.
    expect(evolve(state, completed)).toMatchObject({ status: 'COMPLETED', endedAt: T0 + 1_260_000 });
  });

  it('refuses a record without a field its status must hold (a corrupt snapshot), rather than guess', () => {
    const confirmedRecord = toBookingRecord(HISTORIES[0]!.slice(0, 3).reduce(evolve, initialBookingState));
    expect(() => fromBookingRecord({ ...confirmedRecord, authorization: null })).toThrow('a CONFIRMED booking snapshot without authorization');
  });

  it('reads a legacy REJECTED snapshot of a booking whose vehicle was reserved, with its compensation still due', () => {
    const legacy = { ...toBookingRecord(HISTORIES[7]!.slice(0, 3).reduce(evolve, initialBookingState)) };
    expect(legacy).toMatchObject({ status: 'REJECTED', vehicleType: 'car', authorization: null, needsCompensation: true });
    expect(fromBookingRecord(legacy)).toEqual({
      status: 'REJECTED',
      bookingId: B,
      customerId: 'c-1',
      vehicleId: 'v-1',
      vehicleType: 'car',
      paymentMethod: 'tok_visa',
      durationMinutes: 30,
      createdAt: T0,
      expiresAt: T0 + 30_000,
      rejection: declined,
      needsCompensation: true,
      mustLock: false,
    });
  });
});
