import { describe, expect, it } from 'vitest';
import { evolve, initialPaymentState, type PaymentEvent, type PaymentState } from '../../actors/payment/decider.js';
import { fromPaymentRecord, toPaymentRecord, type PaymentRecord } from '../../actors/payment/record.js';

/**
 * The authorization's flat record: what snapshots store and traces show. Snapshots written before the
 * state became a union are such records; they must recover into the state the journal would fold to.
 */

const A = 'auth_b-1';
const T0 = Date.UTC(2025, 0, 2, 8, 0, 0);
const requested: PaymentEvent = { type: 'AuthorizationRequested', authorizationId: A, bookingId: 'b-1', amount: 1270, currency: 'EUR', paymentMethod: 'tok_visa', at: T0 };
const authorized: PaymentEvent = { type: 'PaymentAuthorized', authorizationId: A, reference: `sim_${A}`, at: T0 + 200 };
const fold = (...events: PaymentEvent[]): PaymentState => events.reduce(evolve, initialPaymentState);
const asked = { bookingId: 'b-1', amount: 1270, currency: 'EUR', paymentMethod: 'tok_visa' } as const;

/** Each status as the old `evolve` built it (the state's shape before the union), and the events that lead there. */
const records: [PaymentRecord, PaymentEvent[]][] = [
  [{ status: 'NEW', bookingId: null, amount: 0, currency: 'EUR', paymentMethod: null, reference: null, declineReason: null, capturedAmount: null }, []],
  [{ status: 'PENDING', ...asked, reference: null, declineReason: null, capturedAmount: null }, [requested]],
  [{ status: 'AUTHORIZED', ...asked, reference: `sim_${A}`, declineReason: null, capturedAmount: null }, [requested, authorized]],
  [{ status: 'DECLINED', ...asked, reference: null, declineReason: 'gateway_timeout', capturedAmount: null }, [requested, { type: 'PaymentDeclined', authorizationId: A, reason: 'gateway_timeout', at: T0 + 10_000 }]],
  [{ status: 'CAPTURED', ...asked, reference: `sim_${A}`, declineReason: null, capturedAmount: 880 }, [requested, authorized, { type: 'PaymentCaptured', authorizationId: A, amount: 880, at: T0 + 60_000 }]],
  [{ status: 'VOIDED', ...asked, reference: `sim_${A}`, declineReason: null, capturedAmount: null }, [requested, authorized, { type: 'AuthorizationVoided', authorizationId: A, at: T0 + 30_000 }]],
  [{ status: 'VOIDED', ...asked, reference: null, declineReason: null, capturedAmount: null }, [requested, { type: 'AuthorizationVoided', authorizationId: A, at: T0 + 30_000 }]],
];

describe('payment record', () => {
  it.each(records.map(([record, events]) => [record.status, record, events] as const))('%s: the state flattens to the record the state was before the union, and reads back from it', (_status, record, events) => {
    expect(toPaymentRecord(fold(...events))).toEqual(record);
    expect(fromPaymentRecord(record)).toEqual(fold(...events));
  });

  it('keeps the fields in the order traces always showed them', () => {
    expect(Object.keys(toPaymentRecord(fold(requested, authorized)))).toEqual(['status', 'bookingId', 'amount', 'currency', 'paymentMethod', 'reference', 'declineReason', 'capturedAmount']);
  });

  it('refuses a record that no state flattens to: a corrupt snapshot fails its recovery instead of becoming a wrong state', () => {
    const [authorizedRecord] = records[2]!;
    expect(() => fromPaymentRecord({ ...authorizedRecord, reference: null })).toThrow(/no payment state is the record/);
    expect(() => fromPaymentRecord({ ...authorizedRecord, bookingId: null })).toThrow(/no payment state is the record/);
    expect(() => fromPaymentRecord({ ...authorizedRecord, status: 'CAPTURED' })).toThrow(/no payment state is the record/);
  });
});
