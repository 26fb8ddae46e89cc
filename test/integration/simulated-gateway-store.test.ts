import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError, SimulatedPaymentGateway } from '../../actors/payment/gateway.js';
import { openSimulatedGatewayStore, simulatedGatewayFile } from '../../persistence/simulated-gateway-store.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

/**
 * The built-in stand-in processor remembers its holds in a file of its own, as a real processor
 * outlives our process: a ride authorized before a restart (a kill -9, a shard worker crash) can still
 * be captured after it. In memory it could not (found by the chaos harness).
 */
describe('simulated payment gateway across a restart', () => {
  let temp: TempDbFile | undefined;
  afterEach(() => temp?.cleanup());

  it('captures after a restart what was authorized before it, and still refuses what it never authorized', async () => {
    temp = tempDbFile();
    const file = simulatedGatewayFile(temp.file.replace('fleet.db', 'fleet.shard-0.db'));
    expect(file).toMatch(/fleet\.shard-0\.gateway\.db$/);

    const before = openSimulatedGatewayStore(file);
    await new SimulatedPaymentGateway({ latencyMs: 0, store: before }).authorize({ authorizationId: 'auth_1', amount: 1270, currency: 'EUR', paymentMethod: 'tok_visa' });
    await new SimulatedPaymentGateway({ latencyMs: 0, store: before }).authorize({ authorizationId: 'auth_2', amount: 500, currency: 'EUR', paymentMethod: 'tok_visa' });
    await new SimulatedPaymentGateway({ latencyMs: 0, store: before }).void('auth_2');
    before.close();

    const after = openSimulatedGatewayStore(file);
    const gateway = new SimulatedPaymentGateway({ latencyMs: 0, store: after });
    expect(gateway.stateOf('auth_1')).toBe('authorized');
    await expect(gateway.capture('auth_1', 1300)).rejects.toBeInstanceOf(GatewayError);
    await expect(gateway.capture('auth_1', 1000)).resolves.toBeUndefined();
    expect(gateway.stateOf('auth_1')).toBe('captured');
    await expect(gateway.capture('auth_2', 100)).rejects.toThrow(/no open authorization auth_2/);
    await expect(gateway.capture('auth_never', 100)).rejects.toThrow(/no open authorization auth_never/);
    after.close();
  });
});
