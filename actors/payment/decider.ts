import { emit, refuse, unreachable, type Decision } from '../shared/decision.js';

/** Pure rules of one payment authorization: PENDING → AUTHORIZED | DECLINED → CAPTURED | VOIDED. */

export type PaymentStatus = 'NEW' | 'PENDING' | 'AUTHORIZED' | 'DECLINED' | 'CAPTURED' | 'VOIDED';
export type DeclineReason = 'card_declined' | 'gateway_timeout' | 'invalid_payment_method';

export type PaymentCommand =
  | { readonly type: 'RequestAuthorization'; readonly authorizationId: string; readonly bookingId: string; readonly amount: number; readonly currency: string; readonly paymentMethod: string; readonly at: number }
  | { readonly type: 'RecordGatewayDecision'; readonly authorizationId: string; readonly decision: { readonly outcome: 'authorized'; readonly reference: string } | { readonly outcome: 'declined'; readonly reason: DeclineReason }; readonly at: number }
  /** `amount`: what the trip owes; `hold`: what the gateway holds now (the authorization, raised or not). */
  | { readonly type: 'RecordCapture'; readonly authorizationId: string; readonly amount: number; readonly hold?: number; readonly at: number }
  | { readonly type: 'RecordVoid'; readonly authorizationId: string; readonly at: number };

export type PaymentEvent =
  | { readonly type: 'AuthorizationRequested'; readonly authorizationId: string; readonly bookingId: string; readonly amount: number; readonly currency: string; readonly paymentMethod: string; readonly at: number }
  | { readonly type: 'PaymentAuthorized'; readonly authorizationId: string; readonly reference: string; readonly at: number }
  | { readonly type: 'PaymentDeclined'; readonly authorizationId: string; readonly reason: DeclineReason; readonly at: number }
  /** `owed`: set when the ride owed more than could be captured (the issuer declined raising the hold). */
  | { readonly type: 'PaymentCaptured'; readonly authorizationId: string; readonly amount: number; readonly owed?: number; readonly at: number }
  | { readonly type: 'AuthorizationVoided'; readonly authorizationId: string; readonly at: number };

export interface PaymentState {
  readonly status: PaymentStatus;
  readonly bookingId: string | null;
  readonly amount: number;
  readonly currency: string;
  readonly paymentMethod: string | null;
  readonly reference: string | null;
  readonly declineReason: DeclineReason | null;
  readonly capturedAmount: number | null;
}

export const initialPaymentState: PaymentState = {
  status: 'NEW',
  bookingId: null,
  amount: 0,
  currency: 'EUR',
  paymentMethod: null,
  reference: null,
  declineReason: null,
  capturedAmount: null,
};

export function decide(command: PaymentCommand, state: PaymentState): Decision<PaymentEvent> {
  const { authorizationId, at } = command;
  switch (command.type) {
    case 'RequestAuthorization': {
      if (state.status !== 'NEW') return emit(); // a retry: the actor answers from its state
      const { bookingId, amount, currency, paymentMethod } = command;
      return emit({ type: 'AuthorizationRequested', authorizationId, bookingId, amount, currency, paymentMethod, at });
    }
    case 'RecordGatewayDecision':
      if (state.status !== 'PENDING') return emit(); // a late answer after a timeout already decided
      return emit(
        command.decision.outcome === 'authorized'
          ? { type: 'PaymentAuthorized', authorizationId, reference: command.decision.reference, at }
          : { type: 'PaymentDeclined', authorizationId, reason: command.decision.reason, at },
      );
    case 'RecordCapture':
      if (state.status === 'CAPTURED') return emit();
      if (state.status !== 'AUTHORIZED') return refuse({ type: 'PaymentDeclined', authorizationId, reason: state.declineReason ?? 'card_declined' });
    {
      // The authorization is a hold, not a cap: what the trip owes is captured, up to the hold the
      // gateway has now (raised for a ride that outran its booking); a shortfall is recorded as such.
      const hold = Math.max(state.amount, command.hold ?? state.amount);
      if (command.amount <= hold) return emit({ type: 'PaymentCaptured', authorizationId, amount: command.amount, at });
      return emit({ type: 'PaymentCaptured', authorizationId, amount: hold, owed: command.amount, at });
    }
    case 'RecordVoid':
      if (state.status !== 'AUTHORIZED' && state.status !== 'PENDING') return emit();
      return emit({ type: 'AuthorizationVoided', authorizationId, at });
    default:
      return unreachable(command);
  }
}

export function evolve(state: PaymentState, event: PaymentEvent): PaymentState {
  switch (event.type) {
    case 'AuthorizationRequested':
      return { ...state, status: 'PENDING', bookingId: event.bookingId, amount: event.amount, currency: event.currency, paymentMethod: event.paymentMethod };
    case 'PaymentAuthorized':
      return { ...state, status: 'AUTHORIZED', reference: event.reference };
    case 'PaymentDeclined':
      return { ...state, status: 'DECLINED', declineReason: event.reason };
    case 'PaymentCaptured':
      return { ...state, status: 'CAPTURED', amount: Math.max(state.amount, event.amount), capturedAmount: event.amount };
    case 'AuthorizationVoided':
      return { ...state, status: 'VOIDED' };
    default:
      return unreachable(event);
  }
}
