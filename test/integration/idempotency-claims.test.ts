import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentGateway } from '../../actors/payment/gateway.js';
import { claimKeyOf, claimPurge } from '../../persistence/idempotency-claims-purge.js';
import { shardOfClaim } from '../../runtime/kernel/placement.js';
import { claimIdFor } from '../../actors/idempotency/actor.js';
import { deferred, type Deferred } from '../helpers/stub-fleet.js';
import { keyedBookingId, startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Idempotency-Key claims and stored answers live in the shards' journals (claim actors, one per
 * customer and key, placed by a hash): the main thread's registry is not written per request, and
 * every rule of docs/contract.md holds, across a restart too.
 */

const PROBLEM_TYPE = 'https://fleetactors.dev/problems/';
const SHARDS = 2;

/** A gateway that authorizes tok_visa and declines tok_chargeDeclined, and holds every answer while `hold` is set. */
let hold: Deferred<void> | null = null;
/** The authorizations the gateway was asked for (the payment journals its request only with the gateway's answer). */
const atGateway = new Set<string>();
const gateway: PaymentGateway = {
  authorize: async (request) => {
    atGateway.add(request.authorizationId);
    if (hold) await hold.promise;
    return request.paymentMethod === 'tok_chargeDeclined'
      ? { outcome: 'declined', reason: 'card_declined' }
      : { outcome: 'authorized', reference: `ref_${request.authorizationId}` };
  },
  incrementAuthorization: async () => undefined,
  capture: async () => undefined,
  void: async () => undefined,
};

let t: TestFleet;
beforeAll(async () => {
  t = await startTestFleet({ FLEET_SHARDS: String(SHARDS), PAYMENT_TIMEOUT_MS: '20000', PASSIVATE_AFTER_MS: '300', UNLOCK_TIMEOUT_MS: '100' }, { gateway });
  for (const id of ['claim-1', 'claim-2', 'claim-3', 'claim-4', 'claim-5', 'claim-6']) expect((await t.registerVehicle(id)).statusCode).toBe(201);
});
afterAll(async () => t?.close());

const rowsOf = (persistenceKey: string) => t.count('SELECT count(*) AS n FROM journal WHERE persistence_key = ?', persistenceKey);
const registryKeys = () => (t.fleet.registry.prepare('SELECT count(*) AS n FROM idempotency_keys').get() as { n: number }).n;

describe('Idempotency-Key claims on the shards', () => {
  it('a keyed booking writes its claim and its answer to the claim\'s shard journal, nothing to the registry', async () => {
    const before = registryKeys();
    const booked = await t.book('alice', 'claim-1', {}, { 'idempotency-key': 'journalled' });
    expect(booked.statusCode, booked.body).toBe(201);
    expect(registryKeys()).toBe(before);
    const key = claimKeyOf('alice', 'journalled');
    const shard = shardOfClaim(claimIdFor('alice', 'journalled'), SHARDS);
    // The claim answers StoreAnswer once the answer is queued, so its commit may follow the 201.
    await waitFor(() => rowsOf(key) === 2, { what: 'the stored answer to be committed' });
    expect(t.countPerShard('SELECT count(*) AS n FROM journal WHERE persistence_key = ?', key)).toEqual(
      Array.from({ length: SHARDS }, (_, index) => (index === shard ? 2 : 0)),
    );
    expect(t.rows<{ event_type: string }>('SELECT event_type FROM journal WHERE persistence_key = ? ORDER BY sequence_number', key).map((row) => row.event_type)).toEqual([
      'KeyClaimed',
      'AnswerStored',
    ]);
  });

  it("a keyed booking's trace is the booking's own steps: the claim's plain asks are not traced (its events are in the journal)", async () => {
    const booked = await t.book('alice', 'claim-6', {}, { 'idempotency-key': 'traced' });
    expect(booked.statusCode, booked.body).toBe(201);
    const trace = await t.request({ method: 'GET', url: `/traces/${(booked.json() as { id: string }).id}`, as: 'ops', role: 'operator' });
    expect(trace.statusCode, trace.body).toBe(200);
    const actors = (trace.json() as { steps: Array<{ toActor: string }> }).steps.map((step) => step.toActor.split('/')[0]);
    expect(actors).toContain('booking');
    expect(actors).toContain('payment');
    expect(actors).not.toContain('idempotency');
    expect(t.countTraceStepsPerShard('SELECT count(*) AS n FROM trace_steps WHERE to_actor LIKE ?', 'idempotency/%').reduce((sum, n) => sum + n, 0)).toBe(0);
  });

  it('409 while the first request runs, 422 for another body meanwhile; the first\'s answer is then replayed', async () => {
    hold = deferred<void>();
    const headers = { 'idempotency-key': 'running' };
    const first = t.book('bob', 'claim-2', {}, headers);
    // The first request holds its claim once its booking has reached the gateway.
    await waitFor(() => atGateway.has(`auth_${keyedBookingId('bob', 'running', 'claim-2', SHARDS)}`), { timeoutMs: 10_000, what: 'the first booking at the gateway' });

    const again = await t.book('bob', 'claim-2', {}, headers);
    expect(again.statusCode, again.body).toBe(409);
    expect(again.json()).toMatchObject({ type: `${PROBLEM_TYPE}idempotency-key-in-use` });
    expect(again.headers['retry-after']).toBe('1');
    const other = await t.book('bob', 'claim-2', { durationMinutes: 45 }, headers);
    expect(other.statusCode, other.body).toBe(422);
    expect(other.json()).toMatchObject({ type: `${PROBLEM_TYPE}idempotency-key-reused` });

    hold.resolve();
    hold = null;
    const answered = await first;
    expect(answered.statusCode, answered.body).toBe(201);
    const replayed = await t.book('bob', 'claim-2', {}, headers);
    expect(replayed.statusCode).toBe(201);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.json()).toEqual(answered.json());
    expectProblemType(await t.book('bob', 'claim-3', {}, headers), 422, 'idempotency-key-reused');
  });

  it('after a restart the stored answers (errors included) are replayed, another body is still 422, and the keys stay per customer', async () => {
    const declined = await t.book('carol', 'claim-3', { paymentMethod: 'tok_chargeDeclined' }, { 'idempotency-key': 'restart-402' });
    expect(declined.statusCode, declined.body).toBe(402);
    const booked = await t.book('carol', 'claim-4', {}, { 'idempotency-key': 'restart-201' });
    expect(booked.statusCode, booked.body).toBe(201);

    t = await t.restart();

    const replayedError = await t.book('carol', 'claim-3', { paymentMethod: 'tok_chargeDeclined' }, { 'idempotency-key': 'restart-402' });
    expect(replayedError.statusCode).toBe(402);
    expect(replayedError.headers['idempotent-replayed']).toBe('true');
    expect(replayedError.json()).toEqual(declined.json());
    const replayed = await t.book('carol', 'claim-4', {}, { 'idempotency-key': 'restart-201' });
    expect(replayed.statusCode).toBe(201);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.json()).toEqual(booked.json());
    expectProblemType(await t.book('carol', 'claim-5', {}, { 'idempotency-key': 'restart-201' }), 422, 'idempotency-key-reused');
    // Another customer's same key is their own.
    const dave = await t.book('dave', 'claim-5', {}, { 'idempotency-key': 'restart-201' });
    expect(dave.statusCode, dave.body).toBe(201);
    expect(dave.headers['idempotent-replayed']).toBeUndefined();
  });

  it('the housekeeping deletes claims past the cut-off once they are out of memory, and keeps younger ones', async () => {
    const booked = await t.book('erin', 'claim-1', {}, { 'idempotency-key': 'to-purge' });
    expect(booked.statusCode).toBeGreaterThanOrEqual(200);
    const key = claimKeyOf('erin', 'to-purge');
    await waitFor(() => rowsOf(key) === 2, { what: 'the stored answer to be committed' });
    const purgers = [0, 1].map((shard) => {
      const local = t.fleet.shards.local(shard)!;
      return claimPurge(local.db, (address) => local.directory.isActive(address));
    });
    // A cut-off before the claim: nothing of it goes.
    for (const purger of purgers) purger.purge(Date.now() - 60_000);
    expect(rowsOf(key)).toBe(2);
    await waitFor(
      () => {
        for (const purger of purgers) purger.purge(Date.now() + 1);
        return rowsOf(key) === 0;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'the claim purged once passivated' },
    );
  });
});

function expectProblemType(response: { statusCode: number; body: string; json(): unknown }, status: number, type: string): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.json()).toMatchObject({ type: `${PROBLEM_TYPE}${type}` });
}
