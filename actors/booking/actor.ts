import { noAnswer } from '../shared/no-answer.js';
import { type ActorAddress, type ActorBehaviour, type ActorContext } from '../../runtime/kernel/directory.js';
import { reject, type Outcome } from '../contract/rejections.js';
import { evolve, initialBookingState, type BookingEvent, type BookingState } from './decider.js';
import { fromBookingRecord, toBookingRecord } from './record.js';
import { react, type Answered, type Awaiting, type BookingMessage, type Happened, type Plan, type Step, type WorkflowConfig } from './workflow.js';

export type { BookingMessage, UnlockResult } from './workflow.js';

export interface BookingActorDeps {
  /** How long a confirmed booking waits for its unlock (RESERVATION_WINDOW_MS). */
  readonly reservationWindowMs: number;
  /** How long the saga may take before an unconfirmed booking counts as abandoned. */
  readonly confirmWithinMs: number;
  readonly unlockTimeoutMs: number;
  readonly now?: () => number;
}

export const BOOKING = 'booking';

/**
 * A confirmed booking whose UNLOCK went unanswered keeps its hold and vehicle past its deadline for
 * this many device asks, locking the car to learn whether it opened (workflow.ts `releaseFirst`).
 */
const UNLOCK_SETTLE_ASKS = 3;
/** The vehicle answers UNLOCK/LOCK within its own timeout; the margin covers the hop and the journal. */
const deviceAskMsFor = (unlockTimeoutMs: number): number => unlockTimeoutMs + 2_000;
/**
 * How long past its deadline a confirmed booking whose UNLOCK went unanswered may stay confirmed while
 * it learns whether the car opened (WorkflowConfig.unlockSettleMs); the chaos run's expiry check allows it.
 */
export const unlockSettleMsFor = (unlockTimeoutMs: number): number => UNLOCK_SETTLE_ASKS * deviceAskMsFor(unlockTimeoutMs);

type Ctx = ActorContext<BookingState, BookingEvent>;

/**
 * The booking's shell: it carries out what the workflow (workflow.ts) decides, one plan after the
 * other, and does nothing of its own: persist the plan's events, then (only once they are durable)
 * log, ask, or reply; an ask's answer goes back to the workflow with the state after those events.
 */
export function bookingBehaviour(deps: BookingActorDeps) {
  const now = deps.now ?? Date.now;
  const deviceAskMs = deviceAskMsFor(deps.unlockTimeoutMs);

  return (bookingId: string): ActorBehaviour<BookingState, BookingMessage, BookingEvent> => {
    const config: WorkflowConfig = { bookingId, reservationWindowMs: deps.reservationWindowMs, confirmWithinMs: deps.confirmWithinMs, deviceAskMs, unlockSettleMs: unlockSettleMsFor(deps.unlockTimeoutMs) };

    const carryOut = async (ctx: Ctx, happened: Happened): Promise<void> => {
      for (let plan: Plan = react(config, ctx.state, happened); ; ) {
        if (plan.events.length > 0) await ctx.persist(...plan.events);
        if (plan.warning) ctx.logger.warn(plan.warning.fields, plan.warning.message);
        const { next } = plan;
        if (next.type === 'Reply') return ctx.reply(next.value);
        if (next.type === 'Done') return;
        const outcome = await askActor(ctx, next.to, next.message, next.timeoutMs);
        plan = react(config, ctx.state, answer(next.awaiting, outcome, now()));
      }
    };

    return {
      initialState: initialBookingState,
      evolve,
      // Traces and snapshots keep the booking's flat record (record.ts).
      describe: toBookingRecord,
      toSnapshot: toBookingRecord,
      fromSnapshot: fromBookingRecord,
      handle: (ctx, message) => carryOut(ctx, { type: 'Received', message, at: now() }),
    };
  };
}

/** Asks another actor; a timeout or a crash there becomes a typed rejection, not an exception. */
async function askActor(ctx: Ctx, target: ActorAddress, message: Extract<Step, { type: 'Ask' }>['message'], timeoutMs?: number): Promise<Outcome<unknown>> {
  try {
    return await ctx.ask<Outcome<unknown>>(target, message, timeoutMs);
  } catch (error) {
    const rejection = noAnswer(error);
    if (rejection) return reject(rejection);
    throw error;
  }
}

/** The other actor answers what its protocol says for that message (the ask is untyped across the directory). */
const answer = (awaiting: Awaiting, outcome: Outcome<unknown>, at: number): Answered => ({ ...awaiting, type: 'Answered', outcome, at }) as Answered;
