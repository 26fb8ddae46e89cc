import { noAnswer } from '../shared/no-answer.js';
import { type ActorBehaviour, type ActorContext } from '../../runtime/kernel/directory.js';
import { persistDecided } from '../shared/persist-decided.js';
import { authorizationIdFor, PAYMENT, type AuthorizationView, type Captured, type PaymentMessage } from '../payment/actor.js';
import { accept, reject, type Outcome, type Rejection } from '../contract/rejections.js';
import { VEHICLE, type Locked, type Reserved, type Unlocked, type VehicleMessage } from '../vehicle/actor.js';
import { type Caller } from '../contract/views.js';
import { checkAccess, checkEnd, checkUnlock, decide, evolve, initialBookingState, isFinal, type BookingCommand, type BookingEvent, type BookingState } from './decider.js';
import { authorizationAmount, tripCharge } from './pricing.js';

export type BookingMessage =
  | { readonly type: 'CreateBooking'; readonly customerId: string; readonly vehicleId: string; readonly paymentMethod: string; readonly durationMinutes: number }
  | { readonly type: 'GetBooking'; readonly caller: Caller }
  | { readonly type: 'UnlockBooking'; readonly caller: Caller }
  | { readonly type: 'EndBooking'; readonly caller: Caller }
  | { readonly type: 'CancelBooking'; readonly caller: Caller }
  /** From the durable timer (persistence/booking-timers.ts): deadlines and compensation retries. */
  | { readonly type: 'WakeUp' }
  /** From the vehicle actor, also for an UNLOCKED that came after the caller's timeout. */
  | { readonly type: 'VehicleWasUnlocked'; readonly unlockedAt: number }
  /** From the vehicle actor, also for a LOCKED that came after the caller's timeout: the ride is over. */
  | { readonly type: 'VehicleWasLocked'; readonly lockedAt: number };

export interface UnlockResult {
  readonly bookingId: string;
  readonly vehicleId: string;
  readonly unlockedAt: number;
}

export interface BookingActorDeps {
  /** How long a confirmed booking waits for its unlock (RESERVATION_WINDOW_MS). */
  readonly reservationWindowMs: number;
  /** How long the saga may take before an unconfirmed booking counts as abandoned. */
  readonly confirmWithinMs: number;
  readonly unlockTimeoutMs: number;
  readonly now?: () => number;
}

export const BOOKING = 'booking';

type Ctx = ActorContext<BookingState, BookingEvent>;

export function bookingBehaviour(deps: BookingActorDeps) {
  const now = deps.now ?? Date.now;
  // The vehicle answers UNLOCK/LOCK within its own timeout; the margin covers the hop and the journal.
  const deviceAskMs = deps.unlockTimeoutMs + 2_000;

  return (bookingId: string): ActorBehaviour<BookingState, BookingMessage, BookingEvent> => {
    const vehicle = (state: BookingState) => ({ kind: VEHICLE, id: state.vehicleId! });
    const payment = { kind: PAYMENT, id: authorizationIdFor(bookingId) };

    const run = (ctx: Ctx, command: BookingCommand) => persistDecided(ctx, decide(bookingId, command, ctx.state));

    /** Asks another actor; a timeout or a crash there becomes a typed rejection, not an exception. */
    const askActor = async <T>(ctx: Ctx, target: { kind: string; id: string }, message: VehicleMessage | PaymentMessage, timeoutMs?: number): Promise<Outcome<T>> => {
      try {
        return await ctx.ask<Outcome<T>>(target, message, timeoutMs);
      } catch (error) {
        const rejection = noAnswer(error);
        if (rejection) return reject(rejection);
        throw error;
      }
    };

    /** A step whose actor did not answer ends the saga for good: the booking says so, not "try again". */
    const finalRejection = (rejection: Rejection, step: 'reserve' | 'authorize'): Rejection =>
      rejection.type === 'ActorUnavailable' || rejection.type === 'StorageFull' ? { type: 'BookingAborted', bookingId, step, actor: rejection.actor } : rejection;

    /** Drives the saga forward from wherever it stands (also after a crash, on a retried create). */
    const driveSaga = async (ctx: Ctx): Promise<Outcome<BookingState>> => {
      if (ctx.state.status === 'REQUESTED') {
        const reserved = await askActor<Reserved>(ctx, vehicle(ctx.state), { type: 'ReserveVehicle', bookingId });
        if (reserved.ok) {
          await run(ctx, { type: 'RecordVehicleReserved', vehicleType: reserved.value.vehicleType, at: now() });
        } else {
          // No answer does not mean no reservation: release to be sure.
          const maybeReserved = reserved.rejection.type === 'ActorUnavailable';
          await run(ctx, { type: 'RecordReservationRefused', rejection: finalRejection(reserved.rejection, 'reserve'), maybeReserved, at: now() });
          if (maybeReserved) await compensate(ctx);
        }
      }
      if (ctx.state.status === 'VEHICLE_RESERVED') {
        const { amount, currency } = authorizationAmount(ctx.state.vehicleType!, ctx.state.durationMinutes);
        const authorized = await askActor<AuthorizationView>(ctx, payment, {
          type: 'Authorize',
          bookingId,
          amount,
          currency,
          paymentMethod: ctx.state.paymentMethod!,
        });
        const at = now();
        if (authorized.ok) {
          const { authorizationId: id } = authorized.value;
          await run(ctx, { type: 'RecordAuthorized', authorization: { id, amount, currency }, at, unlockBy: at + deps.reservationWindowMs });
        } else {
          await run(ctx, { type: 'RecordPaymentDeclined', rejection: finalRejection(authorized.rejection, 'authorize'), at });
          await compensate(ctx);
        }
      }
      if (ctx.state.status === 'REJECTED') return reject(ctx.state.rejection!);
      // A saga abandoned at its confirmation deadline (a crash cut it short, then the timer expired it)
      // never made the booking: a retried create must not answer 201 with an EXPIRED booking, which a
      // client would take for a success (CONTRACT: 201 is a CONFIRMED booking). A 409 is final, so the
      // idempotency store keeps it for the key.
      if (ctx.state.status === 'EXPIRED' && ctx.state.authorization === null) {
        return reject({ type: 'InvalidBookingState', bookingId, status: ctx.state.status, expected: ['REQUESTED'] });
      }
      return accept(ctx.state);
    };

    /** Releases the vehicle and voids the authorization; on failure the booking's timer tries again. */
    const compensate = async (ctx: Ctx): Promise<void> => {
      // A vehicle that opened after the end is locked first: an open car is never handed back.
      if (!(await relock(ctx))) return;
      if (!ctx.state.needsCompensation) return;
      const released = await askActor<null>(ctx, vehicle(ctx.state), { type: 'ReleaseVehicle', bookingId, reason: ctx.state.status.toLowerCase() });
      if (!released.ok && released.rejection.type === 'VehicleUnavailable' && released.rejection.status === 'IN_USE' && !ctx.state.mustLock) {
        // The vehicle is open under this booking and refuses to be handed back: its UNLOCKED reached the
        // vehicle but never the booking (a crash between the two). Learn it now, lock, then compensate.
        await run(ctx, { type: 'RecordUnlocked', unlockedAt: now(), at: now() });
        if (ctx.state.mustLock) return compensate(ctx);
      }
      const voided = await askActor<null>(ctx, payment, { type: 'Void' });
      if (released.ok && voided.ok) await run(ctx, { type: 'RecordCompensated', at: now() });
      else ctx.logger.warn({ released, voided }, 'compensation incomplete; the booking timer retries it');
    };

    /** Locks a vehicle that opened after the booking ended (a late UNLOCKED); false: still open, retried. */
    const relock = async (ctx: Ctx): Promise<boolean> => {
      if (!ctx.state.mustLock) return true;
      const locked = await askActor<Locked>(ctx, vehicle(ctx.state), { type: 'LockVehicle', bookingId }, deviceAskMs);
      if (!locked.ok) {
        ctx.logger.warn({ rejection: locked.rejection }, 'vehicle opened after the booking ended and could not be locked; the booking timer retries');
        return false;
      }
      await run(ctx, { type: 'RecordRelocked', lockedAt: locked.value.lockedAt, at: now() });
      return true;
    };

    const unlock = async (ctx: Ctx, caller: Caller): Promise<Outcome<UnlockResult>> => {
      const denied = checkUnlock(ctx.state, bookingId, caller);
      if (denied) return reject(denied);
      const vehicleId = ctx.state.vehicleId!;
      if (ctx.state.status === 'CONFIRMED') {
        const opened = await askActor<Unlocked>(ctx, vehicle(ctx.state), { type: 'UnlockVehicle', bookingId }, deviceAskMs);
        if (!opened.ok) return opened;
        await run(ctx, { type: 'RecordUnlocked', unlockedAt: opened.value.unlockedAt, at: now() });
      }
      return accept({ bookingId, vehicleId, unlockedAt: ctx.state.unlockedAt! });
    };

    /**
     * Ends the trip: lock, record the return (the lock time) in its own event, then capture. A capture
     * that fails leaves the booking ACTIVE with its return recorded and due, so the booking timer (and
     * a retried end) captures again, charging from the recorded lock time.
     */
    const end = async (ctx: Ctx, caller: Caller): Promise<Outcome<BookingState>> => {
      const denied = checkEnd(ctx.state, bookingId, caller);
      if (denied) return reject(denied);
      if (ctx.state.status === 'COMPLETED') return accept(ctx.state);
      if (ctx.state.endedAt === null) {
        // A customer's end must be allowed where the vehicle stands (the operating area); an operator may end anywhere.
        const endOfTrip = caller.role === 'customer';
        const locked = await askActor<Locked>(ctx, vehicle(ctx.state), { type: 'LockVehicle', bookingId, endOfTrip }, deviceAskMs);
        if (!locked.ok) return locked;
        await run(ctx, { type: 'RecordReturned', lockedAt: locked.value.lockedAt, at: now() });
      }
      return capture(ctx);
    };

    const capture = async (ctx: Ctx): Promise<Outcome<BookingState>> => {
      const { vehicleType, unlockedAt, endedAt, authorization } = ctx.state;
      const charge = tripCharge(vehicleType!, unlockedAt!, endedAt!, authorization!.amount);
      const captured = await askActor<Captured>(ctx, payment, { type: 'Capture', amount: charge.amount });
      if (!captured.ok) {
        ctx.logger.warn({ rejection: captured.rejection }, 'capture failed; the booking timer retries it');
        return captured;
      }
      await run(ctx, { type: 'RecordCompleted', charge: captured.value, endedAt: endedAt! });
      return accept(ctx.state);
    };

    return {
      initialState: initialBookingState,
      evolve,
      async handle(ctx, message) {
        switch (message.type) {
          case 'CreateBooking': {
            const at = now();
            const { customerId, vehicleId, paymentMethod, durationMinutes } = message;
            const requested = await run(ctx, { type: 'RequestBooking', bookingId, customerId, vehicleId, paymentMethod, durationMinutes, at, confirmBy: at + deps.confirmWithinMs });
            if (!requested.ok) return ctx.reply(reject(requested.rejection));
            return ctx.reply(await driveSaga(ctx));
          }
          case 'GetBooking': {
            const denied = checkAccess(ctx.state, bookingId, message.caller);
            return ctx.reply(denied ? reject(denied) : accept(ctx.state));
          }
          case 'UnlockBooking':
            return ctx.reply(await unlock(ctx, message.caller));
          case 'EndBooking':
            return ctx.reply(await end(ctx, message.caller));
          case 'CancelBooking': {
            // The decider checks who may cancel.
            const cancelled = await run(ctx, { type: 'Cancel', caller: message.caller, at: now() });
            if (!cancelled.ok) return ctx.reply(reject(cancelled.rejection));
            await compensate(ctx);
            return ctx.reply(accept(ctx.state));
          }
          case 'VehicleWasUnlocked':
            await run(ctx, { type: 'RecordUnlocked', unlockedAt: message.unlockedAt, at: now() });
            if (ctx.state.mustLock) await compensate(ctx);
            return;
          case 'VehicleWasLocked': {
            // A LOCKED that came after the end's caller gave up (504): the vehicle is free again, so the
            // ride ends here instead of waiting for a repeated end (found by the chaos harness). In the
            // normal flow the end has completed the booking before this message is handled.
            // The LOCK of a booking that ended while its car stood open answered after its asker gave
            // up: the car is locked, which the next relock could no longer learn once the vehicle forgot
            // that command.
            if (isFinal(ctx.state.status) && ctx.state.mustLock) {
              const relocked = await run(ctx, { type: 'RecordRelocked', lockedAt: message.lockedAt, at: now() });
              if (relocked.ok) await compensate(ctx);
              return;
            }
            // A return already recorded (the end's own lock) is left to the end and to the capture retry.
            if (ctx.state.status !== 'ACTIVE' || ctx.state.endedAt !== null) return;
            const returned = await run(ctx, { type: 'RecordReturned', lockedAt: message.lockedAt, at: now() });
            if (returned.ok) await capture(ctx);
            return;
          }
          case 'WakeUp': {
            if (ctx.state.status === 'ACTIVE' && ctx.state.endedAt !== null) {
              await capture(ctx);
              return;
            }
            await run(ctx, { type: 'Expire', at: now() });
            if (isFinal(ctx.state.status)) await compensate(ctx);
            return;
          }
          default: {
            const unknown: never = message;
            ctx.logger.warn({ message: unknown }, 'unknown booking message dropped');
          }
        }
      },
    };
  };
}

