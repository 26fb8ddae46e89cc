import { emit, refuse, unreachable, type Decision } from '../shared/decision.js';
import type { Rejection } from '../contract/rejections.js';
import type { BookingStatus, Caller, Money, VehicleType } from '../contract/views.js';
import { isFinal } from './lifecycle.js';

/**
 * The booking's rules, pure (DESIGN: REQUESTED → VEHICLE_RESERVED → CONFIRMED → ACTIVE →
 * COMPLETED; REJECTED, CANCELLED, EXPIRED). The saga's workflow (workflow.ts) records what the
 * vehicle and payment actors answered here as commands; the shell (actor.ts) persists the events.
 */

export interface Authorization {
  readonly id: string;
  readonly amount: number;
  readonly currency: string;
}

/** A failed compensation (vehicle release, void) is tried again this much later by the booking's timer. */
export const COMPENSATION_RETRY_MS = 30_000;
/**
 * A returned vehicle's payment capture is tried again this much later by the booking's timer, if the
 * capture right after the return failed (then every 2 s while still due: persistence/booking-timers.ts).
 */
export const CAPTURE_RETRY_MS = 30_000;

// ---- commands ----------------------------------------------------------------------------------

export type BookingCommand =
  | { readonly type: 'RequestBooking'; readonly bookingId: string; readonly customerId: string; readonly vehicleId: string; readonly paymentMethod: string; readonly durationMinutes: number; readonly at: number; readonly confirmBy: number }
  | { readonly type: 'RecordVehicleReserved'; readonly vehicleType: VehicleType; readonly at: number }
  | { readonly type: 'RecordReservationRefused'; readonly rejection: Rejection; readonly maybeReserved: boolean; readonly at: number }
  | { readonly type: 'RecordAuthorized'; readonly authorization: Authorization; readonly at: number; readonly unlockBy: number }
  | { readonly type: 'RecordPaymentDeclined'; readonly rejection: Rejection; readonly at: number }
  | { readonly type: 'RecordUnlocked'; readonly unlockedAt: number; readonly at: number }
  | { readonly type: 'RecordRelocked'; readonly lockedAt: number; readonly at: number }
  | { readonly type: 'RecordReturned'; readonly lockedAt: number; readonly at: number }
  | { readonly type: 'RecordCompleted'; readonly charge: Money; readonly endedAt: number }
  | { readonly type: 'Cancel'; readonly caller: Caller; readonly at: number }
  /** The vehicle did not answer an unlock in time: it may open later (a late UNLOCKED). */
  | { readonly type: 'RecordUnlockUnanswered'; readonly at: number }
  | { readonly type: 'Expire'; readonly at: number }
  | { readonly type: 'RecordCompensated'; readonly at: number };

// ---- events ------------------------------------------------------------------------------------

export type BookingEvent =
  | { readonly type: 'BookingRequested'; readonly bookingId: string; readonly customerId: string; readonly vehicleId: string; readonly paymentMethod: string; readonly durationMinutes: number; readonly at: number; readonly confirmBy: number }
  | { readonly type: 'BookingVehicleReserved'; readonly bookingId: string; readonly vehicleId: string; readonly vehicleType: VehicleType; readonly at: number }
  | { readonly type: 'BookingConfirmed'; readonly bookingId: string; readonly customerId: string; readonly vehicleId: string; readonly vehicleType: VehicleType; readonly durationMinutes: number; readonly authorization: Authorization; readonly at: number; readonly expiresAt: number }
  | { readonly type: 'BookingRejected'; readonly bookingId: string; readonly vehicleId: string; readonly rejection: Rejection; readonly needsCompensation: boolean; readonly at: number }
  | { readonly type: 'BookingActivated'; readonly bookingId: string; readonly vehicleId: string; readonly unlockedAt: number }
  /** The vehicle locked at the end of the trip: recorded before the capture, which may fail and is retried. */
  | { readonly type: 'VehicleReturned'; readonly bookingId: string; readonly vehicleId: string; readonly lockedAt: number; readonly at: number }
  | { readonly type: 'BookingCancelled'; readonly bookingId: string; readonly customerId: string; readonly vehicleId: string; readonly cancelledBy: string; readonly at: number }
  | { readonly type: 'BookingExpired'; readonly bookingId: string; readonly customerId: string; readonly vehicleId: string; readonly previousStatus: BookingStatus; readonly at: number }
  | { readonly type: 'BookingCompleted'; readonly bookingId: string; readonly customerId: string; readonly vehicleId: string; readonly charge: Money; readonly unlockedAt: number; readonly endedAt: number }
  | { readonly type: 'BookingCompensated'; readonly bookingId: string; readonly at: number }
  /** An unlock went unanswered: until the vehicle's answer arrives, the car may be open, and a cancel is refused. */
  | { readonly type: 'BookingUnlockUnanswered'; readonly bookingId: string; readonly vehicleId: string; readonly at: number }
  /** The vehicle reported open after the booking had ended (a late UNLOCKED): the booking must lock it. */
  | { readonly type: 'VehicleOpenedAfterEnd'; readonly bookingId: string; readonly vehicleId: string; readonly unlockedAt: number; readonly at: number }
  /** needsCompensation: the release and void still to do after the lock (they keep the timer due). */
  | { readonly type: 'VehicleRelocked'; readonly bookingId: string; readonly vehicleId: string; readonly lockedAt: number; readonly needsCompensation: boolean; readonly at: number };

// ---- state -------------------------------------------------------------------------------------

/** What the customer asked for; every booking past NEW has it. */
interface BookingRequest {
  readonly bookingId: string;
  readonly customerId: string;
  readonly vehicleId: string;
  readonly paymentMethod: string;
  readonly durationMinutes: number;
  readonly createdAt: number;
  /** Deadline of the current step: confirmation while REQUESTED/VEHICLE_RESERVED, unlock while CONFIRMED (kept after). */
  readonly expiresAt: number;
}

interface VehicleHeld extends BookingRequest {
  readonly vehicleType: VehicleType;
}

interface PaymentHeld extends VehicleHeld {
  readonly authorization: Authorization;
}

interface TripStarted extends PaymentHeld {
  readonly unlockedAt: number;
}

/** What an ended booking may still owe: a vehicle to lock, a vehicle to release and a hold to void. */
interface Settling {
  /** The vehicle (and maybe an authorization) must still be released. */
  readonly needsCompensation: boolean;
  /** The vehicle opened after the booking ended (a late UNLOCKED) and must be locked before anything else. */
  readonly mustLock: boolean;
}

export interface NewBooking {
  readonly status: 'NEW';
}
export interface RequestedBooking extends BookingRequest {
  readonly status: 'REQUESTED';
}
export interface ReservedBooking extends VehicleHeld {
  readonly status: 'VEHICLE_RESERVED';
}
export interface ConfirmedBooking extends PaymentHeld {
  readonly status: 'CONFIRMED';
  /** An unlock went unanswered: the car may be open, so no cancel into "no charge" (issue 19). */
  readonly unlockUnanswered?: true;
}
export interface ActiveBooking extends TripStarted {
  readonly status: 'ACTIVE';
  /** When the vehicle locked at the end of the trip; set while ACTIVE means the capture is still due. */
  readonly endedAt: number | null;
}
export interface CompletedBooking extends TripStarted {
  readonly status: 'COMPLETED';
  readonly endedAt: number;
  readonly charge: Money;
  /** A late UNLOCKED after the end: the vehicle must be locked (nothing to release or void). */
  readonly mustLock: boolean;
}
export interface RejectedBooking extends BookingRequest, Settling {
  readonly status: 'REJECTED';
  /** Known when the vehicle was reserved before the payment refused. */
  readonly vehicleType: VehicleType | null;
  readonly rejection: Rejection;
}
export interface CancelledBooking extends PaymentHeld, Settling {
  readonly status: 'CANCELLED';
}
export interface ExpiredBooking extends BookingRequest, Settling {
  readonly status: 'EXPIRED';
  /** Known when it expired after the vehicle's reservation, and held when it expired CONFIRMED. */
  readonly vehicleType: VehicleType | null;
  readonly authorization: Authorization | null;
}

/** The booking by status: each holds only what exists in it. */
export type BookingState =
  | NewBooking
  | RequestedBooking
  | ReservedBooking
  | ConfirmedBooking
  | ActiveBooking
  | CompletedBooking
  | RejectedBooking
  | CancelledBooking
  | ExpiredBooking;

export type EndedBooking = CompletedBooking | RejectedBooking | CancelledBooking | ExpiredBooking;
/** The ended bookings that held a vehicle (or may have) and must give it back. */
export type CompensableBooking = RejectedBooking | CancelledBooking | ExpiredBooking;

export const initialBookingState: BookingState = { status: 'NEW' };

export { isFinal };

export const hasEnded = (state: BookingState): state is EndedBooking => isFinal(state.status);

/** The ended booking whose vehicle stands open and must be locked first; null when none. */
export const openAfterEnd = (state: BookingState): EndedBooking | null => (hasEnded(state) && state.mustLock ? state : null);

/** The ended booking with a release (and maybe a void) still to do; null when none. */
export const owingCompensation = (state: BookingState): CompensableBooking | null =>
  (state.status === 'REJECTED' || state.status === 'CANCELLED' || state.status === 'EXPIRED') && state.needsCompensation ? state : null;

/** Who may see and act on a booking: its customer, or any operator. */
export function checkAccess(state: BookingState, bookingId: string, caller: Caller): Rejection | null {
  if (state.status === 'NEW') return { type: 'BookingNotFound', bookingId };
  if (caller.role !== 'operator' && caller.id !== state.customerId) return { type: 'BookingForbidden', bookingId };
  return null;
}

export const wrongState = (bookingId: string, status: BookingState['status'], expected: BookingStatus): Rejection => ({ type: 'InvalidBookingState', bookingId, status, expected: [expected] });

/** Unlock is allowed for a CONFIRMED booking (ACTIVE: already open, answered from state). */
export function checkUnlock(state: BookingState, bookingId: string, caller: Caller): Rejection | null {
  const denied = checkAccess(state, bookingId, caller);
  if (denied) return denied;
  if (state.status !== 'CONFIRMED' && state.status !== 'ACTIVE') return wrongState(bookingId, state.status, 'CONFIRMED');
  return null;
}

export function checkEnd(state: BookingState, bookingId: string, caller: Caller): Rejection | null {
  const denied = checkAccess(state, bookingId, caller);
  if (denied) return denied;
  if (state.status !== 'ACTIVE' && state.status !== 'COMPLETED') return wrongState(bookingId, state.status, 'ACTIVE');
  return null;
}

// ---- decide ------------------------------------------------------------------------------------

export function decide(bookingId: string, command: BookingCommand, state: BookingState): Decision<BookingEvent> {
  switch (command.type) {
    case 'RequestBooking':
      return requestBooking(bookingId, command, state);
    case 'RecordVehicleReserved':
      if (state.status !== 'REQUESTED') return emit();
      return emit({ type: 'BookingVehicleReserved', bookingId, vehicleId: state.vehicleId, vehicleType: command.vehicleType, at: command.at });
    case 'RecordReservationRefused':
      if (state.status !== 'REQUESTED') return emit();
      return emit({ type: 'BookingRejected', bookingId, vehicleId: state.vehicleId, rejection: command.rejection, needsCompensation: command.maybeReserved, at: command.at });
    case 'RecordAuthorized': {
      if (state.status !== 'VEHICLE_RESERVED') return emit();
      const { customerId, vehicleId, vehicleType, durationMinutes } = state;
      return emit({ type: 'BookingConfirmed', bookingId, customerId, vehicleId, vehicleType, durationMinutes, authorization: command.authorization, at: command.at, expiresAt: command.unlockBy });
    }
    case 'RecordPaymentDeclined':
      if (state.status !== 'VEHICLE_RESERVED') return emit();
      return emit({ type: 'BookingRejected', bookingId, vehicleId: state.vehicleId, rejection: command.rejection, needsCompensation: true, at: command.at });
    case 'RecordUnlocked':
      return recordUnlocked(bookingId, command, state);
    case 'RecordRelocked': {
      const open = openAfterEnd(state);
      if (!open) return emit();
      return emit({ type: 'VehicleRelocked', bookingId, vehicleId: open.vehicleId, lockedAt: command.lockedAt, needsCompensation: owingCompensation(open) !== null, at: command.at });
    }
    case 'RecordReturned':
      // Once: a retried end or capture charges from the first recorded lock time.
      if (state.status !== 'ACTIVE' || state.endedAt !== null) return emit();
      return emit({ type: 'VehicleReturned', bookingId, vehicleId: state.vehicleId, lockedAt: command.lockedAt, at: command.at });
    case 'RecordCompleted': {
      if (state.status !== 'ACTIVE') return emit();
      const { customerId, vehicleId, unlockedAt } = state;
      return emit({ type: 'BookingCompleted', bookingId, customerId, vehicleId, charge: command.charge, unlockedAt, endedAt: command.endedAt });
    }
    case 'Cancel':
      return cancel(bookingId, command, state);
    case 'RecordUnlockUnanswered':
      if (state.status !== 'CONFIRMED' || state.unlockUnanswered) return emit();
      return emit({ type: 'BookingUnlockUnanswered', bookingId, vehicleId: state.vehicleId, at: command.at });
    case 'Expire':
      return expire(bookingId, command, state);
    case 'RecordCompensated':
      if (!owingCompensation(state)) return emit();
      return emit({ type: 'BookingCompensated', bookingId, at: command.at });
    default:
      return unreachable(command);
  }
}

type CommandOf<Type extends BookingCommand['type']> = Extract<BookingCommand, { type: Type }>;

function requestBooking(bookingId: string, command: CommandOf<'RequestBooking'>, state: BookingState): Decision<BookingEvent> {
  const { customerId, vehicleId, paymentMethod, durationMinutes, at, confirmBy } = command;
  if (state.status === 'NEW') return emit({ type: 'BookingRequested', bookingId, customerId, vehicleId, paymentMethod, durationMinutes, at, confirmBy });
  // The same request again (an Idempotency-Key retry) resumes or answers; anything else collides.
  const same = state.customerId === customerId && state.vehicleId === vehicleId && state.paymentMethod === paymentMethod && state.durationMinutes === durationMinutes;
  return same ? emit() : refuse({ type: 'BookingAlreadyExists', bookingId });
}

function recordUnlocked(bookingId: string, command: CommandOf<'RecordUnlocked'>, state: BookingState): Decision<BookingEvent> {
  // Also after an unlock that timed out for the caller: the car is open, so the trip has started.
  if (state.status === 'CONFIRMED') return emit({ type: 'BookingActivated', bookingId, vehicleId: state.vehicleId, unlockedAt: command.unlockedAt });
  // The opening of a ride this booking completed (told after the LOCK that settled it was answered).
  if (state.status === 'COMPLETED' && command.unlockedAt === state.unlockedAt) return emit();
  // Too late: the booking ended (expired, cancelled) while the UNLOCKED was on its way. The car
  // must not stand open, so the booking locks it.
  if (hasEnded(state) && !state.mustLock) return emit({ type: 'VehicleOpenedAfterEnd', bookingId, vehicleId: state.vehicleId, unlockedAt: command.unlockedAt, at: command.at });
  return emit();
}

function cancel(bookingId: string, command: CommandOf<'Cancel'>, state: BookingState): Decision<BookingEvent> {
  const denied = checkAccess(state, bookingId, command.caller);
  if (denied) return refuse(denied);
  if (state.status === 'CANCELLED') return emit();
  if (state.status !== 'CONFIRMED') return refuse(wrongState(bookingId, state.status, 'CONFIRMED'));
  // The car may stand open (a late UNLOCKED turns the booking into a billed ride): no cancel into "no charge".
  if (state.unlockUnanswered) return refuse({ type: 'UnlockOutcomeUnknown', bookingId, vehicleId: state.vehicleId });
  return emit({ type: 'BookingCancelled', bookingId, customerId: state.customerId, vehicleId: state.vehicleId, cancelledBy: command.caller.id, at: command.at });
}

function expire(bookingId: string, command: CommandOf<'Expire'>, state: BookingState): Decision<BookingEvent> {
  const open = state.status === 'REQUESTED' || state.status === 'VEHICLE_RESERVED' || state.status === 'CONFIRMED';
  if (!open || command.at < state.expiresAt) return emit();
  return emit({ type: 'BookingExpired', bookingId, customerId: state.customerId, vehicleId: state.vehicleId, previousStatus: state.status, at: command.at });
}

// ---- evolve ------------------------------------------------------------------------------------

/**
 * The state after `event`. Each event moves the one status `decide` emits it from; an event that does
 * not fit the state it meets (none does in a journal this decider wrote) changes nothing.
 */
export function evolve(state: BookingState, event: BookingEvent): BookingState {
  switch (event.type) {
    case 'BookingRequested': {
      const { bookingId, customerId, vehicleId, paymentMethod, durationMinutes, at, confirmBy } = event;
      return { status: 'REQUESTED', bookingId, customerId, vehicleId, paymentMethod, durationMinutes, createdAt: at, expiresAt: confirmBy };
    }
    case 'BookingVehicleReserved':
      return state.status === 'REQUESTED' ? { ...state, status: 'VEHICLE_RESERVED', vehicleType: event.vehicleType } : state;
    case 'BookingConfirmed':
      return state.status === 'VEHICLE_RESERVED' ? { ...state, status: 'CONFIRMED', authorization: event.authorization, expiresAt: event.expiresAt } : state;
    case 'BookingRejected':
      if (state.status !== 'REQUESTED' && state.status !== 'VEHICLE_RESERVED') return state;
      return { ...state, status: 'REJECTED', vehicleType: vehicleTypeOf(state), rejection: event.rejection, needsCompensation: event.needsCompensation, mustLock: false };
    case 'BookingActivated': {
      if (state.status !== 'CONFIRMED') return state;
      const { unlockUnanswered: _answered, ...confirmed } = state;
      return { ...confirmed, status: 'ACTIVE', unlockedAt: event.unlockedAt, endedAt: null };
    }
    case 'BookingUnlockUnanswered':
      return state.status === 'CONFIRMED' ? { ...state, unlockUnanswered: true } : state;
    case 'VehicleReturned':
      return state.status === 'ACTIVE' ? { ...state, endedAt: event.lockedAt } : state;
    case 'BookingCancelled': {
      if (state.status !== 'CONFIRMED') return state;
      const { unlockUnanswered: _answered, ...confirmed } = state;
      return { ...confirmed, status: 'CANCELLED', needsCompensation: true, mustLock: false };
    }
    case 'BookingExpired':
      if (state.status !== 'REQUESTED' && state.status !== 'VEHICLE_RESERVED' && state.status !== 'CONFIRMED') return state;
      return { ...state, status: 'EXPIRED', vehicleType: vehicleTypeOf(state), authorization: state.status === 'CONFIRMED' ? state.authorization : null, needsCompensation: true, mustLock: false };
    case 'BookingCompleted':
      return state.status === 'ACTIVE' ? { ...state, status: 'COMPLETED', charge: event.charge, endedAt: event.endedAt, mustLock: false } : state;
    case 'BookingCompensated': {
      const owing = owingCompensation(state);
      return owing ? { ...owing, needsCompensation: false } : state;
    }
    case 'VehicleOpenedAfterEnd':
      return hasEnded(state) ? { ...state, mustLock: true } : state;
    case 'VehicleRelocked':
      return hasEnded(state) ? { ...state, mustLock: false } : state;
    default:
      return unreachable(event);
  }
}

const vehicleTypeOf = (state: RequestedBooking | ReservedBooking | ConfirmedBooking): VehicleType | null => (state.status === 'REQUESTED' ? null : state.vehicleType);

/**
 * The status `event` moves a booking to, derived from the event alone (null: unchanged) so that the
 * read-model projector can keep it in the same transaction; the specs prove it agrees with `evolve`
 * for every event in every state `decide` emits it from.
 */
export function statusAfter(event: BookingEvent): BookingStatus | null {
  switch (event.type) {
    case 'BookingRequested':
      return 'REQUESTED';
    case 'BookingVehicleReserved':
      return 'VEHICLE_RESERVED';
    case 'BookingConfirmed':
      return 'CONFIRMED';
    case 'BookingRejected':
      return 'REJECTED';
    case 'BookingActivated':
      return 'ACTIVE';
    case 'BookingCancelled':
      return 'CANCELLED';
    case 'BookingExpired':
      return 'EXPIRED';
    case 'BookingCompleted':
      return 'COMPLETED';
    case 'VehicleReturned':
    case 'BookingCompensated':
    case 'VehicleOpenedAfterEnd':
    case 'VehicleRelocked':
    case 'BookingUnlockUnanswered':
      return null;
    default:
      return unreachable(event);
  }
}

/**
 * When the booking's timer must next wake it, derived from the event alone so that the read-model
 * projector can keep it in the same transaction (persistence/projections.ts). null: no timer.
 */
export function wakeAtAfter(event: BookingEvent): number | null | undefined {
  switch (event.type) {
    case 'BookingRequested':
      return event.confirmBy;
    case 'BookingConfirmed':
      return event.expiresAt;
    case 'BookingRejected':
      return event.needsCompensation ? event.at + COMPENSATION_RETRY_MS : null;
    case 'BookingCancelled':
    case 'BookingExpired':
      return event.at + COMPENSATION_RETRY_MS;
    case 'VehicleReturned':
      // Due until BookingCompleted clears it: a capture that failed is retried by the timer.
      return event.at + CAPTURE_RETRY_MS;
    case 'VehicleOpenedAfterEnd':
      // A LOCK that fails is retried; once locked, a wake-up finds nothing left to do.
      return event.at + COMPENSATION_RETRY_MS;
    case 'VehicleRelocked':
      // Locked: due again only while a release or void is left (else a wake-up would find nothing to
      // do, write nothing, and stay due for ever).
      return event.needsCompensation ? event.at + COMPENSATION_RETRY_MS : null;
    case 'BookingActivated':
    case 'BookingCompleted':
    case 'BookingCompensated':
      return null;
    case 'BookingVehicleReserved':
    case 'BookingUnlockUnanswered':
      return undefined; // unchanged
    default:
      return unreachable(event);
  }
}
