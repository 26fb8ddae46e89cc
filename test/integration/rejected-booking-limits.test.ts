import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejectedBookingPurge } from '../../persistence/rejected-bookings.js';
import { claimKeyOf, claimPurge } from '../../persistence/idempotency-claims-purge.js';
import { keyedBookingId, startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Refused bookings do not grow the journal without bound: once their idempotency window has passed,
 * a rejected booking's rows (and its authorization's) are deleted; everything else stays.
 */

let t: TestFleet;
beforeAll(async () => {
  // Actors leave memory quickly here, so the purge (which skips actors in memory) can run in seconds.
  t = await startTestFleet({ PASSIVATE_AFTER_MS: '300', UNLOCK_TIMEOUT_MS: '100', PAYMENT_TIMEOUT_MS: '500' });
});
afterAll(async () => t?.close());

const rowsOf = (persistenceKey: string) => t.count('SELECT count(*) AS n FROM journal WHERE persistence_key = ?', persistenceKey);
const journalSize = () => t.count('SELECT count(*) AS n FROM journal');

describe('rejected bookings leave the journal after their idempotency window', () => {
  it('deletes the rows of bookings the vehicle refused, keeps one whose payment was asked (the gateway remembers its id), the confirmed booking and the vehicle, and the key books afresh', async () => {
    expect((await t.registerVehicle('purge-taken')).statusCode).toBe(201);
    expect((await t.registerVehicle('purge-free')).statusCode).toBe(201);
    const holder = await t.book('holder', 'purge-taken');
    expect(holder.statusCode, holder.body).toBe(201);
    const holderId = holder.json<{ id: string }>().id;

    const refusedKeys = Array.from({ length: 20 }, (_, index) => `refused-${index}`);
    for (const key of refusedKeys) expect((await t.book('loser', 'purge-taken', {}, { 'idempotency-key': key })).statusCode).toBe(409);
    const declinedKey = 'declined-1';
    expect((await t.book('loser', 'purge-free', { paymentMethod: 'tok_chargeDeclined' }, { 'idempotency-key': declinedKey })).statusCode).toBe(402);
    const refusedIds = refusedKeys.map((key) => keyedBookingId('loser', key));
    const declinedId = keyedBookingId('loser', declinedKey);
    for (const id of [...refusedIds, declinedId]) expect(rowsOf(`booking/${id}`)).toBeGreaterThanOrEqual(2);
    const declinedPayment = `payment/auth_${declinedId}`;
    const declinedRows = rowsOf(`booking/${declinedId}`) + rowsOf(declinedPayment);
    expect(rowsOf(declinedPayment)).toBeGreaterThan(0);
    const vehicleRows = rowsOf('vehicle/purge-taken') + rowsOf('vehicle/purge-free');
    const holderRows = rowsOf(`booking/${holderId}`);
    // The claims answer StoreAnswer once queued: the last answer's commit may follow its response.
    await waitFor(() => rowsOf(claimKeyOf('loser', declinedKey)) === 2, { what: 'the last stored answer to be committed' });
    const before = journalSize();

    const purger = rejectedBookingPurge(t.fleet.local.db, (address) => t.fleet.local.directory.isActive(address));
    // Within the window (cut-off in the past) nothing goes.
    expect(purger.purge(Date.now() - 60_000)).toBe(0);
    // Past it, only once the actors have left memory: an activation would otherwise hold sequence numbers for rows that are gone.
    let purged = 0;
    await waitFor(
      () => {
        purged += purger.purge(Date.now() + 1);
        return purged === refusedIds.length;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `all ${refusedIds.length} rejected bookings purged (so far ${purged})` },
    );

    for (const id of refusedIds) expect(rowsOf(`booking/${id}`)).toBe(0);
    expect(rowsOf(`booking/${declinedId}`) + rowsOf(declinedPayment)).toBe(declinedRows);
    expect(t.count("SELECT count(*) AS n FROM bookings WHERE status = 'REJECTED'")).toBe(1);
    expect(rowsOf(`booking/${holderId}`)).toBe(holderRows);
    expect(rowsOf('vehicle/purge-taken') + rowsOf('vehicle/purge-free')).toBe(vehicleRows);
    expect(journalSize()).toBeLessThanOrEqual(before - 2 * refusedIds.length);
    expect(purger.purge(Date.now() + 1)).toBe(0);

    const holderView = await t.request({ method: 'GET', url: `/bookings/${holderId}`, as: 'holder' });
    expect(holderView.json()).toMatchObject({ status: 'CONFIRMED' });
    // The key's stored response is gone after 24 h too: the same request then books afresh (before the
    // purge, the booking actor would have answered its old REJECTED state).
    // (The claims are in the shard's journal: purged with a cut-off past them, once out of memory.)
    const claims = claimPurge(t.fleet.local.db, (address) => t.fleet.local.directory.isActive(address));
    await waitFor(() => {
      claims.purge(Date.now() + 1);
      return rowsOf(claimKeyOf('loser', refusedKeys[0]!)) === 0;
    }, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: 'the claim of the first refused key purged',
    });
    expect((await t.request({ method: 'POST', url: `/bookings/${holderId}/cancel`, as: 'holder' })).statusCode).toBe(200);
    const rebooked = await t.book('loser', 'purge-taken', {}, { 'idempotency-key': refusedKeys[0]! });
    expect(rebooked.statusCode, rebooked.body).toBe(201);
    expect(rebooked.json<{ id: string }>().id).toBe(refusedIds[0]);
  });
});
