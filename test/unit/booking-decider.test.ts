import { describe, expect, it } from 'vitest';
import { type BookingStatus, type Caller } from '../../actors/contract/views.js';
import { CAPTURE_RETRY_MS, COMPENSATION_RETRY_MS, checkAccess, checkEnd, checkUnlock, decide, evolve, initialBookingState, isFinal, wakeAtAfter, type BookingCommand, type BookingEvent, type BookingState } from '../../actors/booking/decider.js';
import type { Rejection } from '../../actors/contract/rejections.js';
import { toBookingRecord, type BookingRecord } from '../../actors/booking/record.js';
import { specification } from '../helpers/decider-spec.js';

const B = 'b-1';
const spec = specification<BookingCommand, BookingEvent, BookingState>({
  decide: (command, state) => decide(B, command, state),
  evolve,
  initialState: () => initialBookingState,
});

const T0 = Date.UTC(2025, 0, 2, 8, 0, 0);
const CONFIRM_BY = T0 + 30_000;
const UNLOCK_BY = T0 + 15 * 60_000;
const customer: Caller = { id: 'c-1', role: 'customer' };
const otherCustomer: Caller = { id: 'c-2', role: 'customer' };
const operator: Caller = { id: 'op-1', role: 'operator' };
const authorization = { id: `auth_${B}`, amount: 1270, currency: 'EUR' };
const declined: Rejection = { type: 'PaymentDeclined', authorizationId: `auth_${B}`, reason: 'card_declined' };
const unavailable: Rejection = { type: 'VehicleUnavailable', vehicleId: 'v-1', status: 'RESERVED' };
const noAnswer: Rejection = { type: 'ActorUnavailable', actor: 'vehicle/v-1', timeoutMs: 5_000 };

// ---- events -------------------------------------------------------------------------------------

const requested: BookingEvent = { type: 'BookingRequested', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', paymentMethod: 'tok_visa', durationMinutes: 30, at: T0, confirmBy: CONFIRM_BY };
const vehicleReserved: BookingEvent = { type: 'BookingVehicleReserved', bookingId: B, vehicleId: 'v-1', vehicleType: 'car', at: T0 + 100 };
const confirmed: BookingEvent = {
  type: 'BookingConfirmed',
  bookingId: B,
  customerId: 'c-1',
  vehicleId: 'v-1',
  vehicleType: 'car',
  durationMinutes: 30,
  authorization,
  at: T0 + 300,
  expiresAt: UNLOCK_BY,
};
const rejected = (rejection: Rejection, needsCompensation: boolean, at = T0 + 100): BookingEvent => ({ type: 'BookingRejected', bookingId: B, vehicleId: 'v-1', rejection, needsCompensation, at });
const activated: BookingEvent = { type: 'BookingActivated', bookingId: B, vehicleId: 'v-1', unlockedAt: T0 + 60_000 };
const charge = { amount: 880, currency: 'EUR' };
const completed: BookingEvent = { type: 'BookingCompleted', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', charge, unlockedAt: T0 + 60_000, endedAt: T0 + 20 * 60_000 };
const cancelled = (by: Caller = customer, at = T0 + 120_000): BookingEvent => ({ type: 'BookingCancelled', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', cancelledBy: by.id, at });
const expired = (previousStatus: BookingStatus, at: number): BookingEvent => ({ type: 'BookingExpired', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', previousStatus, at });
const compensated = (at = T0 + 200_000): BookingEvent => ({ type: 'BookingCompensated', bookingId: B, at });

const atRequested = [requested];
const atReserved = [requested, vehicleReserved];
const atConfirmed = [requested, vehicleReserved, confirmed];
const atActive = [...atConfirmed, activated];
const atCompleted = [...atActive, completed];
const atCancelled = [...atConfirmed, cancelled()];
const atExpired = [...atConfirmed, expired('CONFIRMED', UNLOCK_BY)];
const atRejectedDeclined = [...atReserved, rejected(declined, true)];
const atRejectedUnavailable = [requested, rejected(unavailable, false)];

/** Every reachable status, for the "only in these states" rules. */
const everyStatus: ReadonlyArray<readonly [BookingState['status'], BookingEvent[]]> = [
  ['NEW', []],
  ['REQUESTED', atRequested],
  ['VEHICLE_RESERVED', atReserved],
  ['CONFIRMED', atConfirmed],
  ['ACTIVE', atActive],
  ['COMPLETED', atCompleted],
  ['CANCELLED', atCancelled],
  ['EXPIRED', atExpired],
  ['REJECTED', atRejectedDeclined],
];
const except = (...statuses: Array<BookingState['status']>) => everyStatus.filter(([status]) => !statuses.includes(status));

// ---- commands -----------------------------------------------------------------------------------

const requestBooking = (overrides: Partial<Extract<BookingCommand, { type: 'RequestBooking' }>> = {}): BookingCommand => ({
  type: 'RequestBooking',
  bookingId: B,
  customerId: 'c-1',
  vehicleId: 'v-1',
  paymentMethod: 'tok_visa',
  durationMinutes: 30,
  at: T0,
  confirmBy: CONFIRM_BY,
  ...overrides,
});
const recordVehicleReserved: BookingCommand = { type: 'RecordVehicleReserved', vehicleType: 'car', at: T0 + 100 };
const recordReservationRefused = (rejection: Rejection, maybeReserved: boolean): BookingCommand => ({ type: 'RecordReservationRefused', rejection, maybeReserved, at: T0 + 100 });
const recordAuthorized: BookingCommand = { type: 'RecordAuthorized', authorization, at: T0 + 300, unlockBy: UNLOCK_BY };
const recordPaymentDeclined: BookingCommand = { type: 'RecordPaymentDeclined', rejection: declined, at: T0 + 100 };
const recordUnlocked: BookingCommand = { type: 'RecordUnlocked', unlockedAt: T0 + 60_000, at: T0 + 60_100 };
const recordCompleted: BookingCommand = { type: 'RecordCompleted', charge, endedAt: T0 + 20 * 60_000 };
const cancel = (caller: Caller, at = T0 + 120_000): BookingCommand => ({ type: 'Cancel', caller, at });
const expire = (at: number): BookingCommand => ({ type: 'Expire', at });
const recordCompensated = (at = T0 + 200_000): BookingCommand => ({ type: 'RecordCompensated', at });

// ---- specifications -----------------------------------------------------------------------------

describe('RequestBooking', () => {
  it('opens a new booking, due for confirmation by confirmBy', () => {
    const state = spec.given([]).when(requestBooking()).then([requested]);
    expect(state).toMatchObject({ status: 'REQUESTED', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', expiresAt: CONFIRM_BY, createdAt: T0 });
  });

  it.each(except('NEW'))('emits nothing for the same request again when %s (an Idempotency-Key retry)', (_status, given) => {
    spec.given(given).when(requestBooking({ at: T0 + 5_000, confirmBy: CONFIRM_BY + 5_000 })).thenNothing();
  });

  it('refuses a different customer or vehicle under an existing booking id', () => {
    spec.given(atConfirmed).when(requestBooking({ customerId: 'c-2' })).thenRejects({ type: 'BookingAlreadyExists', bookingId: B });
    spec.given(atRequested).when(requestBooking({ vehicleId: 'v-2' })).thenRejects({ type: 'BookingAlreadyExists', bookingId: B });
    // Another payment method or duration is another request too (an Idempotency-Key reused with another body).
    spec.given(atConfirmed).when(requestBooking({ paymentMethod: 'tok_chargeDeclined' })).thenRejects({ type: 'BookingAlreadyExists', bookingId: B });
    spec.given(atConfirmed).when(requestBooking({ durationMinutes: 45 })).thenRejects({ type: 'BookingAlreadyExists', bookingId: B });
  });
});

describe('RecordVehicleReserved', () => {
  it('moves a REQUESTED booking to VEHICLE_RESERVED and learns the vehicle type', () => {
    const state = spec.given(atRequested).when(recordVehicleReserved).then([vehicleReserved]);
    expect(state).toMatchObject({ status: 'VEHICLE_RESERVED', vehicleType: 'car', expiresAt: CONFIRM_BY });
  });

  it.each(except('REQUESTED'))('emits nothing when %s', (_status, given) => {
    spec.given(given).when(recordVehicleReserved).thenNothing();
  });
});

describe('RecordReservationRefused', () => {
  it('rejects a REQUESTED booking; no compensation when the vehicle clearly refused', () => {
    const state = spec.given(atRequested).when(recordReservationRefused(unavailable, false)).then([rejected(unavailable, false)]);
    expect(state).toMatchObject({ status: 'REJECTED', rejection: unavailable, needsCompensation: false });
  });

  it('rejects with compensation when the vehicle did not answer (it may have reserved)', () => {
    const state = spec.given(atRequested).when(recordReservationRefused(noAnswer, true)).then([rejected(noAnswer, true)]);
    expect(state).toMatchObject({ status: 'REJECTED', needsCompensation: true });
  });

  it.each(except('REQUESTED'))('emits nothing when %s', (_status, given) => {
    spec.given(given).when(recordReservationRefused(unavailable, false)).thenNothing();
  });
});

describe('RecordAuthorized', () => {
  it('confirms a VEHICLE_RESERVED booking, now due for unlock by unlockBy', () => {
    const state = spec.given(atReserved).when(recordAuthorized).then([confirmed]);
    expect(state).toMatchObject({ status: 'CONFIRMED', authorization, expiresAt: UNLOCK_BY });
  });

  it.each(except('VEHICLE_RESERVED'))('emits nothing when %s (a late authorization)', (_status, given) => {
    spec.given(given).when(recordAuthorized).thenNothing();
  });
});

describe('RecordPaymentDeclined', () => {
  it('rejects a VEHICLE_RESERVED booking and always asks for compensation (the vehicle is held)', () => {
    const state = spec.given(atReserved).when(recordPaymentDeclined).then([rejected(declined, true)]);
    expect(state).toMatchObject({ status: 'REJECTED', rejection: declined, needsCompensation: true });
  });

  it.each(except('VEHICLE_RESERVED'))('emits nothing when %s', (_status, given) => {
    spec.given(given).when(recordPaymentDeclined).thenNothing();
  });
});

describe('RecordUnlocked', () => {
  it('activates a CONFIRMED booking (also for an unlock that timed out for the caller)', () => {
    const state = spec.given(atConfirmed).when(recordUnlocked).then([activated]);
    expect(state).toMatchObject({ status: 'ACTIVE', unlockedAt: T0 + 60_000 });
  });

  it.each(except('CONFIRMED', 'CANCELLED', 'EXPIRED', 'COMPLETED', 'REJECTED'))('emits nothing when %s', (_status, given) => {
    spec.given(given).when(recordUnlocked).thenNothing();
  });
});

describe('RecordUnlocked after the end (a late UNLOCKED) and RecordRelocked', () => {
  const LATE = UNLOCK_BY + 5_000;
  const lateUnlock: BookingCommand = { type: 'RecordUnlocked', unlockedAt: LATE, at: LATE + 10 };
  const opened: BookingEvent = { type: 'VehicleOpenedAfterEnd', bookingId: B, vehicleId: 'v-1', unlockedAt: LATE, at: LATE + 10 };
  const relocked: BookingEvent = { type: 'VehicleRelocked', bookingId: B, vehicleId: 'v-1', lockedAt: LATE + 900, needsCompensation: true, at: LATE + 1_000 };

  it.each(except('NEW', 'REQUESTED', 'VEHICLE_RESERVED', 'CONFIRMED', 'ACTIVE'))('%s: the car stands open, so the booking must lock it', (status, given) => {
    const state = spec.given(given).when(lateUnlock).then([opened]);
    expect(state).toMatchObject({ status, mustLock: true });
  });

  it('an EXPIRED booking stays EXPIRED and keeps its compensation due', () => {
    const state = spec.given([...atConfirmed, expired('CONFIRMED', UNLOCK_BY)]).when(lateUnlock).then([opened]);
    expect(state).toMatchObject({ status: 'EXPIRED', needsCompensation: true, mustLock: true });
    // The late UNLOCKED starts no trip: an EXPIRED booking has no unlock time (its record says null).
    expect(state).not.toHaveProperty('unlockedAt');
    expect(toBookingRecord(state)).toMatchObject({ unlockedAt: null });
  });

  it('a repeated late UNLOCKED while the lock is pending records nothing new', () => {
    spec.given([...atConfirmed, cancelled(), opened]).when(lateUnlock).thenNothing();
  });

  it('records the lock; a second one, or one with nothing to lock, records nothing', () => {
    const given = [...atConfirmed, cancelled(), opened];
    const relock: BookingCommand = { type: 'RecordRelocked', lockedAt: LATE + 900, at: LATE + 1_000 };
    expect(spec.given(given).when(relock).then([relocked])).toMatchObject({ status: 'CANCELLED', mustLock: false });
    spec.given([...given, relocked]).when(relock).thenNothing();
    spec.given([...atConfirmed, cancelled()]).when(relock).thenNothing();
  });

  it('wakes the booking to retry a LOCK that failed; once locked, only a compensation still to do keeps it due', () => {
    expect(wakeAtAfter(opened)).toBe(LATE + 10 + COMPENSATION_RETRY_MS);
    expect(wakeAtAfter(relocked)).toBe(LATE + 1_000 + COMPENSATION_RETRY_MS);
    expect(wakeAtAfter({ ...relocked, needsCompensation: false })).toBeNull();
  });
});

const LOCKED_AT = T0 + 20 * 60_000;
const returned: BookingEvent = { type: 'VehicleReturned', bookingId: B, vehicleId: 'v-1', lockedAt: LOCKED_AT, at: LOCKED_AT + 50 };
const recordReturned: BookingCommand = { type: 'RecordReturned', lockedAt: LOCKED_AT, at: LOCKED_AT + 50 };

describe('RecordReturned', () => {
  it('records the lock time of an ACTIVE booking before its capture; it stays ACTIVE until captured', () => {
    const state = spec.given(atActive).when(recordReturned).then([returned]);
    expect(state).toMatchObject({ status: 'ACTIVE', endedAt: LOCKED_AT });
    // No charge until captured: an ACTIVE booking has none (its record says null).
    expect(state).not.toHaveProperty('charge');
    expect(toBookingRecord(state)).toMatchObject({ charge: null });
  });

  it('keeps the first lock time: a retried end after a failed capture records nothing new', () => {
    spec.given([...atActive, returned]).when({ type: 'RecordReturned', lockedAt: LOCKED_AT + 99_000, at: LOCKED_AT + 100_000 }).thenNothing();
  });

  it.each(except('ACTIVE'))('emits nothing when %s', (_status, given) => {
    spec.given(given).when(recordReturned).thenNothing();
  });

  it('completes after the return with the recorded lock time', () => {
    const state = spec.given([...atActive, returned]).when(recordCompleted).then([completed]);
    expect(state).toMatchObject({ status: 'COMPLETED', charge, endedAt: LOCKED_AT });
  });
});

describe('RecordCompleted', () => {
  it('completes an ACTIVE booking with the charge and the trip times', () => {
    const state = spec.given(atActive).when(recordCompleted).then([completed]);
    expect(state).toMatchObject({ status: 'COMPLETED', charge, endedAt: T0 + 20 * 60_000 });
    // Nothing to compensate after a trip: a COMPLETED booking owes no release (its record says false).
    expect(state).not.toHaveProperty('needsCompensation');
    expect(toBookingRecord(state)).toMatchObject({ needsCompensation: false });
  });

  it.each(except('ACTIVE'))('emits nothing when %s', (_status, given) => {
    spec.given(given).when(recordCompleted).thenNothing();
  });
});

describe('Cancel', () => {
  it('the customer cancels a CONFIRMED booking, which then needs compensation', () => {
    const state = spec.given(atConfirmed).when(cancel(customer)).then([cancelled(customer)]);
    expect(state).toMatchObject({ status: 'CANCELLED', needsCompensation: true });
  });

  it('an operator cancels any customer’s CONFIRMED booking, and is named as the canceller', () => {
    spec.given(atConfirmed).when(cancel(operator)).then([cancelled(operator)]);
  });

  it('another customer is forbidden, whatever the state', () => {
    spec.given(atConfirmed).when(cancel(otherCustomer)).thenRejects({ type: 'BookingForbidden', bookingId: B });
    spec.given(atCancelled).when(cancel(otherCustomer)).thenRejects({ type: 'BookingForbidden', bookingId: B });
  });

  it('an unknown booking is not found, for customers and operators alike', () => {
    spec.given([]).when(cancel(customer)).thenRejects({ type: 'BookingNotFound', bookingId: B });
    spec.given([]).when(cancel(operator)).thenRejects({ type: 'BookingNotFound', bookingId: B });
  });

  it('cancelling again emits nothing', () => {
    spec.given(atCancelled).when(cancel(customer, T0 + 130_000)).thenNothing();
    spec.given([...atCancelled, compensated()]).when(cancel(operator, T0 + 300_000)).thenNothing();
  });

  it.each(except('NEW', 'CONFIRMED', 'CANCELLED'))('refuses when %s: only a CONFIRMED booking can be cancelled', (status, given) => {
    spec.given(given).when(cancel(customer)).thenRejects({ type: 'InvalidBookingState', bookingId: B, status, expected: ['CONFIRMED'] });
  });
});

describe('Expire', () => {
  it('expires a REQUESTED booking at its confirmBy, not a millisecond before', () => {
    spec.given(atRequested).when(expire(CONFIRM_BY - 1)).thenNothing();
    const state = spec.given(atRequested).when(expire(CONFIRM_BY)).then([expired('REQUESTED', CONFIRM_BY)]);
    expect(state).toMatchObject({ status: 'EXPIRED', needsCompensation: true });
  });

  it('expires a VEHICLE_RESERVED booking at its confirmBy', () => {
    spec.given(atReserved).when(expire(CONFIRM_BY - 1)).thenNothing();
    spec.given(atReserved).when(expire(CONFIRM_BY + 1)).then([expired('VEHICLE_RESERVED', CONFIRM_BY + 1)]);
  });

  it('expires a CONFIRMED booking at its unlock deadline, not at the earlier confirmation deadline', () => {
    spec.given(atConfirmed).when(expire(CONFIRM_BY)).thenNothing();
    spec.given(atConfirmed).when(expire(UNLOCK_BY - 1)).thenNothing();
    const state = spec.given(atConfirmed).when(expire(UNLOCK_BY)).then([expired('CONFIRMED', UNLOCK_BY)]);
    expect(state).toMatchObject({ status: 'EXPIRED', needsCompensation: true });
  });

  it.each(except('REQUESTED', 'VEHICLE_RESERVED', 'CONFIRMED'))('never expires a booking that is %s, however late', (_status, given) => {
    spec.given(given).when(expire(UNLOCK_BY + 24 * 3_600_000)).thenNothing();
  });
});

describe('RecordCompensated', () => {
  it.each<[string, BookingEvent[]]>([
    ['CANCELLED', atCancelled],
    ['EXPIRED', atExpired],
    ['REJECTED after a declined payment', atRejectedDeclined],
    ['REJECTED after a reservation that got no answer', [requested, rejected(noAnswer, true)]],
  ])('records the compensation of a booking %s', (_name, given) => {
    const state = spec.given(given).when(recordCompensated()).then([compensated()]);
    expect(state).toMatchObject({ needsCompensation: false });
  });

  it('emits nothing once compensated', () => {
    spec.given([...atCancelled, compensated()]).when(recordCompensated(T0 + 300_000)).thenNothing();
  });

  it.each<[string, BookingEvent[]]>([
    ['NEW', []],
    ['REQUESTED', atRequested],
    ['CONFIRMED', atConfirmed],
    ['ACTIVE', atActive],
    ['COMPLETED', atCompleted],
    ['REJECTED by a vehicle that clearly refused', atRejectedUnavailable],
  ])('emits nothing when nothing needs compensating (%s)', (_name, given) => {
    spec.given(given).when(recordCompensated()).thenNothing();
  });
});

describe('evolve', () => {
  it('folds the whole happy path into a COMPLETED booking', () => {
    expect(spec.given(atCompleted).state).toEqual<BookingState>({
      status: 'COMPLETED',
      bookingId: B,
      customerId: 'c-1',
      vehicleId: 'v-1',
      vehicleType: 'car',
      paymentMethod: 'tok_visa',
      durationMinutes: 30,
      createdAt: T0,
      expiresAt: UNLOCK_BY,
      authorization,
      unlockedAt: T0 + 60_000,
      endedAt: T0 + 20 * 60_000,
      charge,
      mustLock: false,
    });
  });

  it('shows the COMPLETED booking as the same flat record as ever (traces, snapshots)', () => {
    expect(toBookingRecord(spec.given(atCompleted).state)).toEqual<BookingRecord>({
      status: 'COMPLETED',
      bookingId: B,
      customerId: 'c-1',
      vehicleId: 'v-1',
      vehicleType: 'car',
      paymentMethod: 'tok_visa',
      durationMinutes: 30,
      createdAt: T0,
      expiresAt: UNLOCK_BY,
      authorization,
      unlockedAt: T0 + 60_000,
      endedAt: T0 + 20 * 60_000,
      charge,
      rejection: null,
      needsCompensation: false,
      mustLock: false,
    });
  });

  it('folds a declined payment and its compensation into a settled REJECTED booking', () => {
    const state = spec.given([...atRejectedDeclined, compensated()]).state;
    expect(state).toMatchObject({ status: 'REJECTED', rejection: declined, needsCompensation: false });
    // A declined payment holds nothing: a REJECTED booking has no authorization (its record says null).
    expect(state).not.toHaveProperty('authorization');
    expect(toBookingRecord(state)).toMatchObject({ authorization: null });
  });
});

describe('wakeAtAfter', () => {
  it.each<[string, BookingEvent, number | null | undefined]>([
    ['BookingRequested: the confirmation deadline', requested, CONFIRM_BY],
    ['BookingVehicleReserved: unchanged', vehicleReserved, undefined],
    ['BookingConfirmed: the unlock deadline', confirmed, UNLOCK_BY],
    ['BookingRejected with compensation: a compensation retry', rejected(declined, true, T0 + 100), T0 + 100 + COMPENSATION_RETRY_MS],
    ['BookingRejected without compensation: no timer', rejected(unavailable, false), null],
    ['BookingActivated: no timer (a trip has no deadline)', activated, null],
    ['BookingCancelled: a compensation retry', cancelled(customer, T0 + 120_000), T0 + 120_000 + COMPENSATION_RETRY_MS],
    ['BookingExpired: a compensation retry', expired('CONFIRMED', UNLOCK_BY), UNLOCK_BY + COMPENSATION_RETRY_MS],
    ['VehicleReturned: a capture retry, until completed', returned, LOCKED_AT + 50 + CAPTURE_RETRY_MS],
    ['BookingCompleted: no timer', completed, null],
    ['BookingCompensated: no timer', compensated(), null],
  ])('%s', (_name, event, wakeAt) => {
    expect(wakeAtAfter(event)).toBe(wakeAt);
  });
});

describe('isFinal', () => {
  it('is true exactly for COMPLETED, CANCELLED, EXPIRED and REJECTED', () => {
    const finals = everyStatus.map(([status]) => status).filter(isFinal);
    expect(finals).toEqual(['COMPLETED', 'CANCELLED', 'EXPIRED', 'REJECTED']);
  });
});

describe('checkAccess', () => {
  const confirmedState = spec.given(atConfirmed).state;

  it('lets the booking’s customer and any operator in', () => {
    expect(checkAccess(confirmedState, B, customer)).toBeNull();
    expect(checkAccess(confirmedState, B, operator)).toBeNull();
  });

  it('forbids another customer, even one whose id an operator shares', () => {
    expect(checkAccess(confirmedState, B, otherCustomer)).toEqual({ type: 'BookingForbidden', bookingId: B });
    expect(checkAccess(confirmedState, B, { id: 'op-1', role: 'customer' })).toEqual({ type: 'BookingForbidden', bookingId: B });
  });

  it('answers not found for a booking that does not exist, to everyone', () => {
    expect(checkAccess(initialBookingState, B, customer)).toEqual({ type: 'BookingNotFound', bookingId: B });
    expect(checkAccess(initialBookingState, B, operator)).toEqual({ type: 'BookingNotFound', bookingId: B });
  });
});

describe('checkUnlock', () => {
  it.each(['CONFIRMED', 'ACTIVE'] as const)('allows the customer to unlock a %s booking (ACTIVE is answered from state)', (status) => {
    const given = everyStatus.find(([s]) => s === status)![1];
    expect(checkUnlock(spec.given(given).state, B, customer)).toBeNull();
  });

  it.each(except('NEW', 'CONFIRMED', 'ACTIVE'))('refuses a %s booking', (status, given) => {
    expect(checkUnlock(spec.given(given).state, B, customer)).toEqual({ type: 'InvalidBookingState', bookingId: B, status, expected: ['CONFIRMED'] });
  });

  it('checks access before state', () => {
    expect(checkUnlock(spec.given(atCompleted).state, B, otherCustomer)).toEqual({ type: 'BookingForbidden', bookingId: B });
    expect(checkUnlock(initialBookingState, B, customer)).toEqual({ type: 'BookingNotFound', bookingId: B });
    expect(checkUnlock(spec.given(atConfirmed).state, B, operator)).toBeNull();
  });
});

describe('checkEnd', () => {
  it.each(['ACTIVE', 'COMPLETED'] as const)('allows the customer to end a %s booking (COMPLETED is answered from state)', (status) => {
    const given = everyStatus.find(([s]) => s === status)![1];
    expect(checkEnd(spec.given(given).state, B, customer)).toBeNull();
  });

  it.each(except('NEW', 'ACTIVE', 'COMPLETED'))('refuses a %s booking', (status, given) => {
    expect(checkEnd(spec.given(given).state, B, customer)).toEqual({ type: 'InvalidBookingState', bookingId: B, status, expected: ['ACTIVE'] });
  });

  it('checks access before state', () => {
    expect(checkEnd(spec.given(atConfirmed).state, B, otherCustomer)).toEqual({ type: 'BookingForbidden', bookingId: B });
    expect(checkEnd(initialBookingState, B, operator)).toEqual({ type: 'BookingNotFound', bookingId: B });
    expect(checkEnd(spec.given(atActive).state, B, operator)).toBeNull();
  });
});
