import { emit, refuse, unreachable, type Decision } from '../shared/decision.js';
import type { DeclineReason } from '../contract/rejections.js';

/** Pure rules of one payment authorization: PENDING → AUTHORIZED | DECLINED → CAPTURED | VOIDED. */

export type PaymentCommand =
  | { readonly type: 'RequestAuthorization'; readonly authorizationId: string; readonly bookingId: string; readonly amount: number; readonly currency: string; readonly paymentMethod: string; readonly at: number }
  | { readonly type: 'RecordGatewayDecision'; readonly authorizationId: string; readonly decision: { readonly outcome: 'authorized'; readonly reference: string } | { readonly outcome: 'declined'; readonly reason: DeclineReason }; readonly at: number }
  | { readonly type: 'RecordCapture'; readonly authorizationId: string; readonly amount: number; readonly at: number }
  | { readonly type: 'RecordVoid'; readonly authorizationId: string; readonly at: number };

export type PaymentEvent =
  | { readonly type: 'AuthorizationRequested'; readonly authorizationId: string; readonly bookingId: string; readonly amount: number; readonly currency: string; readonly paymentMethod: string; readonly at: number }
  | { readonly type: 'PaymentAuthorized'; readonly authorizationId: string; readonly reference: string; readonly at: number }
  | { readonly type: 'PaymentDeclined'; readonly authorizationId: string; readonly reason: DeclineReason; readonly at: number }
  | { readonly type: 'PaymentCaptured'; readonly authorizationId: string; readonly amount: number; readonly at: number }
  | { readonly type: 'AuthorizationVoided'; readonly authorizationId: string; readonly at: number };

// ---- state: one variant per status, each with what exists in it ----------------------------------

/** What the booking asked for: every authorization that was requested has it. */
interface Requested {
  readonly bookingId: string;
  readonly amount: number;
  readonly currency: string;
  readonly paymentMethod: string;
}

export interface NewPayment { readonly status: 'NEW' }
export interface PendingPayment extends Requested { readonly status: 'PENDING' }
export interface AuthorizedPayment extends Requested { readonly status: 'AUTHORIZED'; readonly reference: string }
export interface DeclinedPayment extends Requested { readonly status: 'DECLINED'; readonly declineReason: DeclineReason }
export interface CapturedPayment extends Requested { readonly status: 'CAPTURED'; readonly reference: string; readonly capturedAmount: number }
export interface VoidedPayment extends Requested {
  readonly status: 'VOIDED';
  /** The gateway's, when it had authorized before the void (absent when voided while PENDING). */
  readonly reference?: string;
}

export type PaymentState = NewPayment | PendingPayment | AuthorizedPayment | DeclinedPayment | CapturedPayment | VoidedPayment;
export type PaymentStatus = PaymentState['status'];

export const initialPaymentState: PaymentState = { status: 'NEW' };

/** Why a capture is refused, or an authorization answered as declined: the decline's own reason, else card_declined. */
export const declineReasonOf = (state: PaymentState): DeclineReason => (state.status === 'DECLINED' ? state.declineReason : 'card_declined');

// ---- decide ------------------------------------------------------------------------------------

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
      if (state.status !== 'AUTHORIZED') return refuse({ type: 'PaymentDeclined', authorizationId, reason: declineReasonOf(state) });
      return emit({ type: 'PaymentCaptured', authorizationId, amount: Math.min(command.amount, state.amount), at });
    case 'RecordVoid':
      if (state.status !== 'AUTHORIZED' && state.status !== 'PENDING') return emit();
      return emit({ type: 'AuthorizationVoided', authorizationId, at });
    default:
      return unreachable(command);
  }
}

// ---- evolve ------------------------------------------------------------------------------------

export function evolve(state: PaymentState, event: PaymentEvent): PaymentState {
  if (event.type === 'AuthorizationRequested') {
    const { bookingId, amount, currency, paymentMethod } = event;
    return { status: 'PENDING', bookingId, amount, currency, paymentMethod };
  }
  // The decider requests before anything else happens to an authorization.
  if (state.status === 'NEW') return state;
  switch (event.type) {
    case 'PaymentAuthorized':
      return { status: 'AUTHORIZED', ...requestOf(state), reference: event.reference };
    case 'PaymentDeclined':
      return { status: 'DECLINED', ...requestOf(state), declineReason: event.reason };
    case 'PaymentCaptured':
      // Only an authorized payment is captured (decide); its reference stays for the records.
      return state.status === 'AUTHORIZED' ? { ...state, status: 'CAPTURED', capturedAmount: event.amount } : state;
    case 'AuthorizationVoided':
      return state.status === 'AUTHORIZED' ? { ...state, status: 'VOIDED' } : { status: 'VOIDED', ...requestOf(state) };
    default:
      return unreachable(event);
  }
}

function requestOf({ bookingId, amount, currency, paymentMethod }: Requested): Requested {
  return { bookingId, amount, currency, paymentMethod };
}
