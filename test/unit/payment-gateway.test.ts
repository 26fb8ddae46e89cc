import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { GatewayError, SimulatedPaymentGateway, TEST_TOKENS, type AuthorizationRequest } from '../../actors/payment/gateway.js';

const request = (authorizationId: string, paymentMethod: string, amount = 1270): AuthorizationRequest => ({ authorizationId, amount, currency: 'EUR', paymentMethod });
const instant = () => new SimulatedPaymentGateway({ latencyMs: 0 });

describe('SimulatedPaymentGateway authorize', () => {
  it('names the CONTRACT test tokens', () => {
    expect(TEST_TOKENS).toEqual({ authorizes: 'tok_visa', declines: 'tok_chargeDeclined', neverAnswers: 'tok_timeout' });
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
    const outcome = await Promise.race([gateway.authorize(request('auth_1', 'tok_timeout')).then(() => 'settled' as const, () => 'failed' as const), sleep(50, 'still pending' as const)]);
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
  it('applies latencyMs × (0.5 + random()) to every call', async () => {
    let draws = 0;
    // random() = 0.5 makes each call take exactly the mean latency: 20 ms.
    const gateway = new SimulatedPaymentGateway({ latencyMs: 20, random: () => {
        draws += 1;
        return 0.5;
      },
    });
    const timed = async (call: () => Promise<unknown>) => {
      const started = performance.now();
      await call();
      return performance.now() - started;
    };
    // Node may fire a timer up to 1 ms early against performance.now(); allow that, nothing more.
    expect(await timed(() => gateway.authorize(request('auth_1', 'tok_visa')))).toBeGreaterThanOrEqual(19);
    expect(await timed(() => gateway.capture('auth_1', 100))).toBeGreaterThanOrEqual(19);
    expect(await timed(() => gateway.void('auth_2'))).toBeGreaterThanOrEqual(19);
    expect(draws).toBe(3);
  });

  it('uses the random draw: random() = 0 halves the latency, so a 60 ms mean takes at least 30 ms', async () => {
    const gateway = new SimulatedPaymentGateway({ latencyMs: 60, random: () => 0 });
    const started = performance.now();
    const pending = gateway.authorize(request('auth_1', 'tok_visa'));
    const early = await Promise.race([pending.then(() => 'settled' as const), sleep(10, 'pending' as const)]);
    expect(early).toBe('pending');
    await pending;
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
  });
});
