import { emit, refuse, unreachable, type Decision } from '../shared/decision.js';
import type { Rejection } from '../contract/rejections.js';
import type { BookingStatus, Caller, Money, VehicleType } from '../contract/views.js';


/**
 * The booking saga's rules, pure (DESIGN: REQUESTED → VEHICLE_RESERVED → CONFIRMED → ACTIVE →
 * COMPLETED; REJECTED, CANCELLED, EXPIRED). The shell (actor.ts) talks to the vehicle and payment
 * actors and records their answers here as commands.
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

export interface BookingState {
  readonly status: BookingStatus | 'NEW';
  readonly bookingId: string | null;
  readonly customerId: string | null;
  readonly vehicleId: string | null;
  readonly vehicleType: VehicleType | null;
  readonly paymentMethod: string | null;
  readonly durationMinutes: number;
  readonly createdAt: number | null;
  /** Deadline of the current step: confirmation while REQUESTED/VEHICLE_RESERVED, unlock while CONFIRMED. */
  readonly expiresAt: number | null;
  readonly authorization: Authorization | null;
  readonly unlockedAt: number | null;
  /** When the vehicle locked at the end of the trip; set while ACTIVE means the capture is still due. */
  readonly endedAt: number | null;
  readonly charge: Money | null;
  readonly rejection: Rejection | null;
  /** The vehicle (and maybe an authorization) must still be released. */
  readonly needsCompensation: boolean;
  /** The vehicle opened after the booking ended and must be locked before anything else. */
  readonly mustLock: boolean;
  /** An unlock went unanswered and nothing since says the car is open (ACTIVE) or not: no free cancel. */
  readonly unlockUnanswered: boolean;
}

export const initialBookingState: BookingState = {
  status: 'NEW',
  bookingId: null,
  customerId: null,
  vehicleId: null,
  vehicleType: null,
  paymentMethod: null,
  durationMinutes: 0,
  createdAt: null,
  expiresAt: null,
  authorization: null,
  unlockedAt: null,
  endedAt: null,
  charge: null,
  rejection: null,
  needsCompensation: false,
  mustLock: false,
  unlockUnanswered: false,
};

export const isFinal = (status: BookingState['status']): boolean =>
  status === 'COMPLETED' || status === 'CANCELLED' || status === 'EXPIRED' || status === 'REJECTED';

/** Who may see and act on a booking: its customer, or any operator. */
export function checkAccess(state: BookingState, bookingId: string, caller: Caller): Rejection | null {
  if (state.status === 'NEW') return { type: 'BookingNotFound', bookingId };
  if (caller.role !== 'operator' && caller.id !== state.customerId) return { type: 'BookingForbidden', bookingId };
  return null;
}

/** Unlock is allowed for a CONFIRMED booking (ACTIVE: already open, answered from state). */
export function checkUnlock(state: BookingState, bookingId: string, caller: Caller): Rejection | null {
  const denied = checkAccess(state, bookingId, caller);
  if (denied) return denied;
  if (state.status !== 'CONFIRMED' && state.status !== 'ACTIVE') return { type: 'InvalidBookingState', bookingId, status: state.status, expected: ['CONFIRMED'] };
  return null;
}

export function checkEnd(state: BookingState, bookingId: string, caller: Caller): Rejection | null {
  const denied = checkAccess(state, bookingId, caller);
  if (denied) return denied;
  if (state.status !== 'ACTIVE' && state.status !== 'COMPLETED') return { type: 'InvalidBookingState', bookingId, status: state.status, expected: ['ACTIVE'] };
  return null;
}

// ---- decide ------------------------------------------------------------------------------------

export function decide(bookingId: string, command: BookingCommand, state: BookingState): Decision<BookingEvent> {
  const vehicleId = state.vehicleId ?? '';
  switch (command.type) {
    case 'RequestBooking': {
      if (state.status === 'NEW') {
        const { customerId, paymentMethod, durationMinutes, at, confirmBy } = command;
        return emit({ type: 'BookingRequested', bookingId, customerId, vehicleId: command.vehicleId, paymentMethod, durationMinutes, at, confirmBy });
      }
      // The same request again (an Idempotency-Key retry) resumes or answers; anything else collides.
      const same =
        state.customerId === command.customerId &&
        state.vehicleId === command.vehicleId &&
        state.paymentMethod === command.paymentMethod &&
        state.durationMinutes === command.durationMinutes;
      return same ? emit() : refuse({ type: 'BookingAlreadyExists', bookingId });
    }
    case 'RecordVehicleReserved':
      if (state.status !== 'REQUESTED') return emit();
      return emit({ type: 'BookingVehicleReserved', bookingId, vehicleId, vehicleType: command.vehicleType, at: command.at });
    case 'RecordReservationRefused':
      if (state.status !== 'REQUESTED') return emit();
      return emit({ type: 'BookingRejected', bookingId, vehicleId, rejection: command.rejection, needsCompensation: command.maybeReserved, at: command.at });
    case 'RecordAuthorized': {
      if (state.status !== 'VEHICLE_RESERVED') return emit();
      const { authorization, at, unlockBy } = command;
      return emit({
        type: 'BookingConfirmed',
        bookingId,
        customerId: state.customerId!,
        vehicleId,
        vehicleType: state.vehicleType!,
        durationMinutes: state.durationMinutes,
        authorization,
        at,
        expiresAt: unlockBy,
      });
    }
    case 'RecordPaymentDeclined':
      if (state.status !== 'VEHICLE_RESERVED') return emit();
      return emit({ type: 'BookingRejected', bookingId, vehicleId, rejection: command.rejection, needsCompensation: true, at: command.at });
    case 'RecordUnlocked':
      // Also after an unlock that timed out for the caller: the car is open, so the trip has started.
      if (state.status === 'CONFIRMED') return emit({ type: 'BookingActivated', bookingId, vehicleId, unlockedAt: command.unlockedAt });
      // Too late: the booking ended (expired, cancelled) while the UNLOCKED was on its way. The car
      // must not stand open, so the booking locks it.
      if (isFinal(state.status) && !state.mustLock) return emit({ type: 'VehicleOpenedAfterEnd', bookingId, vehicleId, unlockedAt: command.unlockedAt, at: command.at });
      return emit();
    case 'RecordRelocked':
      if (!state.mustLock) return emit();
      return emit({ type: 'VehicleRelocked', bookingId, vehicleId, lockedAt: command.lockedAt, needsCompensation: state.needsCompensation, at: command.at });
    case 'RecordReturned':
      // Once: a retried end or capture charges from the first recorded lock time.
      if (state.status !== 'ACTIVE' || state.endedAt !== null) return emit();
      return emit({ type: 'VehicleReturned', bookingId, vehicleId, lockedAt: command.lockedAt, at: command.at });
    case 'RecordCompleted':
      if (state.status !== 'ACTIVE') return emit();
      return emit({
        type: 'BookingCompleted',
        bookingId,
        customerId: state.customerId!,
        vehicleId,
        charge: command.charge,
        unlockedAt: state.unlockedAt!,
        endedAt: command.endedAt,
      });
    case 'Cancel': {
      const denied = checkAccess(state, bookingId, command.caller);
      if (denied) return refuse(denied);
      if (state.status === 'CANCELLED') return emit();
      if (state.status !== 'CONFIRMED') return refuse({ type: 'InvalidBookingState', bookingId, status: state.status, expected: ['CONFIRMED'] });
      // The car may stand open (a late UNLOCKED turns the booking into a billed ride): no cancel into "no charge".
      if (state.unlockUnanswered) return refuse({ type: 'UnlockOutcomeUnknown', bookingId, vehicleId });
      return emit({ type: 'BookingCancelled', bookingId, customerId: state.customerId!, vehicleId, cancelledBy: command.caller.id, at: command.at });
    }
    case 'Expire': {
      const open = state.status === 'REQUESTED' || state.status === 'VEHICLE_RESERVED' || state.status === 'CONFIRMED';
      if (!open || state.expiresAt === null || command.at < state.expiresAt) return emit();
      return emit({ type: 'BookingExpired', bookingId, customerId: state.customerId!, vehicleId, previousStatus: state.status as BookingStatus, at: command.at });
    }
    case 'RecordUnlockUnanswered':
      if (state.status !== 'CONFIRMED' || state.unlockUnanswered) return emit();
      return emit({ type: 'BookingUnlockUnanswered', bookingId, vehicleId, at: command.at });
    case 'RecordCompensated':
      if (!state.needsCompensation) return emit();
      return emit({ type: 'BookingCompensated', bookingId, at: command.at });
    default:
      return unreachable(command);
  }
}

// ---- evolve ------------------------------------------------------------------------------------

export function evolve(state: BookingState, event: BookingEvent): BookingState {
  switch (event.type) {
    case 'BookingRequested':
      return {
        ...state,
        status: 'REQUESTED',
        bookingId: event.bookingId,
        customerId: event.customerId,
        vehicleId: event.vehicleId,
        paymentMethod: event.paymentMethod,
        durationMinutes: event.durationMinutes,
        createdAt: event.at,
        expiresAt: event.confirmBy,
      };
    case 'BookingVehicleReserved':
      return { ...state, status: 'VEHICLE_RESERVED', vehicleType: event.vehicleType };
    case 'BookingConfirmed':
      return { ...state, status: 'CONFIRMED', authorization: event.authorization, expiresAt: event.expiresAt };
    case 'BookingRejected':
      return { ...state, status: 'REJECTED', rejection: event.rejection, needsCompensation: event.needsCompensation };
    case 'BookingActivated':
      return { ...state, status: 'ACTIVE', unlockedAt: event.unlockedAt };
    case 'VehicleReturned':
      return { ...state, endedAt: event.lockedAt };
    case 'BookingCancelled':
      return { ...state, status: 'CANCELLED', needsCompensation: true };
    case 'BookingExpired':
      return { ...state, status: 'EXPIRED', needsCompensation: true };
    case 'BookingCompleted':
      return { ...state, status: 'COMPLETED', charge: event.charge, endedAt: event.endedAt };
    case 'BookingCompensated':
      return { ...state, needsCompensation: false };
    case 'VehicleOpenedAfterEnd':
      return { ...state, mustLock: true };
    case 'VehicleRelocked':
      return { ...state, mustLock: false };
    case 'BookingUnlockUnanswered':
      return { ...state, unlockUnanswered: true };
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
