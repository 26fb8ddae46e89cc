import type { ActorBehaviour, ActorContext } from '../../runtime/kernel/directory.js';
import { persistDecided } from '../shared/persist-decided.js';
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

export function paymentBehaviour(deps: PaymentActorDeps) {
  const now = deps.now ?? Date.now;
  return (authorizationId: string): ActorBehaviour<PaymentState, PaymentMessage, PaymentEvent> => {
    const run = (ctx: ActorContext<PaymentState, PaymentEvent>, command: PaymentCommand) => persistDecided(ctx, decide(command, ctx.state));

    const answer = (state: PaymentState): Outcome<AuthorizationView> =>
      state.status === 'AUTHORIZED' || state.status === 'CAPTURED'
        ? accept({ authorizationId, amount: state.amount, currency: state.currency })
        : reject({ type: 'PaymentDeclined', authorizationId, reason: declineReasonOf(state) });

    const askGateway = async (ctx: ActorContext<PaymentState, PaymentEvent>, { amount, currency, paymentMethod }: PendingPayment) => {
      const authorizing = deps.gateway.authorize({ authorizationId, amount, currency, paymentMethod });
      const result = await withinTimeout(authorizing, deps.timeoutMs);
      if (result === GATEWAY_TIMED_OUT) {
        await run(ctx, { type: 'RecordGatewayDecision', authorizationId, decision: { outcome: 'declined', reason: 'gateway_timeout' }, at: now() });
        // The gateway may still authorize after we stopped waiting: then void it, so that no hold stays
        // on the card (voiding before that answer would come too early to cancel it).
        authorizing
          .then((late) => (late.outcome === 'authorized' ? deps.gateway.void(authorizationId) : undefined))
          .catch((error: unknown) => ctx.logger.warn({ err: error }, 'void after a gateway timeout failed'));
        return;
      }
      await run(ctx, { type: 'RecordGatewayDecision', authorizationId, decision: result, at: now() });
    };

    /** The gateway first (idempotent per authorization), then the journal: a failed capture is not recorded. */
    const capture = async (ctx: ActorContext<PaymentState, PaymentEvent>, amount: number): Promise<Outcome<Captured>> => {
      const decision = decide({ type: 'RecordCapture', authorizationId, amount, at: now() }, ctx.state);
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
      }
      // CAPTURED now, or already before (a retried capture): the decider refuses every other status.
      const state = ctx.state;
      return state.status === 'CAPTURED' ? accept({ amount: state.capturedAmount, currency: state.currency }) : reject({ type: 'PaymentDeclined', authorizationId, reason: declineReasonOf(state) });
    };

    const voidAuthorization = async (ctx: ActorContext<PaymentState, PaymentEvent>): Promise<Outcome<null>> => {
      const decision = decide({ type: 'RecordVoid', authorizationId, at: now() }, ctx.state);
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
            await run(ctx, { type: 'RequestAuthorization', authorizationId, bookingId, amount, currency, paymentMethod, at: now() });
            // PENDING also after a crash between request and answer: ask again, the gateway is idempotent.
            if (ctx.state.status === 'PENDING') await askGateway(ctx, ctx.state);
            return ctx.reply(answer(ctx.state));
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
