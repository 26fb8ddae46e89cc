import { describe, expect, it } from 'vitest';
import type { DeclineReason } from '../../actors/contract/rejections.js';
import { decide, evolve, initialPaymentState, type PaymentCommand, type PaymentEvent, type PaymentState } from '../../actors/payment/decider.js';
import { specification } from '../helpers/decider-spec.js';

const spec = specification({ decide, evolve, initialState: () => initialPaymentState });

const A = 'auth_b-1';
const T0 = Date.UTC(2025, 0, 2, 8, 0, 0);
const AUTHORIZED_AMOUNT = 1270;

// ---- events -------------------------------------------------------------------------------------

const requested: PaymentEvent = { type: 'AuthorizationRequested', authorizationId: A, bookingId: 'b-1', amount: AUTHORIZED_AMOUNT, currency: 'EUR', paymentMethod: 'tok_visa', at: T0 };
const authorized: PaymentEvent = { type: 'PaymentAuthorized', authorizationId: A, reference: `sim_${A}`, at: T0 + 200 };
const declined = (reason: DeclineReason, at = T0 + 200): PaymentEvent => ({ type: 'PaymentDeclined', authorizationId: A, reason, at });
const captured = (amount: number, at = T0 + 60_000): PaymentEvent => ({ type: 'PaymentCaptured', authorizationId: A, amount, at });
const voided = (at = T0 + 30_000): PaymentEvent => ({ type: 'AuthorizationVoided', authorizationId: A, at });

const atPending = [requested];
const atAuthorized = [requested, authorized];
const atDeclined = [requested, declined('card_declined')];
const atTimedOut = [requested, declined('gateway_timeout', T0 + 10_000)];
const atCaptured = [...atAuthorized, captured(880)];
const atVoided = [...atAuthorized, voided()];

// ---- commands -----------------------------------------------------------------------------------

const requestAuthorization = (overrides: Partial<Extract<PaymentCommand, { type: 'RequestAuthorization' }>> = {}): PaymentCommand => ({
  type: 'RequestAuthorization',
  authorizationId: A,
  bookingId: 'b-1',
  amount: AUTHORIZED_AMOUNT,
  currency: 'EUR',
  paymentMethod: 'tok_visa',
  at: T0,
  ...overrides,
});
const gatewayAuthorized = (at = T0 + 200): PaymentCommand => ({ type: 'RecordGatewayDecision', authorizationId: A, decision: { outcome: 'authorized', reference: `sim_${A}` }, at });
const gatewayDeclined = (reason: DeclineReason, at = T0 + 200): PaymentCommand => ({ type: 'RecordGatewayDecision', authorizationId: A, decision: { outcome: 'declined', reason }, at });
const capture = (amount: number, at = T0 + 60_000): PaymentCommand => ({ type: 'RecordCapture', authorizationId: A, amount, at });
const recordVoid = (at = T0 + 30_000): PaymentCommand => ({ type: 'RecordVoid', authorizationId: A, at });

// ---- specifications -----------------------------------------------------------------------------

describe('RequestAuthorization', () => {
  it('opens a PENDING authorization for the booking and amount', () => {
    const state = spec.given([]).when(requestAuthorization()).then([requested]);
    expect(state).toEqual<PaymentState>({ status: 'PENDING', bookingId: 'b-1', amount: AUTHORIZED_AMOUNT, currency: 'EUR', paymentMethod: 'tok_visa' });
  });

  it.each<[string, PaymentEvent[]]>([
    ['PENDING', atPending],
    ['AUTHORIZED', atAuthorized],
    ['DECLINED', atDeclined],
    ['CAPTURED', atCaptured],
    ['VOIDED', atVoided],
  ])('emits nothing for a retry when %s (the actor answers from its state)', (_status, given) => {
    spec.given(given).when(requestAuthorization({ at: T0 + 5_000 })).thenNothing();
    // A retry never re-prices or re-targets the hold either.
    spec.given(given).when(requestAuthorization({ amount: 9_999, paymentMethod: 'tok_chargeDeclined' })).thenNothing();
  });
});

describe('RecordGatewayDecision', () => {
  it('authorizes a PENDING authorization with the gateway reference', () => {
    const state = spec.given(atPending).when(gatewayAuthorized()).then([authorized]);
    expect(state).toMatchObject({ status: 'AUTHORIZED', reference: `sim_${A}` });
    expect(state).not.toHaveProperty('declineReason');
  });

  it.each<DeclineReason>(['card_declined', 'invalid_payment_method', 'gateway_timeout'])('declines a PENDING authorization with reason %s', (reason) => {
    const state = spec.given(atPending).when(gatewayDeclined(reason)).then([declined(reason)]);
    expect(state).toMatchObject({ status: 'DECLINED', declineReason: reason });
  });

  it('ignores a late gateway decision after the timeout already declined it', () => {
    spec.given(atTimedOut).when(gatewayAuthorized(T0 + 12_000)).thenNothing();
    spec.given(atTimedOut).when(gatewayDeclined('card_declined', T0 + 12_000)).thenNothing();
  });

  it.each<[string, PaymentEvent[]]>([
    ['NEW', []],
    ['AUTHORIZED', atAuthorized],
    ['DECLINED', atDeclined],
    ['CAPTURED', atCaptured],
    ['VOIDED', atVoided],
  ])('emits nothing for a decision when %s', (_status, given) => {
    spec.given(given).when(gatewayAuthorized()).thenNothing();
    spec.given(given).when(gatewayDeclined('card_declined')).thenNothing();
  });

  it('ignores a gateway decision after the authorization was voided while pending', () => {
    spec.given([requested, voided(T0 + 100)]).when(gatewayAuthorized(T0 + 200)).thenNothing();
  });
});

describe('RecordCapture', () => {
  it('captures the trip charge from an AUTHORIZED hold', () => {
    const state = spec.given(atAuthorized).when(capture(880)).then([captured(880)]);
    expect(state).toMatchObject({ status: 'CAPTURED', capturedAmount: 880 });
  });

  it('caps the capture at the authorized amount', () => {
    spec.given(atAuthorized).when(capture(AUTHORIZED_AMOUNT + 1)).then([captured(AUTHORIZED_AMOUNT)]);
    spec.given(atAuthorized).when(capture(AUTHORIZED_AMOUNT)).then([captured(AUTHORIZED_AMOUNT)]);
  });

  it('emits nothing for a second capture, whatever its amount', () => {
    spec.given(atCaptured).when(capture(880, T0 + 70_000)).thenNothing();
    spec.given(atCaptured).when(capture(100, T0 + 70_000)).thenNothing();
  });

  it('refuses to capture a declined authorization, with its decline reason', () => {
    spec.given(atDeclined).when(capture(880)).thenRejects({ type: 'PaymentDeclined', authorizationId: A, reason: 'card_declined' });
    spec.given(atTimedOut).when(capture(880)).thenRejects({ type: 'PaymentDeclined', authorizationId: A, reason: 'gateway_timeout' });
  });

  it.each<[string, PaymentEvent[]]>([
    ['NEW', []],
    ['PENDING', atPending],
    ['VOIDED', atVoided],
  ])('refuses to capture when %s (no hold to capture)', (_status, given) => {
    spec.given(given).when(capture(880)).thenRejects({ type: 'PaymentDeclined', authorizationId: A, reason: 'card_declined' });
  });
});

describe('RecordVoid', () => {
  it('voids an AUTHORIZED hold', () => {
    const state = spec.given(atAuthorized).when(recordVoid()).then([voided()]);
    expect(state.status).toBe('VOIDED');
  });

  it('voids a PENDING authorization (the gateway may still answer: nothing must stay held)', () => {
    spec.given(atPending).when(recordVoid()).then([voided()]);
  });

  it.each<[string, PaymentEvent[]]>([
    ['NEW', []],
    ['DECLINED', atDeclined],
    ['CAPTURED', atCaptured],
    ['VOIDED', atVoided],
  ])('emits nothing when %s', (_status, given) => {
    spec.given(given).when(recordVoid(T0 + 90_000)).thenNothing();
  });
});

describe('evolve', () => {
  it('folds request, authorization and capture into a CAPTURED authorization', () => {
    expect(spec.given(atCaptured).state).toEqual<PaymentState>({
      status: 'CAPTURED',
      bookingId: 'b-1',
      amount: AUTHORIZED_AMOUNT,
      currency: 'EUR',
      paymentMethod: 'tok_visa',
      reference: `sim_${A}`,
      capturedAmount: 880,
    });
  });

  it('folds a gateway timeout into a DECLINED authorization that remembers why', () => {
    expect(spec.given(atTimedOut).state).toEqual<PaymentState>({ status: 'DECLINED', bookingId: 'b-1', amount: AUTHORIZED_AMOUNT, currency: 'EUR', paymentMethod: 'tok_visa', declineReason: 'gateway_timeout' });
  });

  it('folds a void into VOIDED, keeping the reference for the records', () => {
    expect(spec.given(atVoided).state).toEqual<PaymentState>({ status: 'VOIDED', bookingId: 'b-1', amount: AUTHORIZED_AMOUNT, currency: 'EUR', paymentMethod: 'tok_visa', reference: `sim_${A}` });
  });

  it('folds a void of a PENDING authorization into VOIDED without a reference (the gateway never gave one)', () => {
    const state = spec.given([...atPending, voided()]).state;
    expect(state).toEqual<PaymentState>({ status: 'VOIDED', bookingId: 'b-1', amount: AUTHORIZED_AMOUNT, currency: 'EUR', paymentMethod: 'tok_visa' });
    expect(state).not.toHaveProperty('reference');
  });
});
