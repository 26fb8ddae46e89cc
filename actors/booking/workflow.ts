import { accept, reject, type Outcome, type Rejection } from '../contract/rejections.js';
import type { Caller } from '../contract/views.js';
import { authorizationIdFor, PAYMENT, type AuthorizationView, type Captured, type PaymentMessage } from '../payment/actor.js';
import { unreachable } from '../shared/decision.js';
import { VEHICLE, type Locked, type Reserved, type Unlocked, type VehicleMessage } from '../vehicle/actor.js';
import type { ActorAddress } from '../../runtime/kernel/directory.js';
import {
  checkAccess,
  checkEnd,
  checkUnlock,
  decide,
  evolve,
  hasEnded,
  openAfterEnd,
  owingCompensation,
  wrongState,
  type ActiveBooking,
  type BookingCommand,
  type ConfirmedBooking,
  type BookingEvent,
  type BookingState,
} from './decider.js';
import { authorizationAmount, tripCharge } from './pricing.js';

/**
 * The booking saga as a pure workflow (Emmett's workflow, Akka's behaviour per state): given the
 * booking's state and what just happened — a message (from HTTP, the vehicle, the durable timer) or
 * the answer to one of its own asks (a reply, or no answer in time) — `react` says what to do next,
 * as data: the events to persist, then one step (ask an actor, reply, or nothing more). The shell
 * (actor.ts) persists the events first and only then takes the step; an ask's answer comes back here
 * with what the booking was waiting for. The booking's timer is no step of its own: it follows the
 * events (decider.ts `wakeAtAfter`, kept by the projector in the same commit).
 */

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

export interface WorkflowConfig {
  readonly bookingId: string;
  /** How long a confirmed booking waits for its unlock (RESERVATION_WINDOW_MS). */
  readonly reservationWindowMs: number;
  /** How long the saga may take before an unconfirmed booking counts as abandoned. */
  readonly confirmWithinMs: number;
  /** The deadline of an ask that waits for the device (UNLOCK, LOCK). */
  readonly deviceAskMs: number;
  /**
   * How long past its deadline a confirmed booking whose UNLOCK went unanswered keeps its hold and its
   * vehicle while it tries to learn whether the car opened (a LOCK settles it); after that it expires
   * and hands the vehicle back all the same, so a dead device holds nothing for ever.
   */
  readonly unlockSettleMs: number;
}

/**
 * Who hears how it ended once a chain of asks (a compensation, a capture) is over: the creator (the
 * saga's answer), the caller (the booking as it stands, or the step's refusal), or nobody (a tell from
 * the vehicle or the timer: a reply there would be recorded in its trace as an answer nobody asked).
 */
export type Then = 'AnswerCreate' | 'AnswerCaller' | 'Silent';

/** How a confirmed booking is to end once its vehicle is handed back: at its deadline, or by a cancel. */
export type Ending = { readonly type: 'Expire' } | { readonly type: 'Cancel'; readonly caller: Caller };

/**
 * What the booking waits for while one of its asks is out, with the events it decided before the ask
 * but has not persisted yet (`unpersisted`, see `deferred`): they are persisted in one commit with
 * the events of the answer, and the answer is reacted to from the state after them.
 */
export type Awaiting = AwaitingStep & { readonly unpersisted?: readonly BookingEvent[] };

type AwaitingStep =
  | { readonly step: 'Reserve' }
  | { readonly step: 'Authorize'; readonly amount: number; readonly currency: string }
  | { readonly step: 'Unlock' }
  /** The end's LOCK. */
  | { readonly step: 'Return' }
  | { readonly step: 'Capture'; readonly endedAt: number; readonly then: Then }
  /** The LOCK of a vehicle that opened after the booking ended. */
  | { readonly step: 'Relock'; readonly then: Then }
  | { readonly step: 'Release'; readonly then: Then }
  | { readonly step: 'Void'; readonly released: Outcome<null>; readonly then: Then }
  /** A confirmed booking ends only once its vehicle is handed back: the vehicle knows if it may be open. */
  | { readonly step: 'ReleaseFirst'; readonly ending: Ending; readonly then: Then }
  /** The vehicle refused the hand-back because it stands open under this booking: when did it open? */
  | { readonly step: 'FoundOpen'; readonly then: Then }
  /** The LOCK that settles an unanswered UNLOCK before the booking expires. */
  | { readonly step: 'Secure' };

/** What each awaited actor answers when it succeeds. */
interface AnswerOf {
  readonly Reserve: Reserved;
  readonly Authorize: AuthorizationView;
  readonly Unlock: Unlocked;
  readonly Return: Locked;
  readonly Capture: Captured;
  readonly Relock: Locked;
  readonly Release: null;
  readonly Void: null;
  readonly ReleaseFirst: null;
  readonly FoundOpen: Unlocked;
  readonly Secure: Locked;
}

/** The answer to an ask (a timeout or a crash there already turned into a rejection), `at` when it came. */
export type Answered = {
  [Step in Awaiting['step']]: Extract<Awaiting, { step: Step }> & { readonly type: 'Answered'; readonly outcome: Outcome<AnswerOf[Step]>; readonly at: number };
}[Awaiting['step']];

export type Happened = { readonly type: 'Received'; readonly message: BookingMessage; readonly at: number } | Answered;

export type Step =
  | { readonly type: 'Ask'; readonly to: ActorAddress; readonly message: VehicleMessage | PaymentMessage; readonly timeoutMs?: number; readonly awaiting: Awaiting }
  | { readonly type: 'Reply'; readonly value: Outcome<unknown> }
  | { readonly type: 'Done' };

export interface Plan {
  /** Persisted first, in one commit: the step below is taken only once they are durable. */
  readonly events: readonly BookingEvent[];
  /** For the log: a step that failed and that the booking's timer retries. */
  readonly warning?: { readonly fields: Record<string, unknown>; readonly message: string };
  readonly next: Step;
}

export function react(config: WorkflowConfig, state: BookingState, happened: Happened): Plan {
  if (happened.type === 'Received') return received(config, state, happened.message, happened.at);
  // Events decided before the ask and deferred to this answer: the answer meets the state after them,
  // and they are persisted first, in the same commit as the answer's own.
  const unpersisted = happened.unpersisted ?? [];
  return after(unpersisted, answered(config, unpersisted.reduce(evolve, state), happened));
}

// ---- messages ----------------------------------------------------------------------------------

function received(config: WorkflowConfig, state: BookingState, message: BookingMessage, at: number): Plan {
  const { bookingId } = config;
  switch (message.type) {
    case 'CreateBooking':
      return create(config, state, message, at);
    case 'GetBooking': {
      const denied = checkAccess(state, bookingId, message.caller);
      return reply(denied ? reject(denied) : accept(state));
    }
    case 'UnlockBooking':
      return unlock(config, state, message.caller);
    case 'EndBooking':
      return end(config, state, message.caller);
    case 'CancelBooking': {
      // The decider checks who may cancel. A repeated cancel tries what compensation is left.
      const cancelled = decide(bookingId, { type: 'Cancel', caller: message.caller, at }, state);
      if (!cancelled.ok) return reply(reject(cancelled.rejection));
      if (state.status === 'CONFIRMED') return releaseFirst(config, state, { type: 'Cancel', caller: message.caller }, 'AnswerCaller', at);
      return after(cancelled.events, compensate(config, cancelled.events.reduce(evolve, state), 'AnswerCaller'));
    }
    case 'VehicleWasUnlocked': {
      const unlocked = record(config, state, { type: 'RecordUnlocked', unlockedAt: message.unlockedAt, at });
      return after(unlocked.events, openAfterEnd(unlocked.state) ? compensate(config, unlocked.state, 'Silent') : done());
    }
    case 'VehicleWasLocked':
      return locked(config, state, message.lockedAt, at);
    case 'WakeUp': {
      if (state.status === 'ACTIVE' && state.endedAt !== null) return capture(config, state, 'Silent');
      if (state.status === 'CONFIRMED') return at >= state.expiresAt ? releaseFirst(config, state, { type: 'Expire' }, 'Silent', at) : done();
      const expired = record(config, state, { type: 'Expire', at });
      return after(expired.events, hasEnded(expired.state) ? compensate(config, expired.state, 'Silent') : done());
    }
    default: {
      const unknown: never = message;
      return { events: [], warning: { fields: { message: unknown }, message: 'unknown booking message dropped' }, next: { type: 'Done' } };
    }
  }
}

function create(config: WorkflowConfig, state: BookingState, message: Extract<BookingMessage, { type: 'CreateBooking' }>, at: number): Plan {
  const { customerId, vehicleId, paymentMethod, durationMinutes } = message;
  const command: BookingCommand = { type: 'RequestBooking', bookingId: config.bookingId, customerId, vehicleId, paymentMethod, durationMinutes, at, confirmBy: at + config.confirmWithinMs };
  const requested = decide(config.bookingId, command, state);
  if (!requested.ok) return reply(reject(requested.rejection));
  return after(requested.events, advance(config, requested.events.reduce(evolve, state)));
}

/** Drives the saga forward from wherever it stands (also after a crash, on a retried create), or answers it. */
function advance(config: WorkflowConfig, state: BookingState): Plan {
  const { bookingId } = config;
  if (state.status === 'REQUESTED') return ask(vehicleOf(state), { type: 'ReserveVehicle', bookingId }, { step: 'Reserve' });
  if (state.status === 'VEHICLE_RESERVED') {
    const { amount, currency } = authorizationAmount(state.vehicleType, state.durationMinutes);
    return ask(paymentOf(config), { type: 'Authorize', bookingId, amount, currency, paymentMethod: state.paymentMethod }, { step: 'Authorize', amount, currency });
  }
  return reply(createAnswer(bookingId, state));
}

/** What a create answers once its saga stopped. */
export function createAnswer(bookingId: string, state: BookingState): Outcome<BookingState> {
  if (state.status === 'REJECTED') return reject(state.rejection);
  // A saga abandoned at its confirmation deadline (a crash cut it short, then the timer expired it)
  // never made the booking: a retried create must not answer 201 with an EXPIRED booking, which a
  // client would take for a success (CONTRACT: 201 is a CONFIRMED booking). A 409 is final, so the
  // idempotency store keeps it for the key.
  if (state.status === 'EXPIRED' && state.authorization === null) return reject(wrongState(bookingId, state.status, 'REQUESTED'));
  return accept(state);
}

function unlock(config: WorkflowConfig, state: BookingState, caller: Caller): Plan {
  const { bookingId } = config;
  const denied = checkUnlock(state, bookingId, caller);
  if (denied) return reply(reject(denied));
  switch (state.status) {
    case 'CONFIRMED':
      return ask(vehicleOf(state), { type: 'UnlockVehicle', bookingId }, { step: 'Unlock' }, config.deviceAskMs);
    case 'ACTIVE':
      return reply(accept(unlockResult(state)));
    default:
      return reply(reject(wrongState(bookingId, state.status, 'CONFIRMED'))); // checkUnlock lets no other status through
  }
}

const unlockResult = (state: ActiveBooking): UnlockResult => ({ bookingId: state.bookingId, vehicleId: state.vehicleId, unlockedAt: state.unlockedAt });

/**
 * Ends the trip: lock, record the return (the lock time) in its own event, then capture. A capture
 * that fails leaves the booking ACTIVE with its return recorded and due, so the booking timer (and
 * a retried end) captures again, charging from the recorded lock time.
 */
function end(config: WorkflowConfig, state: BookingState, caller: Caller): Plan {
  const { bookingId } = config;
  const denied = checkEnd(state, bookingId, caller);
  if (denied) return reply(reject(denied));
  switch (state.status) {
    case 'COMPLETED':
      return reply(accept(state));
    case 'ACTIVE':
      // A customer's end must be allowed where the vehicle stands (the operating area); an operator may end anywhere.
      if (state.endedAt === null) return ask(vehicleOf(state), { type: 'LockVehicle', bookingId, endOfTrip: caller.role === 'customer' }, { step: 'Return' }, config.deviceAskMs);
      return capture(config, state, 'AnswerCaller');
    default:
      return reply(reject(wrongState(bookingId, state.status, 'ACTIVE'))); // checkEnd lets no other status through
  }
}

function locked(config: WorkflowConfig, state: BookingState, lockedAt: number, at: number): Plan {
  // The LOCK of a booking that ended while its car stood open answered after its asker gave up: the
  // car is locked, which the next relock could no longer learn once the vehicle forgot that command.
  if (openAfterEnd(state)) {
    const relocked = record(config, state, { type: 'RecordRelocked', lockedAt, at });
    return after(relocked.events, compensate(config, relocked.state, 'Silent'));
  }
  // A LOCKED that came after the end's caller gave up (504): the vehicle is free again, so the ride
  // ends here instead of waiting for a repeated end (found by the chaos harness). In the normal flow
  // the end has completed the booking before this message is handled. A return already recorded (the
  // end's own lock) is left to the end and to the capture retry.
  if (state.status !== 'ACTIVE' || state.endedAt !== null) return done();
  const returned = record(config, state, { type: 'RecordReturned', lockedAt, at });
  return after(returned.events, capture(config, returned.state, 'Silent'));
}

// ---- answers -----------------------------------------------------------------------------------

function answered(config: WorkflowConfig, state: BookingState, answer: Answered): Plan {
  switch (answer.step) {
    case 'Reserve':
      return reserved(config, state, answer);
    case 'Authorize':
      return authorized(config, state, answer);
    case 'Unlock': {
      if (!answer.outcome.ok) {
        // No answer in time is not "closed": the car may open late. Recorded, so a cancel cannot end it free.
        const { type } = answer.outcome.rejection;
        if (type !== 'UnlockTimedOut' && type !== 'ActorUnavailable') return reply(answer.outcome);
        const unanswered = record(config, state, { type: 'RecordUnlockUnanswered', at: answer.at });
        return after(unanswered.events, reply(answer.outcome));
      }
      const opened = record(config, state, { type: 'RecordUnlocked', unlockedAt: answer.outcome.value.unlockedAt, at: answer.at });
      // ACTIVE now: the ask went out for a CONFIRMED booking, and nothing else ran in between.
      const answerNow = opened.state.status === 'ACTIVE' ? accept(unlockResult(opened.state)) : reject(wrongState(config.bookingId, opened.state.status, 'CONFIRMED'));
      return after(opened.events, reply(answerNow));
    }
    case 'Return': {
      if (!answer.outcome.ok) return reply(answer.outcome);
      const returned = record(config, state, { type: 'RecordReturned', lockedAt: answer.outcome.value.lockedAt, at: answer.at });
      return after(returned.events, capture(config, returned.state, 'AnswerCaller'));
    }
    case 'Capture':
      return captured(config, state, answer);
    case 'Relock':
      return relocked(config, state, answer);
    case 'Release':
      return released(config, state, answer);
    case 'Void':
      return voided(config, state, answer);
    case 'ReleaseFirst':
      return releasedFirst(config, state, answer);
    case 'FoundOpen':
      return foundOpen(config, state, answer);
    case 'Secure':
      return secured(config, state, answer);
    default:
      return unreachable(answer);
  }
}

type AnswerTo<Step extends Awaiting['step']> = Extract<Answered, { step: Step }>;

function reserved(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'Reserve'>): Plan {
  const { outcome, at } = answer;
  if (outcome.ok) {
    // BookingVehicleReserved is not made durable before the authorization: it goes in the commit of
    // the payment's answer (BookingConfirmed or BookingRejected), one sequential commit fewer. Safe
    // because nothing is acknowledged in between, and a crash before that commit leaves the booking
    // REQUESTED, which recovers as it did before this ask (docs/architecture.md, "Crash points of a
    // booking"): a retried create reserves again (a no-op for the holder) and authorizes again (the
    // authorization id is derived from the booking id: the payment answers from its state); the
    // confirmation deadline expires it, and its compensation releases the vehicle and voids the hold.
    const reservedNow = record(config, state, { type: 'RecordVehicleReserved', vehicleType: outcome.value.vehicleType, at });
    return deferred(reservedNow.events, advance(config, reservedNow.state));
  }
  // No answer does not mean no reservation: release to be sure.
  const maybeReserved = outcome.rejection.type === 'ActorUnavailable';
  const rejection = finalRejection(config.bookingId, outcome.rejection, 'reserve');
  const refused = record(config, state, { type: 'RecordReservationRefused', rejection, maybeReserved, at });
  return after(refused.events, maybeReserved ? compensate(config, refused.state, 'AnswerCreate') : advance(config, refused.state));
}

function authorized(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'Authorize'>): Plan {
  const { outcome, at, amount, currency } = answer;
  if (outcome.ok) {
    const authorization = { id: outcome.value.authorizationId, amount, currency };
    const confirmed = record(config, state, { type: 'RecordAuthorized', authorization, at, unlockBy: at + config.reservationWindowMs });
    return after(confirmed.events, advance(config, confirmed.state));
  }
  const declined = record(config, state, { type: 'RecordPaymentDeclined', rejection: finalRejection(config.bookingId, outcome.rejection, 'authorize'), at });
  return after(declined.events, compensate(config, declined.state, 'AnswerCreate'));
}

/** A step whose actor did not answer ends the saga for good: the booking says so, not "try again". */
const finalRejection = (bookingId: string, rejection: Rejection, step: 'reserve' | 'authorize'): Rejection =>
  rejection.type === 'ActorUnavailable' || rejection.type === 'StorageFull' ? { type: 'BookingAborted', bookingId, step, actor: rejection.actor } : rejection;

/** Captures the trip of a returned booking (ACTIVE, its lock time recorded). */
function capture(config: WorkflowConfig, state: BookingState, then: Then): Plan {
  if (state.status !== 'ACTIVE' || state.endedAt === null) return finish(config, state, then); // nothing to capture
  const charge = tripCharge(state.vehicleType, state.unlockedAt, state.endedAt);
  return ask(paymentOf(config), { type: 'Capture', amount: charge.amount }, { step: 'Capture', endedAt: state.endedAt, then });
}

function captured(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'Capture'>): Plan {
  const { outcome, then } = answer;
  if (!outcome.ok) {
    const warning = { fields: { rejection: outcome.rejection }, message: 'capture failed; the booking timer retries it' };
    return { ...replyUnlessSilent(then, outcome), warning };
  }
  const completed = record(config, state, { type: 'RecordCompleted', charge: outcome.value, endedAt: answer.endedAt });
  return after(completed.events, finish(config, completed.state, then));
}

// ---- ending a confirmed booking -----------------------------------------------------------------

/**
 * A confirmed booking ends (expires, or is cancelled) only once its vehicle is handed back: the
 * vehicle is the one that knows whether the car may be open (an UNLOCK it sent went unanswered, or it
 * opened and the booking never heard, a crash between the two). Ending first and releasing after
 * voided the hold of a car that then opened: a free ride (issue 19, found by the chaos run).
 */
function releaseFirst(config: WorkflowConfig, state: ConfirmedBooking, ending: Ending, then: Then, at: number): Plan {
  // Past the settle window the booking stops waiting for a device that does not answer.
  const force = ending.type === 'Expire' && at >= state.expiresAt + config.unlockSettleMs;
  const reason = ending.type === 'Expire' ? 'expired' : 'cancelled';
  return ask(vehicleOf(state), { type: 'ReleaseVehicle', bookingId: config.bookingId, reason, ...(force && { force }) }, { step: 'ReleaseFirst', ending, then });
}

function releasedFirst(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'ReleaseFirst'>): Plan {
  const { outcome, ending, then, at } = answer;
  if (state.status !== 'CONFIRMED') return finish(config, state, then);
  if (outcome.ok) return endConfirmed(config, state, ending, then, at);
  const { rejection } = outcome;
  switch (rejection.type) {
    case 'VehicleUnavailable':
      // Open under this booking, and the booking never heard: the trip has started (ask when).
      if (rejection.status === 'IN_USE') return ask(vehicleOf(state), { type: 'UnlockVehicle', bookingId: config.bookingId }, { step: 'FoundOpen', then }, config.deviceAskMs);
      return endConfirmed(config, state, ending, then, at);
    case 'UnlockOutcomeUnknown': {
      // The car may be open: no cancel into "no charge"; an expiry first locks it, which settles it.
      const unanswered = record(config, state, { type: 'RecordUnlockUnanswered', at });
      const next = ending.type === 'Cancel' ? reply(outcome) : ask(vehicleOf(state), { type: 'LockVehicle', bookingId: config.bookingId }, { step: 'Secure' }, config.deviceAskMs);
      return after(unanswered.events, next);
    }
    case 'ActorUnavailable':
    case 'StorageFull':
    case 'ShardUnavailable': {
      // Nothing known about the vehicle: the booking stays as it is (an expiry is tried again by its timer).
      if (ending.type === 'Cancel') return reply(outcome);
      return retryLater({ rejection }, 'expiry waits: the vehicle did not answer the hand-back; the booking timer retries');
    }
    default:
      // Any other refusal says the vehicle is not held by this booking: nothing left to hand back.
      return endConfirmed(config, state, ending, then, at);
  }
}

function endConfirmed(config: WorkflowConfig, state: ConfirmedBooking, ending: Ending, then: Then, at: number): Plan {
  const ended = ending.type === 'Cancel' ? decide(config.bookingId, { type: 'Cancel', caller: ending.caller, at }, state) : decide(config.bookingId, { type: 'Expire', at }, state);
  if (!ended.ok) return replyUnlessSilent(then, reject(ended.rejection));
  return after(ended.events, compensate(config, ended.events.reduce(evolve, state), then));
}

function foundOpen(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'FoundOpen'>): Plan {
  const { outcome, then, at } = answer;
  if (!outcome.ok) return replyUnlessSilent(then, outcome);
  const opened = record(config, state, { type: 'RecordUnlocked', unlockedAt: outcome.value.unlockedAt, at });
  // A cancel learns that the ride is on: it is ended, not cancelled.
  return after(opened.events, replyUnlessSilent(then, reject(wrongState(config.bookingId, opened.state.status, 'CONFIRMED'))));
}

/** The LOCK that settled an unanswered UNLOCK: if the car had opened meanwhile, that was the ride, billed; else the booking expires. */
function secured(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'Secure'>): Plan {
  const { outcome, at } = answer;
  if (state.status !== 'CONFIRMED') return done();
  if (!outcome.ok) {
    return retryLater({ rejection: outcome.rejection }, 'the LOCK that settles an unanswered unlock failed; the booking timer retries');
  }
  const { lockedAt, openedAt } = outcome.value;
  if (openedAt === undefined) return releaseFirst(config, state, { type: 'Expire' }, 'Silent', Math.max(at, state.expiresAt + config.unlockSettleMs));
  const opened = record(config, state, { type: 'RecordUnlocked', unlockedAt: openedAt, at });
  const returned = record(config, opened.state, { type: 'RecordReturned', lockedAt, at });
  return after([...opened.events, ...returned.events], capture(config, returned.state, 'Silent'));
}

// ---- compensation ------------------------------------------------------------------------------

/** Releases the vehicle and voids the authorization; on failure the booking's timer tries again. */
function compensate(config: WorkflowConfig, state: BookingState, then: Then): Plan {
  // A vehicle that opened after the end is locked first: an open car is never handed back.
  const open = openAfterEnd(state);
  if (open) return ask(vehicleOf(open), { type: 'LockVehicle', bookingId: config.bookingId }, { step: 'Relock', then }, config.deviceAskMs);
  return release(config, state, then);
}

function release(config: WorkflowConfig, state: BookingState, then: Then): Plan {
  const owing = owingCompensation(state);
  if (!owing) return finish(config, state, then);
  return ask(vehicleOf(owing), { type: 'ReleaseVehicle', bookingId: config.bookingId, reason: owing.status.toLowerCase() }, { step: 'Release', then });
}

function relocked(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'Relock'>): Plan {
  const { outcome, then } = answer;
  if (!outcome.ok) {
    const warning = { fields: { rejection: outcome.rejection }, message: 'vehicle opened after the booking ended and could not be locked; the booking timer retries' };
    return { ...finish(config, state, then), warning };
  }
  const relockedNow = record(config, state, { type: 'RecordRelocked', lockedAt: outcome.value.lockedAt, at: answer.at });
  return after(relockedNow.events, release(config, relockedNow.state, then));
}

function released(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'Release'>): Plan {
  const { outcome, then, at } = answer;
  const voidNext = ask(paymentOf(config), { type: 'Void' }, { step: 'Void', released: outcome, then });
  if (outcome.ok || outcome.rejection.type !== 'VehicleUnavailable' || outcome.rejection.status !== 'IN_USE' || openAfterEnd(state)) return voidNext;
  // The vehicle is open under this booking and refuses to be handed back: its UNLOCKED reached the
  // vehicle but never the booking (a crash between the two). Learn it now, lock, then compensate.
  const opened = record(config, state, { type: 'RecordUnlocked', unlockedAt: at, at });
  return after(opened.events, openAfterEnd(opened.state) ? compensate(config, opened.state, then) : voidNext);
}

function voided(config: WorkflowConfig, state: BookingState, answer: AnswerTo<'Void'>): Plan {
  const { outcome, released: releasedOutcome, then, at } = answer;
  if (!releasedOutcome.ok || !outcome.ok) {
    const warning = { fields: { released: releasedOutcome, voided: outcome }, message: 'compensation incomplete; the booking timer retries it' };
    return { ...finish(config, state, then), warning };
  }
  const compensated = record(config, state, { type: 'RecordCompensated', at });
  return after(compensated.events, finish(config, compensated.state, then));
}

/** The end of a chain of asks: who hears how it went. */
function finish(config: WorkflowConfig, state: BookingState, then: Then): Plan {
  switch (then) {
    case 'AnswerCreate':
      return advance(config, state);
    case 'AnswerCaller':
      return reply(accept(state));
    case 'Silent':
      return done();
    default:
      return unreachable(then);
  }
}

// ---- plans -------------------------------------------------------------------------------------

/** A recorded fact through the decider: its events (none when it changes nothing) and the state after them. */
function record(config: WorkflowConfig, state: BookingState, command: BookingCommand): { readonly events: readonly BookingEvent[]; readonly state: BookingState } {
  const decision = decide(config.bookingId, command, state);
  const events = decision.ok ? decision.events : [];
  return { events, state: events.reduce(evolve, state) };
}

const after = (events: readonly BookingEvent[], plan: Plan): Plan => (events.length === 0 ? plan : { ...plan, events: [...events, ...plan.events] });
/**
 * `events` persisted with the answer to the plan's ask instead of before it (carried in its `Awaiting`).
 * Only for an ask that is safe to send again after a crash that loses them; without an ask they are
 * persisted now, as `after` does.
 */
function deferred(events: readonly BookingEvent[], plan: Plan): Plan {
  const { next } = plan;
  if (events.length === 0 || next.type !== 'Ask' || plan.events.length > 0) return after(events, plan);
  const unpersisted = [...events, ...(next.awaiting.unpersisted ?? [])];
  return { ...plan, next: { ...next, awaiting: { ...next.awaiting, unpersisted } } };
}
const reply = (value: Outcome<unknown>): Plan => ({ events: [], next: { type: 'Reply', value } });
const done = (): Plan => ({ events: [], next: { type: 'Done' } });
/** A step's refusal (or result) for whoever asked; a tell (the vehicle, the timer) asked nothing, so nothing. */
const replyUnlessSilent = (then: Then, value: Outcome<unknown>): Plan => (then === 'Silent' ? done() : reply(value));
/** Nothing recorded, nothing more now: the booking's timer wakes it again while it is still due. */
const retryLater = (fields: Record<string, unknown>, message: string): Plan => ({ events: [], warning: { fields, message }, next: { type: 'Done' } });

function ask(to: ActorAddress, message: VehicleMessage | PaymentMessage, awaiting: Awaiting, timeoutMs?: number): Plan {
  return { events: [], next: timeoutMs === undefined ? { type: 'Ask', to, message, awaiting } : { type: 'Ask', to, message, timeoutMs, awaiting } };
}

const vehicleOf = (state: Exclude<BookingState, { status: 'NEW' }>): ActorAddress => ({ kind: VEHICLE, id: state.vehicleId });
const paymentOf = (config: WorkflowConfig): ActorAddress => ({ kind: PAYMENT, id: authorizationIdFor(config.bookingId) });
