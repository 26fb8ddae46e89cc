import type { DeclineReason } from '../contract/rejections.js';
import { initialPaymentState, type PaymentState, type PaymentStatus } from './decider.js';

/**
 * An authorization's state as one flat record with a null for whatever its status lacks: the shape the
 * state had before it became a union (decider.ts), kept as its outside form. Snapshots store it, so
 * snapshots written before the union still recover; traces and replays show it, so old and new traces
 * read alike.
 */
export interface PaymentRecord {
  readonly status: PaymentStatus;
  readonly bookingId: string | null;
  /** 0 before the request. */
  readonly amount: number;
  /** EUR before the request. */
  readonly currency: string;
  readonly paymentMethod: string | null;
  readonly reference: string | null;
  readonly declineReason: DeclineReason | null;
  readonly capturedAmount: number | null;
}

const NEW_RECORD: PaymentRecord = { status: 'NEW', bookingId: null, amount: 0, currency: 'EUR', paymentMethod: null, reference: null, declineReason: null, capturedAmount: null };

export function toPaymentRecord(state: PaymentState): PaymentRecord {
  if (state.status === 'NEW') return NEW_RECORD;
  return {
    status: state.status,
    bookingId: state.bookingId,
    amount: state.amount,
    currency: state.currency,
    paymentMethod: state.paymentMethod,
    reference: 'reference' in state && state.reference !== undefined ? state.reference : null,
    declineReason: state.status === 'DECLINED' ? state.declineReason : null,
    capturedAmount: state.status === 'CAPTURED' ? state.capturedAmount : null,
  };
}

/**
 * The state a record stands for. Throws on a record that no authorization state flattens to (an
 * authorized one without its reference): a corrupt snapshot must fail the recovery, not become a wrong state.
 */
export function fromPaymentRecord(record: PaymentRecord): PaymentState {
  const { status, bookingId, amount, currency, paymentMethod, reference, declineReason, capturedAmount } = record;
  if (status === 'NEW') return initialPaymentState;
  if (bookingId === null || paymentMethod === null) throw corrupt(record);
  const requested = { bookingId, amount, currency, paymentMethod };
  switch (status) {
    case 'PENDING':
      return { status, ...requested };
    case 'AUTHORIZED':
      if (reference === null) throw corrupt(record);
      return { status, ...requested, reference };
    case 'DECLINED':
      if (declineReason === null) throw corrupt(record);
      return { status, ...requested, declineReason };
    case 'CAPTURED':
      if (reference === null || capturedAmount === null) throw corrupt(record);
      return { status, ...requested, reference, capturedAmount };
    case 'VOIDED':
      return { status, ...requested, ...(reference !== null && { reference }) };
    default:
      throw corrupt(record);
  }
}

const corrupt = (record: PaymentRecord): Error => new Error(`no payment state is the record ${JSON.stringify(record)}`);
