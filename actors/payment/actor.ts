import type { ActorBehaviour, ActorContext } from '../../runtime/directory.js';
import { accept, reject, type Outcome } from '../shared/rejections.js';
import { decide, evolve, initialPaymentState, type PaymentCommand, type PaymentEvent, type PaymentState } from './decider.js';
import type { GatewayDecision, PaymentGateway } from './gateway.js';

export type PaymentMessage =
  | { readonly type: 'Authorize'; readonly bookingId: string; readonly amount: number; readonly currency: string; readonly paymentMethod: string }
  | { readonly type: 'Capture'; readonly amount: number }
  | { readonly type: 'Void' }
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

export function paymentBehaviour(deps: PaymentActorDeps) {
  const now = deps.now ?? Date.now;
  return (authorizationId: string): ActorBehaviour<PaymentState, PaymentMessage, PaymentEvent> => {
    const run = async (ctx: ActorContext<PaymentState, PaymentEvent>, command: PaymentCommand) => {
      const decision = decide(command, ctx.state);
      if (decision.ok && decision.events.length > 0) await ctx.persist(...decision.events);
      return decision;
    };

    const answer = (state: PaymentState): Outcome<AuthorizationView> =>
      state.status === 'AUTHORIZED' || state.status === 'CAPTURED'
        ? accept({ authorizationId, amount: state.amount, currency: state.currency })
        : reject({ type: 'PaymentDeclined', authorizationId, reason: state.declineReason ?? 'card_declined' });

    const askGateway = async (ctx: ActorContext<PaymentState, PaymentEvent>) => {
      const { amount, currency, paymentMethod } = ctx.state;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<typeof GATEWAY_TIMED_OUT>((resolve) => {
        timer = setTimeout(() => resolve(GATEWAY_TIMED_OUT), deps.timeoutMs);
      });
      const result: GatewayDecision | typeof GATEWAY_TIMED_OUT = await Promise.race([
        deps.gateway.authorize({ authorizationId, amount, currency, paymentMethod: paymentMethod ?? '' }),
        timeout,
      ]).finally(() => clearTimeout(timer));
      if (result === GATEWAY_TIMED_OUT) {
        await run(ctx, { type: 'RecordGatewayDecision', authorizationId, decision: { outcome: 'declined', reason: 'gateway_timeout' }, at: now() });
        // The gateway may still authorize after we stopped waiting: void it so no hold stays on the card.
        deps.gateway.void(authorizationId).catch((error: unknown) => ctx.logger.warn({ err: error }, 'void after gateway timeout failed'));
        return;
      }
      await run(ctx, { type: 'RecordGatewayDecision', authorizationId, decision: result, at: now() });
    };

    return {
      initialState: initialPaymentState,
      evolve,
      async handle(ctx, message) {
        switch (message.type) {
          case 'GetAuthorization':
            return ctx.reply(ctx.state);
          case 'Authorize': {
            const { bookingId, amount, currency, paymentMethod } = message;
            await run(ctx, { type: 'RequestAuthorization', authorizationId, bookingId, amount, currency, paymentMethod, at: now() });
            // PENDING also after a crash between request and answer: ask again, the gateway is idempotent.
            if (ctx.state.status === 'PENDING') await askGateway(ctx);
            return ctx.reply(answer(ctx.state));
          }
          case 'Capture': {
            const decision = decide({ type: 'RecordCapture', authorizationId, amount: message.amount, at: now() }, ctx.state);
            if (!decision.ok) return ctx.reply(reject(decision.rejection));
            const captured = decision.events[0];
            // The gateway first (idempotent per authorization), then the journal: a failed capture is not recorded.
            if (captured?.type === 'PaymentCaptured') {
              await deps.gateway.capture(authorizationId, captured.amount);
              await ctx.persist(captured);
            }
            return ctx.reply(accept({ amount: ctx.state.capturedAmount ?? 0, currency: ctx.state.currency }));
          }
          case 'Void': {
            const decision = decide({ type: 'RecordVoid', authorizationId, at: now() }, ctx.state);
            if (decision.ok && decision.events.length > 0) {
              await deps.gateway.void(authorizationId);
              await ctx.persist(...decision.events);
            }
            return ctx.reply(accept(null));
          }
          default: {
            const unknown: never = message;
            ctx.logger.warn({ message: unknown }, 'unknown payment message dropped');
          }
        }
      },
    };
  };
}
