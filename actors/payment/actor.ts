import type { ActorBehaviour, ActorContext } from '../../runtime/kernel/directory.js';
import { accept, reject, type Outcome } from '../contract/rejections.js';
import { declineReasonOf, decide, evolve, initialPaymentState, type PaymentCommand, type PaymentEvent, type PaymentState, type PendingPayment } from './decider.js';
import { fromPaymentRecord, toPaymentRecord, type PaymentRecord } from './record.js';
import { GatewayError, type PaymentGateway } from './gateway.js';

export type PaymentMessage =
  | { readonly type: 'Authorize'; readonly bookingId: string; readonly amount: number; readonly currency: string; readonly paymentMethod: string }
  | { readonly type: 'Capture'; readonly amount: number }
  | { readonly type: 'Void' }
  /** Answered with the state's flat record (record.ts), as replays and traces show it. */
  | { readonly type: 'GetAuthorization' };

export interface AuthorizationView {
  readonly authorizationId: string;
  readonly amount: number;
  readonly currency: string;
}

export interface Captured { readonly amount: number; readonly currency: string }

export interface PaymentActorDeps {
  readonly gateway: PaymentGateway;
  /** How long to wait for the gateway before the attempt counts as declined (`gateway_timeout`). */
  readonly timeoutMs: number;
  readonly now?: () => number;
}

export const PAYMENT = 'payment';
/** One authorization per booking: the id is derived, so a retried booking reaches the same actor. */
export const authorizationIdFor = (bookingId: string): string => `auth_${bookingId}`;

const GATEWAY_TIMED_OUT = Symbol('gateway timed out');

/** Every gateway call is bounded: one that never answers must not block this actor's mailbox for good. */
async function withinTimeout<T>(call: Promise<T>, timeoutMs: number): Promise<T | typeof GATEWAY_TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof GATEWAY_TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(GATEWAY_TIMED_OUT), timeoutMs);
  });
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}

/** The gateway's decision as queued in the journal: the state it makes, and its commit. */
interface Recorded {
  readonly after: PaymentState;
  readonly durable: Promise<unknown>;
}

export function paymentBehaviour(deps: PaymentActorDeps) {
  const now = deps.now ?? Date.now;
  return (authorizationId: string): ActorBehaviour<PaymentState, PaymentMessage, PaymentEvent> => {

    const answer = (state: PaymentState): Outcome<AuthorizationView> =>
      state.status === 'AUTHORIZED' || state.status === 'CAPTURED'
        ? accept({ authorizationId, amount: state.amount, currency: state.currency })
        : reject({ type: 'PaymentDeclined', authorizationId, reason: declineReasonOf(state) });

    /**
     * Asks the gateway for `pending`, then persists `requested` (the request, when not journalled yet)
     * with the gateway's decision in one commit. The request need not be durable before the gateway
     * holds money: the call is idempotent by the authorization id, which is derived from the booking id,
     * so a crash before this commit is found again from the booking alone — its retried create asks
     * again (the gateway answers what it decided), and its compensation voids this id at the gateway
     * even when this journal is empty (`voidAuthorization`). docs/architecture.md, "Crash points of a booking".
     */
    const askGateway = async (ctx: ActorContext<PaymentState, PaymentEvent>, pending: PendingPayment, requested: readonly PaymentEvent[]): Promise<Recorded> => {
      const { amount, currency, paymentMethod } = pending;
      const record = (decision: Extract<PaymentCommand, { type: 'RecordGatewayDecision' }>['decision']): Recorded => {
        const decided = decide({ type: 'RecordGatewayDecision', authorizationId, decision, at: now() }, pending);
        const events = [...requested, ...(decided.ok ? decided.events : [])];
        return { after: events.reduce(evolve, ctx.state), durable: events.length > 0 ? ctx.persist(...events) : Promise.resolve() };
      };
      const authorizing = deps.gateway.authorize({ authorizationId, amount, currency, paymentMethod });
      const result = await withinTimeout(authorizing, deps.timeoutMs);
      if (result === GATEWAY_TIMED_OUT) {
        // The gateway may still authorize after we stopped waiting: then void it, so that no hold stays
        // on the card (voiding before that answer would come too early to cancel it).
        authorizing
          .then((late) => (late.outcome === 'authorized' ? deps.gateway.void(authorizationId) : undefined))
          .catch((error: unknown) => ctx.logger.warn({ err: error }, 'void after a gateway timeout failed'));
        return record({ outcome: 'declined', reason: 'gateway_timeout' });
      }
      return record(result);
    };

    /** Raises the hold to `amount`; 'declined' leaves it as it was (the capture then takes what it holds). */
    const raiseHold = async (ctx: ActorContext<PaymentState, PaymentEvent>, amount: number): Promise<'raised' | 'declined' | 'timed-out' | 'not-needed'> => {
      try {
        const result = await withinTimeout(deps.gateway.incrementAuthorization(authorizationId, amount), deps.timeoutMs);
        return result === GATEWAY_TIMED_OUT ? 'timed-out' : 'raised';
      } catch (error) {
        if (!(error instanceof GatewayError)) throw error;
        ctx.logger.warn({ err: error, amount }, 'the issuer declined raising the hold');
        return 'declined';
      }
    };

    /** The gateway first (idempotent per authorization), then the journal: a failed capture is not recorded. */
    const capture = async (ctx: ActorContext<PaymentState, PaymentEvent>, amount: number): Promise<Outcome<Captured>> => {
      // A ride that outran its hold: ask the issuer to raise it first (an incremental authorization).
      const raised = ctx.state.status === 'AUTHORIZED' && amount > ctx.state.amount ? await raiseHold(ctx, amount) : 'not-needed';
      if (raised === 'timed-out') return reject({ type: 'PaymentDeclined', authorizationId, reason: 'gateway_timeout' });
      const hold = raised === 'raised' ? amount : ctx.state.status === 'AUTHORIZED' ? ctx.state.amount : undefined;
      const decision = decide({ type: 'RecordCapture', authorizationId, amount, ...(hold !== undefined && { hold }), at: now() }, ctx.state);
      if (!decision.ok) return reject(decision.rejection);
      const captured = decision.events[0];
      if (captured?.type === 'PaymentCaptured') {
        let result;
        try {
          result = await withinTimeout(deps.gateway.capture(authorizationId, captured.amount), deps.timeoutMs);
        } catch (error) {
          // The processor refused or failed: nothing captured, the caller (the booking's timer) retries.
          if (!(error instanceof GatewayError)) throw error;
          ctx.logger.warn({ err: error }, 'capture failed at the gateway');
          return reject({ type: 'PaymentDeclined', authorizationId, reason: 'capture_failed' });
        }
        if (result === GATEWAY_TIMED_OUT) return reject({ type: 'PaymentDeclined', authorizationId, reason: 'gateway_timeout' });
        await ctx.persist(captured);
        if (captured.owed !== undefined) {
          // Operators follow this up (a separate charge or collection): the card would not cover the ride.
          ctx.logger.warn({ authorizationId, captured: captured.amount, owed: captured.owed }, 'ride captured short of what it owes: the issuer declined raising the hold');
        }
      }
      // CAPTURED now, or already before (a retried capture): the decider refuses every other status.
      const state = ctx.state;
      return state.status === 'CAPTURED' ? accept({ amount: state.capturedAmount, currency: state.currency }) : reject({ type: 'PaymentDeclined', authorizationId, reason: declineReasonOf(state) });
    };

    const voidAuthorization = async (ctx: ActorContext<PaymentState, PaymentEvent>): Promise<Outcome<null>> => {
      const decision = decide({ type: 'RecordVoid', authorizationId, at: now() }, ctx.state);
      // NEW: nothing journalled, yet the gateway may hold money under this id (a crash cut short the
      // commit of an authorization: `askGateway`), so it is voided there all the same (idempotent, a
      // no-op for an id the gateway never saw). Nothing to record: the booking that sends a void has
      // ended, and never asks this authorization again.
      if (ctx.state.status === 'NEW') {
        if ((await withinTimeout(deps.gateway.void(authorizationId), deps.timeoutMs)) === GATEWAY_TIMED_OUT) {
          return reject({ type: 'PaymentDeclined', authorizationId, reason: 'gateway_timeout' });
        }
        return accept(null);
      }
      if (decision.ok && decision.events.length > 0) {
        // A gateway that does not answer leaves the authorization open: the booking's timer retries.
        if ((await withinTimeout(deps.gateway.void(authorizationId), deps.timeoutMs)) === GATEWAY_TIMED_OUT) {
          return reject({ type: 'PaymentDeclined', authorizationId, reason: 'gateway_timeout' });
        }
        await ctx.persist(...decision.events);
      }
      return accept(null);
    };

    return {
      initialState: initialPaymentState,
      evolve,
      describe: toPaymentRecord,
      // Snapshots keep the flat record: those written before the state was a union recover as they are.
      toSnapshot: toPaymentRecord,
      fromSnapshot: (data) => fromPaymentRecord(data as PaymentRecord),
      async handle(ctx, message) {
        switch (message.type) {
          case 'GetAuthorization':
            return ctx.reply(toPaymentRecord(ctx.state));
          case 'Authorize': {
            const { bookingId, amount, currency, paymentMethod } = message;
            // The request is journalled with the gateway's decision (`askGateway`): one commit, not two.
            const requested = decide({ type: 'RequestAuthorization', authorizationId, bookingId, amount, currency, paymentMethod, at: now() }, ctx.state);
            const events = requested.ok ? requested.events : [];
            const pending = events.reduce(evolve, ctx.state);
            // PENDING without new events: a journal written before the request and the decision shared a
            // commit, cut short by a crash. Asked again: the gateway is idempotent. Any other status answers from state.
            if (pending.status !== 'PENDING') return ctx.reply(answer(ctx.state));
            // Answered once the decision is queued, not once it is durable: the booking, the only asker
            // of Authorize, persists its confirmation (or rejection) in the same turn, through promises
            // only, so both land in one group commit (one sequential commit per booking fewer), and the
            // booking acknowledges nothing before that commit. If it fails, both fail: the booking
            // stays REQUESTED and the payment NEW, the row "the gateway call, before 3" of
            // docs/architecture.md, "Crash points of a booking" (test/integration/booking-commits.test.ts).
            const { after, durable } = await askGateway(ctx, pending, events);
            ctx.reply(answer(after));
            await durable;
            return;
          }
          case 'Capture':
            return ctx.reply(await capture(ctx, message.amount));
          case 'Void':
            return ctx.reply(await voidAuthorization(ctx));
          default: {
            const unknown: never = message;
            ctx.logger.warn({ message: unknown }, 'unknown payment message dropped');
          }
        }
      },
    };
  };
}
