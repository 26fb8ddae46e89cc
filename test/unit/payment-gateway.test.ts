import { describe, expect, it } from 'vitest';
import { GatewayError, SimulatedPaymentGateway, TEST_TOKENS, type AuthorizationRequest } from '../../actors/payment/gateway.js';

const request = (authorizationId: string, paymentMethod: string, amount = 1270): AuthorizationRequest => ({ authorizationId, amount, currency: 'EUR', paymentMethod });
const instant = () => new SimulatedPaymentGateway({ latencyMs: 0 });

describe('SimulatedPaymentGateway authorize', () => {
  it('names the CONTRACT test tokens', () => {
    expect(TEST_TOKENS).toEqual({ authorizes: 'tok_visa', declines: 'tok_chargeDeclined', neverAnswers: 'tok_timeout', noIncrement: 'tok_noIncrement' });
  });

  it('authorizes tok_visa with a reference', async () => {
    const gateway = instant();
    await expect(gateway.authorize(request('auth_1', 'tok_visa'))).resolves.toEqual({ outcome: 'authorized', reference: 'sim_auth_1' });
    expect(gateway.stateOf('auth_1')).toBe('authorized');
  });

  it('declines tok_chargeDeclined as card_declined', async () => {
    const gateway = instant();
    await expect(gateway.authorize(request('auth_1', 'tok_chargeDeclined'))).resolves.toEqual({ outcome: 'declined', reason: 'card_declined' });
    expect(gateway.stateOf('auth_1')).toBe('declined');
  });

  it('declines an unknown token as invalid_payment_method', async () => {
    const gateway = instant();
    await expect(gateway.authorize(request('auth_1', 'tok_mastercard_typo'))).resolves.toEqual({ outcome: 'declined', reason: 'invalid_payment_method' });
    await expect(gateway.authorize(request('auth_2', ''))).resolves.toEqual({ outcome: 'declined', reason: 'invalid_payment_method' });
  });

  it('never settles for tok_timeout, and remembers nothing for it', async () => {
    const gateway = instant();
    let outcome = 'still pending';
    void gateway.authorize(request('auth_1', 'tok_timeout')).then(() => (outcome = 'settled'), () => (outcome = 'failed'));
    // A later call on the same gateway has gone all the way through: the first one had every chance.
    await gateway.authorize(request('auth_2', 'tok_visa'));
    expect(outcome).toBe('still pending');
    expect(gateway.stateOf('auth_1')).toBeUndefined();
  });

  it('is idempotent per authorization id: a retry gets the first decision, whatever it sends', async () => {
    const gateway = instant();
    const first = await gateway.authorize(request('auth_1', 'tok_visa', 1270));
    await expect(gateway.authorize(request('auth_1', 'tok_chargeDeclined', 5))).resolves.toEqual(first);
    await expect(gateway.authorize(request('auth_2', 'tok_chargeDeclined'))).resolves.toEqual({ outcome: 'declined', reason: 'card_declined' });
    await expect(gateway.authorize(request('auth_2', 'tok_visa'))).resolves.toEqual({ outcome: 'declined', reason: 'card_declined' });
    // The retry did not lower the hold: the original amount can still be captured.
    await expect(gateway.capture('auth_1', 1270)).resolves.toBeUndefined();
  });

  it('answers concurrent requests for one authorization id with one decision', async () => {
    const gateway = new SimulatedPaymentGateway({ latencyMs: 4 });
    const answers = await Promise.all(['tok_visa', 'tok_chargeDeclined', 'tok_visa', 'tok_chargeDeclined'].map((token) => gateway.authorize(request('auth_1', token))));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(gateway.stateOf('auth_1')).toBe(answers[0]!.outcome);
  });
});

describe('SimulatedPaymentGateway capture', () => {
  it('captures up to the authorized amount, and a repeated capture is a no-op', async () => {
    const gateway = instant();
    await gateway.authorize(request('auth_1', 'tok_visa', 1270));
    await expect(gateway.capture('auth_1', 1270)).resolves.toBeUndefined();
    expect(gateway.stateOf('auth_1')).toBe('captured');
    await expect(gateway.capture('auth_1', 1270)).resolves.toBeUndefined();
    expect(gateway.stateOf('auth_1')).toBe('captured');
  });

  it('refuses a capture above the authorized amount with a GatewayError, and keeps the hold open', async () => {
    const gateway = instant();
    await gateway.authorize(request('auth_1', 'tok_visa', 1270));
    await expect(gateway.capture('auth_1', 1271)).rejects.toBeInstanceOf(GatewayError);
    expect(gateway.stateOf('auth_1')).toBe('authorized');
    await expect(gateway.capture('auth_1', 880)).resolves.toBeUndefined();
  });

  it('refuses to capture an unknown, declined or voided authorization', async () => {
    const gateway = instant();
    await expect(gateway.capture('auth_unknown', 100)).rejects.toBeInstanceOf(GatewayError);
    await gateway.authorize(request('auth_declined', 'tok_chargeDeclined'));
    await expect(gateway.capture('auth_declined', 100)).rejects.toBeInstanceOf(GatewayError);
    await gateway.authorize(request('auth_voided', 'tok_visa'));
    await gateway.void('auth_voided');
    await expect(gateway.capture('auth_voided', 100)).rejects.toBeInstanceOf(GatewayError);
  });

  it('fails the next N captures when told to (a processor fault), changing nothing, then captures again', async () => {
    const gateway = instant();
    await gateway.authorize(request('auth_1', 'tok_visa', 1270));
    gateway.failNextCaptures(2);
    await expect(gateway.capture('auth_1', 500)).rejects.toBeInstanceOf(GatewayError);
    expect(gateway.capturesStillToFail).toBe(1);
    await expect(gateway.capture('auth_1', 500)).rejects.toBeInstanceOf(GatewayError);
    expect(gateway.stateOf('auth_1')).toBe('authorized');
    expect(gateway.capturesStillToFail).toBe(0);
    await expect(gateway.capture('auth_1', 500)).resolves.toBeUndefined();
    expect(gateway.stateOf('auth_1')).toBe('captured');
  });

  it('fails as a GatewayError with its name set, so callers can tell it from a bug', async () => {
    const gateway = instant();
    const error = await gateway.capture('auth_unknown', 100).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as GatewayError).name).toBe('GatewayError');
  });
});

describe('SimulatedPaymentGateway void', () => {
  it('voids an open authorization, and again without complaint', async () => {
    const gateway = instant();
    await gateway.authorize(request('auth_1', 'tok_visa'));
    await expect(gateway.void('auth_1')).resolves.toBeUndefined();
    expect(gateway.stateOf('auth_1')).toBe('voided');
    await expect(gateway.void('auth_1')).resolves.toBeUndefined();
  });

  it('accepts a void of an authorization it never saw (e.g. after tok_timeout)', async () => {
    const gateway = instant();
    await expect(gateway.void('auth_never_seen')).resolves.toBeUndefined();
    expect(gateway.stateOf('auth_never_seen')).toBeUndefined();
  });

  it('refuses to void after capture with a GatewayError', async () => {
    const gateway = instant();
    await gateway.authorize(request('auth_1', 'tok_visa'));
    await gateway.capture('auth_1', 500);
    await expect(gateway.void('auth_1')).rejects.toBeInstanceOf(GatewayError);
    expect(gateway.stateOf('auth_1')).toBe('captured');
  });
});

describe('SimulatedPaymentGateway latency', () => {
  /** A gateway whose latencies are recorded, not waited out: what it would wait is asserted, not timed. */
  const recording = (latencyMs: number, random: () => number) => {
    const waits: number[] = [];
    const gateway = new SimulatedPaymentGateway({ latencyMs, random, delay: async (ms) => void waits.push(ms) });
    return { gateway, waits };
  };

  it('applies latencyMs × (0.5 + random()) to every call', async () => {
    let draws = 0;
    // random() = 0.5 makes each call take exactly the mean latency: 20 ms.
    const { gateway, waits } = recording(20, () => {
      draws += 1;
      return 0.5;
    });
    await gateway.authorize(request('auth_1', 'tok_visa'));
    await gateway.capture('auth_1', 100);
    await gateway.void('auth_2');
    expect(waits).toEqual([20, 20, 20]);
    expect(draws).toBe(3);
  });

  it('uses the random draw: random() = 0 halves the latency, random() → 1 makes it 1.5 ×', async () => {
    const low = recording(60, () => 0);
    await low.gateway.authorize(request('auth_1', 'tok_visa'));
    expect(low.waits).toEqual([30]);
    const high = recording(60, () => 0.999);
    await high.gateway.authorize(request('auth_1', 'tok_visa'));
    expect(high.waits[0]).toBeCloseTo(89.94);
  });

  it('waits for the latency before it answers', async () => {
    let release: () => void = () => {};
    const gateway = new SimulatedPaymentGateway({ latencyMs: 20, delay: () => new Promise<void>((resolve) => (release = resolve)) });
    let settled = false;
    const pending = gateway.authorize(request('auth_1', 'tok_visa')).then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    release();
    await pending;
    expect(settled).toBe(true);
  });

  it('waits nothing below 1 ms', async () => {
    const { gateway, waits } = recording(0, () => 0.5);
    await gateway.authorize(request('auth_1', 'tok_visa'));
    expect(waits).toEqual([]);
  });
});
