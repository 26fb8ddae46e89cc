import { describe, expect, it } from 'vitest';
import { evolve, initialBookingState, type BookingEvent, type BookingState } from '../../actors/booking/decider.js';
import { react, type Answered, type Awaiting, type BookingMessage, type Ending, type Happened, type Plan, type Step, type WorkflowConfig } from '../../actors/booking/workflow.js';
import { accept, reject, type Outcome, type Rejection } from '../../actors/contract/rejections.js';
import type { Caller } from '../../actors/contract/views.js';
import type { PaymentMessage } from '../../actors/payment/actor.js';
import type { VehicleMessage } from '../../actors/vehicle/actor.js';

/**
 * Given / when / then for the booking saga as a pure workflow: given past events, when a message or
 * an ask's answer arrives, then these events are persisted and this one step follows (an ask, a
 * reply, nothing). A chain of asks is followed answer by answer: each `then` returns the stage after
 * it (its events applied, its ask awaited), so a spec reads as the conversation the shell carries out.
 */

const B = 'b-1';
const config: WorkflowConfig = { bookingId: B, reservationWindowMs: 15 * 60_000, confirmWithinMs: 30_000, deviceAskMs: 7_000, unlockSettleMs: 21_000 };

interface Stage {
  readonly state: BookingState;
  when(what: Happened | ((awaiting: Awaiting) => Happened)): { then(events: readonly BookingEvent[], next: Step, warning?: Plan['warning']): Stage };
}

function stage(state: BookingState, awaiting: Awaiting | null): Stage {
  return {
    state,
    when(what) {
      const happened = typeof what === 'function' ? what(awaitingOrFail(awaiting)) : what;
      const before = structuredClone(state);
      const plan = react(config, state, happened);
      expect(state, 'the workflow must not mutate the state it is given').toEqual(before);
      return {
        then(events, next, warning) {
          expect(plan).toEqual(warning ? { events, warning, next } : { events, next });
          return stage(events.reduce(evolve, state), next.type === 'Ask' ? next.awaiting : null);
        },
      };
    },
  };
}

function awaitingOrFail(awaiting: Awaiting | null): Awaiting {
  if (!awaiting) throw new Error('an answer, but the stage before asked nothing');
  return awaiting;
}

const given = (events: readonly BookingEvent[]): Stage => stage(events.reduce(evolve, initialBookingState), null);

// ---- what happens -------------------------------------------------------------------------------

const T0 = Date.UTC(2025, 0, 2, 8, 0, 0);
const CONFIRM_BY = T0 + 30_000;
const UNLOCK_BY = T0 + 300 + config.reservationWindowMs;

const received = (message: BookingMessage, at = T0): Happened => ({ type: 'Received', message, at });
/** The answer to whatever the stage before asked. */
const answer =
  (outcome: Outcome<unknown>, at = T0): ((awaiting: Awaiting) => Happened) =>
  (awaiting) =>
    ({ ...awaiting, type: 'Answered', outcome, at }) as Answered;

const customer: Caller = { id: 'c-1', role: 'customer' };
const otherCustomer: Caller = { id: 'c-2', role: 'customer' };
const operator: Caller = { id: 'op-1', role: 'operator' };
const create = (overrides: Partial<Extract<BookingMessage, { type: 'CreateBooking' }>> = {}): BookingMessage => ({ type: 'CreateBooking', customerId: 'c-1', vehicleId: 'v-1', paymentMethod: 'tok_visa', durationMinutes: 30, ...overrides });

// ---- rejections ---------------------------------------------------------------------------------

const vehicleNoAnswer: Rejection = { type: 'ActorUnavailable', actor: 'vehicle/v-1', timeoutMs: 5_000 };
const paymentNoAnswer: Rejection = { type: 'ActorUnavailable', actor: `payment/auth_${B}`, timeoutMs: 5_000 };
const unavailable: Rejection = { type: 'VehicleUnavailable', vehicleId: 'v-1', status: 'RESERVED' };
const inUse: Rejection = { type: 'VehicleUnavailable', vehicleId: 'v-1', status: 'IN_USE' };
const declined: Rejection = { type: 'PaymentDeclined', authorizationId: `auth_${B}`, reason: 'card_declined' };
const deviceTimeout: Rejection = { type: 'LockTimedOut', vehicleId: 'v-1', commandId: 'cmd-1', timeoutMs: 5_000 };
const unlockTimeout: Rejection = { type: 'UnlockTimedOut', vehicleId: 'v-1', commandId: 'cmd-1', timeoutMs: 5_000 };
const gatewayDown: Rejection = { type: 'PaymentDeclined', authorizationId: `auth_${B}`, reason: 'capture_failed' };

// ---- events -------------------------------------------------------------------------------------

const authorization = { id: `auth_${B}`, amount: 1270, currency: 'EUR' };
const requested: BookingEvent = { type: 'BookingRequested', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', paymentMethod: 'tok_visa', durationMinutes: 30, at: T0, confirmBy: CONFIRM_BY };
const vehicleReserved: BookingEvent = { type: 'BookingVehicleReserved', bookingId: B, vehicleId: 'v-1', vehicleType: 'car', at: T0 + 100 };
const confirmed: BookingEvent = { type: 'BookingConfirmed', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', vehicleType: 'car', durationMinutes: 30, authorization, at: T0 + 300, expiresAt: UNLOCK_BY };
const rejected = (rejection: Rejection, needsCompensation: boolean, at = T0 + 100): BookingEvent => ({ type: 'BookingRejected', bookingId: B, vehicleId: 'v-1', rejection, needsCompensation, at });
const UNLOCKED_AT = T0 + 60_000;
const activated: BookingEvent = { type: 'BookingActivated', bookingId: B, vehicleId: 'v-1', unlockedAt: UNLOCKED_AT };
const LOCKED_AT = UNLOCKED_AT + 20 * 60_000;
const returned = (lockedAt = LOCKED_AT, at = LOCKED_AT + 50): BookingEvent => ({ type: 'VehicleReturned', bookingId: B, vehicleId: 'v-1', lockedAt, at });
const charge = { amount: 880, currency: 'EUR' }; // 1 € + 20 started minutes at 0.39 €
const completed = (endedAt = LOCKED_AT): BookingEvent => ({ type: 'BookingCompleted', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', charge, unlockedAt: UNLOCKED_AT, endedAt });
const cancelled = (by: Caller = customer, at = T0 + 120_000): BookingEvent => ({ type: 'BookingCancelled', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', cancelledBy: by.id, at });
const expired = (previousStatus: 'REQUESTED' | 'VEHICLE_RESERVED' | 'CONFIRMED', at: number): BookingEvent => ({ type: 'BookingExpired', bookingId: B, customerId: 'c-1', vehicleId: 'v-1', previousStatus, at });
const compensated = (at: number): BookingEvent => ({ type: 'BookingCompensated', bookingId: B, at });
const openedAfterEnd = (unlockedAt: number, at = unlockedAt): BookingEvent => ({ type: 'VehicleOpenedAfterEnd', bookingId: B, vehicleId: 'v-1', unlockedAt, at });
const relocked = (lockedAt: number, needsCompensation: boolean, at = lockedAt): BookingEvent => ({ type: 'VehicleRelocked', bookingId: B, vehicleId: 'v-1', lockedAt, needsCompensation, at });

const atRequested = [requested];
const atReserved = [requested, vehicleReserved];
const atConfirmed = [...atReserved, confirmed];
const atActive = [...atConfirmed, activated];
const atReturned = [...atActive, returned()];
const atCompleted = [...atReturned, completed()];
const atCancelled = [...atConfirmed, cancelled()];

// ---- steps --------------------------------------------------------------------------------------

const vehicle = { kind: 'vehicle', id: 'v-1' };
const payment = { kind: 'payment', id: `auth_${B}` };
const askVehicle = (message: VehicleMessage, awaiting: Awaiting, timeoutMs?: number): Step =>
  timeoutMs === undefined ? { type: 'Ask', to: vehicle, message, awaiting } : { type: 'Ask', to: vehicle, message, timeoutMs, awaiting };
const askPayment = (message: PaymentMessage, awaiting: Awaiting): Step => ({ type: 'Ask', to: payment, message, awaiting });
const replyWith = (value: Outcome<unknown>): Step => ({ type: 'Reply', value });
const done: Step = { type: 'Done' };

const reserve = askVehicle({ type: 'ReserveVehicle', bookingId: B }, { step: 'Reserve' });
const authorize = askPayment({ type: 'Authorize', bookingId: B, amount: 1270, currency: 'EUR', paymentMethod: 'tok_visa' }, { step: 'Authorize', amount: 1270, currency: 'EUR' });
/** The authorization asked before BookingVehicleReserved is durable: it is carried, and persisted with the answer's events. */
const authorizeCarrying = (reservedAt = T0 + 100): Step =>
  askPayment({ type: 'Authorize', bookingId: B, amount: 1270, currency: 'EUR', paymentMethod: 'tok_visa' }, { step: 'Authorize', amount: 1270, currency: 'EUR', unpersisted: [{ ...vehicleReserved, at: reservedAt }] });
const unlockVehicle = askVehicle({ type: 'UnlockVehicle', bookingId: B }, { step: 'Unlock' }, config.deviceAskMs);
/** A customer's end asks the vehicle to check the operating area; an operator's does not (docs/gbfs.md). */
const lockForReturn = askVehicle({ type: 'LockVehicle', bookingId: B, endOfTrip: true }, { step: 'Return' }, config.deviceAskMs);
const lockForOperatorsReturn = askVehicle({ type: 'LockVehicle', bookingId: B, endOfTrip: false }, { step: 'Return' }, config.deviceAskMs);
const capture = (then: 'AnswerCaller' | 'Silent', endedAt = LOCKED_AT) => askPayment({ type: 'Capture', amount: charge.amount }, { step: 'Capture', endedAt, then });
const relock = (then: 'AnswerCreate' | 'AnswerCaller' | 'Silent') => askVehicle({ type: 'LockVehicle', bookingId: B }, { step: 'Relock', then }, config.deviceAskMs);
const release = (reason: string, then: 'AnswerCreate' | 'AnswerCaller' | 'Silent') => askVehicle({ type: 'ReleaseVehicle', bookingId: B, reason }, { step: 'Release', then });
const voidHold = (released: Outcome<null>, then: 'AnswerCreate' | 'AnswerCaller' | 'Silent') => askPayment({ type: 'Void' }, { step: 'Void', released, then });
/** A confirmed booking ends only once its vehicle is handed back (workflow.ts `releaseFirst`). */
const releaseFirst = (ending: Ending, then: 'AnswerCaller' | 'Silent', force = false) =>
  askVehicle({ type: 'ReleaseVehicle', bookingId: B, reason: ending.type === 'Expire' ? 'expired' : 'cancelled', ...(force && { force }) }, { step: 'ReleaseFirst', ending, then });
const secureLock = askVehicle({ type: 'LockVehicle', bookingId: B }, { step: 'Secure' }, config.deviceAskMs);
const unlockOutcomeUnknown: Rejection = { type: 'UnlockOutcomeUnknown', bookingId: B, vehicleId: 'v-1' };
const unlockUnanswered = (at: number): BookingEvent => ({ type: 'BookingUnlockUnanswered', bookingId: B, vehicleId: 'v-1', at });
const compensationIncomplete = (released: Outcome<null>, voided: Outcome<null>) => ({ fields: { released, voided }, message: 'compensation incomplete; the booking timer retries it' });

// ---- specifications -----------------------------------------------------------------------------

describe('CreateBooking: the saga', () => {
  it('requests, reserves, authorizes and answers the CONFIRMED booking in two commits of its own', () => {
    const reserving = given([]).when(received(create())).then([requested], reserve);
    // Nothing persisted before the authorization: the vehicle's answer rides in the ask, still REQUESTED.
    const authorizing = reserving.when(answer(accept({ vehicleType: 'car' }), T0 + 100)).then([], authorizeCarrying());
    expect(authorizing.state.status).toBe('REQUESTED');
    const done_ = authorizing.when(answer(accept({ authorizationId: `auth_${B}`, amount: 1270, currency: 'EUR' }), T0 + 300));
    const state = [...atConfirmed].reduce(evolve, initialBookingState);
    done_.then([vehicleReserved, confirmed], replyWith(accept(state)));
  });

  it('a declined payment persists the reservation with the rejection, and compensates', () => {
    const authorizing = given(atRequested).when(answerTo({ step: 'Reserve' }, accept({ vehicleType: 'car' }), T0 + 100)).then([], authorizeCarrying());
    const releasing = authorizing.when(answer(reject(declined), T0 + 300)).then([vehicleReserved, rejected(declined, true, T0 + 300)], release('rejected', 'AnswerCreate'));
    const voiding = releasing.when(answer(accept(null), T0 + 400)).then([], voidHold(accept(null), 'AnswerCreate'));
    voiding.when(answer(accept(null), T0 + 500)).then([compensated(T0 + 500)], replyWith(reject(declined)));
  });

  it('a payment that does not answer: the reservation and the abort in one commit, then compensation', () => {
    const aborted: Rejection = { type: 'BookingAborted', bookingId: B, step: 'authorize', actor: `payment/auth_${B}` };
    given(atRequested)
      .when(answerTo({ step: 'Reserve' }, accept({ vehicleType: 'car' }), T0 + 100))
      .then([], authorizeCarrying())
      .when(answer(reject(paymentNoAnswer), T0 + 5_100))
      .then([vehicleReserved, rejected(aborted, true, T0 + 5_100)], release('rejected', 'AnswerCreate'));
  });

  it('refuses another request under an existing booking id, and persists nothing', () => {
    given(atConfirmed).when(received(create({ customerId: 'c-2' }))).then([], replyWith(reject({ type: 'BookingAlreadyExists', bookingId: B })));
  });

  it('a retried create resumes a saga cut short (a crash) where it stands', () => {
    given(atRequested).when(received(create(), T0 + 5_000)).then([], reserve);
    given(atReserved).when(received(create(), T0 + 5_000)).then([], authorize);
  });

  it('a retried create answers the booking once its saga has stopped', () => {
    const confirmedState = given(atConfirmed).state;
    given(atConfirmed).when(received(create())).then([], replyWith(accept(confirmedState)));
    given([...atReserved, rejected(declined, true)]).when(received(create())).then([], replyWith(reject(declined)));
    const expiredConfirmed = given([...atConfirmed, expired('CONFIRMED', UNLOCK_BY)]);
    expiredConfirmed.when(received(create())).then([], replyWith(accept(expiredConfirmed.state)));
  });

  it('a saga abandoned at its confirmation deadline answers 409, never its EXPIRED booking', () => {
    given([requested, expired('REQUESTED', CONFIRM_BY)])
      .when(received(create()))
      .then([], replyWith(reject({ type: 'InvalidBookingState', bookingId: B, status: 'EXPIRED', expected: ['REQUESTED'] })));
  });

  it('a vehicle that refuses rejects the booking; nothing to compensate', () => {
    given(atRequested).when(answerTo({ step: 'Reserve' }, reject(unavailable), T0 + 100)).then([rejected(unavailable, false)], replyWith(reject(unavailable)));
  });

  it('a vehicle that does not answer aborts the booking, and the vehicle is released to be sure', () => {
    const aborted: Rejection = { type: 'BookingAborted', bookingId: B, step: 'reserve', actor: 'vehicle/v-1' };
    const releasing = given(atRequested).when(answerTo({ step: 'Reserve' }, reject(vehicleNoAnswer), T0 + 5_000)).then([rejected(aborted, true, T0 + 5_000)], release('rejected', 'AnswerCreate'));
    const voiding = releasing.when(answer(accept(null), T0 + 5_100)).then([], voidHold(accept(null), 'AnswerCreate'));
    voiding.when(answer(accept(null), T0 + 5_200)).then([compensated(T0 + 5_200)], replyWith(reject(aborted)));
  });

  it('a full disk on the vehicle aborts the booking without compensation (the vehicle answered: nothing reserved)', () => {
    const aborted: Rejection = { type: 'BookingAborted', bookingId: B, step: 'reserve', actor: 'vehicle/v-1' };
    given(atRequested).when(answerTo({ step: 'Reserve' }, reject({ type: 'StorageFull', actor: 'vehicle/v-1' }), T0 + 100)).then([rejected(aborted, false)], replyWith(reject(aborted)));
  });

  it('a declined payment rejects the booking and gives the vehicle back before answering', () => {
    const releasing = given(atReserved).when(answerTo({ step: 'Authorize', amount: 1270, currency: 'EUR' }, reject(declined), T0 + 300)).then([rejected(declined, true, T0 + 300)], release('rejected', 'AnswerCreate'));
    const voiding = releasing.when(answer(accept(null), T0 + 400)).then([], voidHold(accept(null), 'AnswerCreate'));
    voiding.when(answer(accept(null), T0 + 500)).then([compensated(T0 + 500)], replyWith(reject(declined)));
  });

  it('a payment that does not answer aborts the booking at its authorization', () => {
    const aborted: Rejection = { type: 'BookingAborted', bookingId: B, step: 'authorize', actor: `payment/auth_${B}` };
    given(atReserved).when(answerTo({ step: 'Authorize', amount: 1270, currency: 'EUR' }, reject(paymentNoAnswer), T0 + 300)).then([rejected(aborted, true, T0 + 300)], release('rejected', 'AnswerCreate'));
  });

  it('a compensation that fails still answers the create (the timer retries the compensation)', () => {
    const releasing = given(atReserved).when(answerTo({ step: 'Authorize', amount: 1270, currency: 'EUR' }, reject(declined), T0 + 300)).then([rejected(declined, true, T0 + 300)], release('rejected', 'AnswerCreate'));
    const voiding = releasing.when(answer(reject(vehicleNoAnswer))).then([], voidHold(reject(vehicleNoAnswer), 'AnswerCreate'));
    voiding.when(answer(accept(null))).then([], replyWith(reject(declined)), compensationIncomplete(reject(vehicleNoAnswer), accept(null)));
  });
});

/** The answer to an ask of the given kind, for a stage given by its events alone. */
function answerTo(awaiting: Awaiting, outcome: Outcome<unknown>, at = T0): Happened {
  return { ...awaiting, type: 'Answered', outcome, at } as Answered;
}

/**
 * The crash points of the create (docs/architecture.md, "Crash points of a booking"). Its durable
 * steps: (1) BookingRequested, (2) the vehicle's VehicleReserved, (3) the payment's
 * AuthorizationRequested, (4) its PaymentAuthorized or PaymentDeclined, (5) BookingVehicleReserved
 * with BookingConfirmed (or BookingRejected). A crash after step 1, 2, 3 or 4 leaves the booking's
 * journal at BookingRequested alone: the booking cannot tell them apart, and need not, since both of
 * its ways out are safe after each — a retried create (Idempotency-Key) repeats the asks, which the
 * vehicle and the payment answer from their state; the confirmation deadline expires it, and its
 * compensation releases (a no-op unless the vehicle is held for it) and voids (a no-op unless a hold
 * was requested).
 */
describe('CreateBooking: every crash point recovers', () => {
  const RETRY = T0 + 5_000;
  const authorized = accept({ authorizationId: `auth_${B}`, amount: 1270, currency: 'EUR' });
  const confirmedAt = (at: number): BookingEvent => ({ ...confirmed, at, expiresAt: at + config.reservationWindowMs });

  it('a crash during the authorization loses only what was carried: the journal still says REQUESTED', () => {
    const authorizing = given(atRequested).when(answerTo({ step: 'Reserve' }, accept({ vehicleType: 'car' }), T0 + 100)).then([], authorizeCarrying());
    // The shell persists nothing before the answer: what a recovery reads is the journal of `given`.
    expect(authorizing.state).toEqual(given(atRequested).state);
  });

  it.each([
    ['1: BookingRequested (the vehicle not asked yet)', accept({ vehicleType: 'car' })],
    ['2: VehicleReserved (a reserve by the holder is a no-op the vehicle answers as reserved)', accept({ vehicleType: 'car' })],
  ])('after step %s, a retried create reserves, authorizes and confirms in one commit', (_step, reservedAnswer) => {
    const confirming = given(atRequested)
      .when(received(create(), RETRY))
      .then([], reserve)
      .when(answer(reservedAnswer, RETRY + 100))
      .then([], authorizeCarrying(RETRY + 100))
      .when(answer(authorized, RETRY + 300));
    const events = [{ ...vehicleReserved, at: RETRY + 100 }, confirmedAt(RETRY + 300)];
    confirming.then(events, replyWith(accept([...atRequested, ...events].reduce(evolve, initialBookingState))));
  });

  it.each([
    ['3: AuthorizationRequested (the payment asks its gateway again: idempotent by the authorization id)', authorized],
    ['4: PaymentAuthorized (the payment answers from its state)', authorized],
  ])('after step %s, a retried create confirms with the same authorization', (_step, authorizeAnswer) => {
    const events = [{ ...vehicleReserved, at: RETRY + 100 }, confirmedAt(RETRY + 300)];
    given(atRequested)
      .when(received(create(), RETRY))
      .then([], reserve)
      .when(answer(accept({ vehicleType: 'car' }), RETRY + 100))
      .then([], authorizeCarrying(RETRY + 100))
      .when(answer(authorizeAnswer, RETRY + 300))
      .then(events, replyWith(accept([...atRequested, ...events].reduce(evolve, initialBookingState))));
  });

  it('after step 4 with a decline, a retried create rejects and compensates (the decline answered from state)', () => {
    given(atRequested)
      .when(received(create(), RETRY))
      .then([], reserve)
      .when(answer(accept({ vehicleType: 'car' }), RETRY + 100))
      .then([], authorizeCarrying(RETRY + 100))
      .when(answer(reject(declined), RETRY + 300))
      .then([{ ...vehicleReserved, at: RETRY + 100 }, rejected(declined, true, RETRY + 300)], release('rejected', 'AnswerCreate'));
  });

  it('after any of steps 1 to 4 with no retry, the deadline expires the booking: release, void, compensated', () => {
    // The release is a no-op if the vehicle was never reserved for it, the void if no hold was requested;
    // after step 4 the void cancels the hold the gateway has (the payment actor knows it, PENDING or AUTHORIZED).
    const releasing = given(atRequested).when(received({ type: 'WakeUp' }, CONFIRM_BY)).then([expired('REQUESTED', CONFIRM_BY)], release('expired', 'Silent'));
    const voiding = releasing.when(answer(accept(null), CONFIRM_BY + 100)).then([], voidHold(accept(null), 'Silent'));
    voiding.when(answer(accept(null), CONFIRM_BY + 200)).then([compensated(CONFIRM_BY + 200)], done);
  });

  it('after step 5 (the answer lost), a retried create answers the CONFIRMED booking from its state', () => {
    const confirmedState = given(atConfirmed).state;
    given(atConfirmed).when(received(create(), RETRY)).then([], replyWith(accept(confirmedState)));
  });

  it('a journal written before the merge (BookingVehicleReserved durable on its own) resumes at the authorization', () => {
    given(atReserved).when(received(create(), RETRY)).then([], authorize).when(answer(authorized, RETRY + 300)).then([confirmedAt(RETRY + 300)], replyWith(accept([...atReserved, confirmedAt(RETRY + 300)].reduce(evolve, initialBookingState))));
  });
});

describe('GetBooking', () => {
  it('answers the booking to its customer and to operators; not found or forbidden otherwise', () => {
    const booking = given(atConfirmed);
    booking.when(received({ type: 'GetBooking', caller: customer })).then([], replyWith(accept(booking.state)));
    booking.when(received({ type: 'GetBooking', caller: operator })).then([], replyWith(accept(booking.state)));
    booking.when(received({ type: 'GetBooking', caller: otherCustomer })).then([], replyWith(reject({ type: 'BookingForbidden', bookingId: B })));
    given([]).when(received({ type: 'GetBooking', caller: operator })).then([], replyWith(reject({ type: 'BookingNotFound', bookingId: B })));
  });
});

describe('UnlockBooking', () => {
  const unlock = (caller: Caller = customer) => received({ type: 'UnlockBooking', caller });

  it('asks the vehicle to open, waiting for the device; the opened vehicle activates the booking', () => {
    const opening = given(atConfirmed).when(unlock()).then([], unlockVehicle);
    opening.when(answer(accept({ unlockedAt: UNLOCKED_AT }), UNLOCKED_AT + 100)).then([activated], replyWith(accept({ bookingId: B, vehicleId: 'v-1', unlockedAt: UNLOCKED_AT })));
  });

  it('a vehicle that does not answer in time: the 504 is passed on, and the booking records that the car may be open (no free cancel, issue 19)', () => {
    given(atConfirmed).when(answerTo({ step: 'Unlock' }, reject(unlockTimeout))).then([{ type: 'BookingUnlockUnanswered', bookingId: B, vehicleId: 'v-1', at: T0 }], replyWith(reject(unlockTimeout)));
  });

  it('a vehicle that refuses the unlock answers its refusal and records nothing', () => {
    const refused = { type: 'VehicleRejectedCommand', vehicleId: 'v-1', command: 'UNLOCK', reason: 'battery' } as const;
    given(atConfirmed).when(answerTo({ step: 'Unlock' }, reject(refused))).then([], replyWith(reject(refused)));
  });

  it('an ACTIVE booking is answered from its state (an unlock retried)', () => {
    given(atActive).when(unlock()).then([], replyWith(accept({ bookingId: B, vehicleId: 'v-1', unlockedAt: UNLOCKED_AT })));
  });

  it('refuses other states and other customers before asking anything', () => {
    given(atReserved).when(unlock()).then([], replyWith(reject({ type: 'InvalidBookingState', bookingId: B, status: 'VEHICLE_RESERVED', expected: ['CONFIRMED'] })));
    given(atConfirmed).when(unlock(otherCustomer)).then([], replyWith(reject({ type: 'BookingForbidden', bookingId: B })));
  });
});

describe('EndBooking and the capture', () => {
  const end = (caller: Caller = customer) => received({ type: 'EndBooking', caller }, LOCKED_AT);

  it('locks, records the return, captures from the lock time and answers the COMPLETED booking', () => {
    const locking = given(atActive).when(end()).then([], lockForReturn);
    const capturing = locking.when(answer(accept({ lockedAt: LOCKED_AT }), LOCKED_AT + 50)).then([returned()], capture('AnswerCaller'));
    const completedState = given(atCompleted).state;
    capturing.when(answer(accept(charge), LOCKED_AT + 80)).then([completed()], replyWith(accept(completedState)));
  });

  it('an operator\'s end locks without the operating area\'s check (support ends a stranded rider\'s trip)', () => {
    given(atActive).when(end(operator)).then([], lockForOperatorsReturn);
  });

  it('a vehicle that does not lock answers its refusal; the trip goes on', () => {
    given(atActive).when(answerTo({ step: 'Return' }, reject(deviceTimeout))).then([], replyWith(reject(deviceTimeout)));
  });

  it('a failed capture answers its refusal and leaves the return recorded, for the timer to retry', () => {
    given(atReturned)
      .when(answerTo({ step: 'Capture', endedAt: LOCKED_AT, then: 'AnswerCaller' }, reject(gatewayDown)))
      .then([], replyWith(reject(gatewayDown)), { fields: { rejection: gatewayDown }, message: 'capture failed; the booking timer retries it' });
  });

  it('a retried end after a failed capture captures again from the recorded lock time, without locking', () => {
    given(atReturned).when(end()).then([], capture('AnswerCaller'));
  });

  it('a COMPLETED booking is answered from its state; other states are refused', () => {
    const booking = given(atCompleted);
    booking.when(end()).then([], replyWith(accept(booking.state)));
    given(atConfirmed).when(end()).then([], replyWith(reject({ type: 'InvalidBookingState', bookingId: B, status: 'CONFIRMED', expected: ['ACTIVE'] })));
    given(atActive).when(end(otherCustomer)).then([], replyWith(reject({ type: 'BookingForbidden', bookingId: B })));
  });
});

describe('CancelBooking and the compensation', () => {
  const cancel = (caller: Caller = customer, at = T0 + 120_000) => received({ type: 'CancelBooking', caller }, at);

  it('cancels once the vehicle is handed back, voids the hold, records the compensation, then answers', () => {
    const handingBack = given(atConfirmed).when(cancel()).then([], releaseFirst({ type: 'Cancel', caller: customer }, 'AnswerCaller'));
    const releasing = handingBack.when(answer(accept(null), T0 + 120_000)).then([cancelled()], release('cancelled', 'AnswerCaller'));
    const voiding = releasing.when(answer(accept(null), T0 + 120_100)).then([], voidHold(accept(null), 'AnswerCaller'));
    const settled = given([...atCancelled, compensated(T0 + 120_200)]).state;
    voiding.when(answer(accept(null), T0 + 120_200)).then([compensated(T0 + 120_200)], replyWith(accept(settled)));
  });

  it('refuses while the vehicle says an UNLOCK of the booking is unanswered, and remembers it: the car may be open (issue 19)', () => {
    const handingBack = given(atConfirmed).when(cancel()).then([], releaseFirst({ type: 'Cancel', caller: customer }, 'AnswerCaller'));
    handingBack.when(answer(reject(unlockOutcomeUnknown), T0 + 120_050)).then([unlockUnanswered(T0 + 120_050)], replyWith(reject(unlockOutcomeUnknown)));
  });

  it('learns that the car is open under the booking (a crash lost the UNLOCKED): the ride is on, the cancel refused', () => {
    const handingBack = given(atConfirmed).when(cancel()).then([], releaseFirst({ type: 'Cancel', caller: customer }, 'AnswerCaller'));
    const asking = handingBack.when(answer(reject(inUse), T0 + 120_050)).then([], askVehicle({ type: 'UnlockVehicle', bookingId: B }, { step: 'FoundOpen', then: 'AnswerCaller' }, config.deviceAskMs));
    asking
      .when(answer(accept({ unlockedAt: UNLOCKED_AT }), T0 + 120_100))
      .then([activated], replyWith(reject({ type: 'InvalidBookingState', bookingId: B, status: 'ACTIVE', expected: ['CONFIRMED'] })));
  });

  it('answers a vehicle that does not answer with that, and changes nothing', () => {
    const handingBack = given(atConfirmed).when(cancel()).then([], releaseFirst({ type: 'Cancel', caller: customer }, 'AnswerCaller'));
    handingBack.when(answer(reject(vehicleNoAnswer), T0 + 127_000)).then([], replyWith(reject(vehicleNoAnswer)));
  });

  it('refuses a booking that is not CONFIRMED, and asks nothing', () => {
    given(atActive).when(cancel()).then([], replyWith(reject({ type: 'InvalidBookingState', bookingId: B, status: 'ACTIVE', expected: ['CONFIRMED'] })));
    given(atConfirmed).when(cancel(otherCustomer)).then([], replyWith(reject({ type: 'BookingForbidden', bookingId: B })));
  });

  it('a repeated cancel tries the compensation still due; once compensated it only answers', () => {
    given(atCancelled).when(cancel(operator, T0 + 130_000)).then([], release('cancelled', 'AnswerCaller'));
    const settled = given([...atCancelled, compensated(T0 + 120_200)]);
    settled.when(cancel(operator, T0 + 300_000)).then([], replyWith(accept(settled.state)));
  });

  it('a release or a void that fails is logged, answered, and left due for the timer', () => {
    const cancelledState = given(atCancelled).state;
    const voiding = given(atCancelled).when(answerTo({ step: 'Release', then: 'AnswerCaller' }, reject(unavailable))).then([], voidHold(reject(unavailable), 'AnswerCaller'));
    voiding.when(answer(accept(null))).then([], replyWith(accept(cancelledState)), compensationIncomplete(reject(unavailable), accept(null)));
    given(atCancelled)
      .when(answerTo({ step: 'Void', released: accept(null), then: 'AnswerCaller' }, reject(gatewayDown)))
      .then([], replyWith(accept(cancelledState)), compensationIncomplete(accept(null), reject(gatewayDown)));
  });

  it('a vehicle IN_USE under the booking (its UNLOCKED never reached the booking) is locked first, then released', () => {
    const AT = T0 + 120_100;
    const locking = given(atCancelled).when(answerTo({ step: 'Release', then: 'AnswerCaller' }, reject(inUse), AT)).then([openedAfterEnd(AT)], relock('AnswerCaller'));
    const releasing = locking.when(answer(accept({ lockedAt: AT + 900 }), AT + 1_000)).then([relocked(AT + 900, true, AT + 1_000)], release('cancelled', 'AnswerCaller'));
    const voiding = releasing.when(answer(accept(null), AT + 1_100)).then([], voidHold(accept(null), 'AnswerCaller'));
    const settled = given([...atCancelled, openedAfterEnd(AT), relocked(AT + 900, true, AT + 1_000), compensated(AT + 1_200)]).state;
    voiding.when(answer(accept(null), AT + 1_200)).then([compensated(AT + 1_200)], replyWith(accept(settled)));
  });

  it('IN_USE while a lock is already pending is not learnt twice: the void is asked, the compensation stays due', () => {
    const AT = T0 + 120_100;
    given([...atCancelled, openedAfterEnd(AT)]).when(answerTo({ step: 'Release', then: 'Silent' }, reject(inUse), AT + 50)).then([], voidHold(reject(inUse), 'Silent'));
  });
});

describe('WakeUp: deadlines, compensation and capture retries', () => {
  const wakeUp = (at: number) => received({ type: 'WakeUp' }, at);

  it('expires a booking past its deadline and compensates it, answering nobody', () => {
    const releasing = given(atReserved).when(wakeUp(CONFIRM_BY)).then([expired('VEHICLE_RESERVED', CONFIRM_BY)], release('expired', 'Silent'));
    const voiding = releasing.when(answer(accept(null), CONFIRM_BY + 100)).then([], voidHold(accept(null), 'Silent'));
    voiding.when(answer(accept(null), CONFIRM_BY + 200)).then([compensated(CONFIRM_BY + 200)], done);
    const handingBack = given(atConfirmed).when(wakeUp(UNLOCK_BY)).then([], releaseFirst({ type: 'Expire' }, 'Silent'));
    handingBack.when(answer(accept(null), UNLOCK_BY + 50)).then([expired('CONFIRMED', UNLOCK_BY + 50)], release('expired', 'Silent'));
  });

  describe('a confirmed booking whose UNLOCK went unanswered keeps its hold until a LOCK settles it (issue 19: no free ride)', () => {
    const handingBack = () => given(atConfirmed).when(wakeUp(UNLOCK_BY)).then([], releaseFirst({ type: 'Expire' }, 'Silent'));

    it('locks the car; shut all along: then it expires as usual', () => {
      const securing = handingBack().when(answer(reject(unlockOutcomeUnknown), UNLOCK_BY + 50)).then([unlockUnanswered(UNLOCK_BY + 50)], secureLock);
      const settled = securing.when(answer(accept({ lockedAt: UNLOCK_BY + 900 }), UNLOCK_BY + 1_000)).then([], releaseFirst({ type: 'Expire' }, 'Silent', true));
      settled.when(answer(accept(null), UNLOCK_BY + 1_100)).then([expired('CONFIRMED', UNLOCK_BY + 1_100)], release('expired', 'Silent'));
    });

    it('the car had opened before the LOCK: that was the ride, captured from the hold for the time it stood open', () => {
      const securing = handingBack().when(answer(reject(unlockOutcomeUnknown), UNLOCK_BY + 50)).then([unlockUnanswered(UNLOCK_BY + 50)], secureLock);
      const openedAt = UNLOCK_BY + 400;
      const lockedAt = UNLOCK_BY + 900;
      const rideCharge = 139; // 1 € + 1 started minute at 0.39 €
      securing
        .when(answer(accept({ lockedAt, openedAt }), UNLOCK_BY + 1_000))
        .then(
          [{ type: 'BookingActivated', bookingId: B, vehicleId: 'v-1', unlockedAt: openedAt }, returned(lockedAt, UNLOCK_BY + 1_000)],
          askPayment({ type: 'Capture', amount: rideCharge }, { step: 'Capture', endedAt: lockedAt, then: 'Silent' }),
        );
    });

    it('a LOCK that fails leaves it CONFIRMED for the timer to try again; past the settle window the vehicle is handed back all the same', () => {
      const securing = handingBack().when(answer(reject(unlockOutcomeUnknown), UNLOCK_BY + 50)).then([unlockUnanswered(UNLOCK_BY + 50)], secureLock);
      securing.when(answer(reject(deviceTimeout), UNLOCK_BY + 7_000)).then([], done, { fields: { rejection: deviceTimeout }, message: 'the LOCK that settles an unanswered unlock failed; the booking timer retries' });
      given([...atConfirmed, unlockUnanswered(UNLOCK_BY + 50)]).when(wakeUp(UNLOCK_BY + config.unlockSettleMs)).then([], releaseFirst({ type: 'Expire' }, 'Silent', true));
    });

    it('a vehicle that does not answer the hand-back leaves the booking as it is, for the timer', () => {
      handingBack().when(answer(reject(vehicleNoAnswer), UNLOCK_BY + 50)).then([], done, { fields: { rejection: vehicleNoAnswer }, message: 'expiry waits: the vehicle did not answer the hand-back; the booking timer retries' });
    });
  });

  it('does nothing before the deadline, nor for an ACTIVE trip not yet returned', () => {
    given(atConfirmed).when(wakeUp(UNLOCK_BY - 1)).then([], done);
    given(atActive).when(wakeUp(UNLOCK_BY + 3_600_000)).then([], done);
  });

  it('retries a compensation still due, and does nothing once compensated', () => {
    given(atCancelled).when(wakeUp(T0 + 150_000)).then([], release('cancelled', 'Silent'));
    given([...atCancelled, compensated(T0 + 120_200)]).when(wakeUp(T0 + 150_000)).then([], done);
  });

  it('retries a capture still due; a failure is logged, a success completes the booking', () => {
    const capturing = given(atReturned).when(wakeUp(LOCKED_AT + 30_050)).then([], capture('Silent'));
    capturing.when(answer(accept(charge), LOCKED_AT + 30_100)).then([completed()], done);
    given(atReturned)
      .when(answerTo({ step: 'Capture', endedAt: LOCKED_AT, then: 'Silent' }, reject(gatewayDown)))
      .then([], done, { fields: { rejection: gatewayDown }, message: 'capture failed; the booking timer retries it' });
  });

  it('retries the LOCK of a vehicle that opened after the end; a LOCK that fails again is logged', () => {
    const LATE = UNLOCK_BY + 5_000;
    const open = [...atConfirmed, expired('CONFIRMED', UNLOCK_BY), openedAfterEnd(LATE)];
    const locking = given(open).when(wakeUp(LATE + 30_000)).then([], relock('Silent'));
    locking
      .when(answer(reject(deviceTimeout), LATE + 37_000))
      .then([], done, { fields: { rejection: deviceTimeout }, message: 'vehicle opened after the booking ended and could not be locked; the booking timer retries' });
  });
});

describe('VehicleWasUnlocked: an UNLOCKED that came late', () => {
  const LATE = UNLOCK_BY + 5_000;
  const unlockedLate = (unlockedAt: number, at = unlockedAt) => received({ type: 'VehicleWasUnlocked', unlockedAt }, at);

  it('activates a CONFIRMED booking whose unlock timed out for its caller', () => {
    given(atConfirmed).when(unlockedLate(UNLOCKED_AT)).then([activated], done);
  });

  it('an ended booking records the open vehicle and locks it first, then releases it and voids the hold', () => {
    const atExpired = [...atConfirmed, expired('CONFIRMED', UNLOCK_BY)];
    const locking = given(atExpired).when(unlockedLate(LATE)).then([openedAfterEnd(LATE)], relock('Silent'));
    const releasing = locking.when(answer(accept({ lockedAt: LATE + 900 }), LATE + 1_000)).then([relocked(LATE + 900, true, LATE + 1_000)], release('expired', 'Silent'));
    const voiding = releasing.when(answer(accept(null), LATE + 1_100)).then([], voidHold(accept(null), 'Silent'));
    voiding.when(answer(accept(null), LATE + 1_200)).then([compensated(LATE + 1_200)], done);
  });

  it('a booking compensated before the late UNLOCKED only locks its vehicle', () => {
    const settled = [...atCancelled, compensated(T0 + 120_200)];
    const locking = given(settled).when(unlockedLate(LATE)).then([openedAfterEnd(LATE)], relock('Silent'));
    locking.when(answer(accept({ lockedAt: LATE + 900 }), LATE + 1_000)).then([relocked(LATE + 900, false, LATE + 1_000)], done);
  });

  it('a COMPLETED booking locks its vehicle again: nothing to release after a trip', () => {
    const locking = given(atCompleted).when(unlockedLate(LATE)).then([openedAfterEnd(LATE)], relock('Silent'));
    locking.when(answer(accept({ lockedAt: LATE + 900 }), LATE + 1_000)).then([relocked(LATE + 900, false, LATE + 1_000)], done);
  });

  it('a repeated late UNLOCKED while the lock is pending records nothing and tries the LOCK again', () => {
    given([...atCancelled, openedAfterEnd(LATE)]).when(unlockedLate(LATE, LATE + 10)).then([], relock('Silent'));
  });

  it('changes nothing for a booking already ACTIVE or still being made', () => {
    given(atActive).when(unlockedLate(UNLOCKED_AT)).then([], done);
    given(atReserved).when(unlockedLate(T0 + 200)).then([], done);
  });
});

describe('VehicleWasLocked: a LOCKED that came late', () => {
  const lockedLate = (lockedAt: number, at = lockedAt) => received({ type: 'VehicleWasLocked', lockedAt }, at);

  it('ends an ACTIVE trip whose end gave up waiting (504): return recorded, capture, nobody answered', () => {
    const capturing = given(atActive).when(lockedLate(LOCKED_AT, LOCKED_AT + 50)).then([returned()], capture('Silent'));
    capturing.when(answer(accept(charge), LOCKED_AT + 80)).then([completed()], done);
  });

  it('leaves a return already recorded to the end and the capture retry', () => {
    given(atReturned).when(lockedLate(LOCKED_AT + 5_000)).then([], done);
  });

  it('records the relock of a vehicle that opened after the end (its asker gave up), then compensates', () => {
    const LATE = T0 + 200_000;
    given([...atCancelled, openedAfterEnd(LATE)]).when(lockedLate(LATE + 900, LATE + 1_000)).then([relocked(LATE + 900, true, LATE + 1_000)], release('cancelled', 'Silent'));
    given([...atCompleted, openedAfterEnd(LATE)]).when(lockedLate(LATE + 900, LATE + 1_000)).then([relocked(LATE + 900, false, LATE + 1_000)], done);
  });

  it('changes nothing for a booking not ACTIVE with nothing to lock', () => {
    given(atConfirmed).when(lockedLate(T0 + 1_000)).then([], done);
    given(atCompleted).when(lockedLate(LOCKED_AT + 1_000)).then([], done);
    given(atCancelled).when(lockedLate(T0 + 130_000)).then([], done);
  });
});

describe('an unknown message', () => {
  it('is dropped with a warning', () => {
    const unknown = { type: 'Reboot' } as unknown as BookingMessage;
    given(atConfirmed).when(received(unknown)).then([], done, { fields: { message: unknown }, message: 'unknown booking message dropped' });
  });
});
