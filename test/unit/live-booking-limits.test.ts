import { describe, expect, it } from 'vitest';
import { accept, reject, type Outcome } from '../../actors/contract/rejections.js';
import { LiveBookingLimit } from '../../persistence/live-bookings.js';
import { deferred } from '../helpers/stub-fleet.js';

/** The main thread's side of MAX_ACTIVE_BOOKINGS_PER_CUSTOMER, with a counter in memory standing in for the shards. */

function fleetOfCounts() {
  const live = new Map<string, Set<string>>();
  const count = async (customerId: string, except: string) => [...(live.get(customerId) ?? [])].filter((id) => id !== except);
  const book = (customerId: string, bookingId: string) => async (): Promise<Outcome<string>> => {
    // A turn of the event loop, as a shard round trip would take.
    await new Promise((resolve) => setImmediate(resolve));
    live.set(customerId, (live.get(customerId) ?? new Set()).add(bookingId));
    return accept(bookingId);
  };
  return { live, count, book };
}

describe('LiveBookingLimit', () => {
  it("runs one customer's requests one at a time: of a concurrent burst exactly `max` book", async () => {
    const { count, book } = fleetOfCounts();
    const limit = new LiveBookingLimit(2, count);
    const answers = await Promise.all(Array.from({ length: 12 }, (_, index) => limit.admit('alice', `bk_${index}`, book('alice', `bk_${index}`))));
    expect(answers.filter((answer) => answer.ok)).toHaveLength(2);
    const winners = answers.flatMap((answer) => (answer.ok ? [answer.value] : []));
    // The refusal names the live bookings, so that a customer who lost the id finds it.
    expect(answers.filter((answer) => !answer.ok).map((answer) => !answer.ok && answer.rejection)).toEqual(Array(10).fill({ type: 'ActiveBookingLimitReached', customerId: 'alice', limit: 2, liveBookingIds: expect.arrayContaining(winners) }));
    expect(limit.busyCustomers).toBe(0);
  });

  it('counts a booking whose ask went unanswered as live until its hold ends (it may still be made on its shard)', async () => {
    const { count, book } = fleetOfCounts();
    let now = 1_000;
    const limit = new LiveBookingLimit(1, count, 45_000, () => now);
    const timedOut = await limit.admit('alice', 'bk_slow', async () => reject({ type: 'ActorUnavailable', actor: 'booking/bk_slow', timeoutMs: 15_000 }));
    expect(timedOut.ok).toBe(false);
    expect(await limit.admit('alice', 'bk_next', book('alice', 'bk_next'))).toEqual(reject({ type: 'ActiveBookingLimitReached', customerId: 'alice', limit: 1, liveBookingIds: ['bk_slow'] }));
    // Its own retry is not counted against it.
    expect(await limit.admit('alice', 'bk_slow', book('alice', 'bk_slow'))).toEqual(accept('bk_slow'));
    // One that never reached its shard stops counting when the hold ends.
    await limit.admit('bob', 'bk_lost', async () => reject({ type: 'ShardUnavailable', shard: 0, reason: 'restarting' }));
    expect((await limit.admit('bob', 'bk_b', book('bob', 'bk_b'))).ok).toBe(false);
    now += 45_000;
    expect(await limit.admit('bob', 'bk_b', book('bob', 'bk_b'))).toEqual(accept('bk_b'));
  });

  it("does not make other customers wait for one customer's running booking", async () => {
    const { count, book } = fleetOfCounts();
    const limit = new LiveBookingLimit(1, count);
    const slow = deferred<Outcome<string>>();
    let aliceAnswered = false;
    const alice = limit.admit('alice', 'bk_a', () => slow.promise).finally(() => (aliceAnswered = true));
    const bob = await limit.admit('bob', 'bk_b', book('bob', 'bk_b'));
    expect(bob).toEqual(accept('bk_b'));
    expect(aliceAnswered).toBe(false);
    slow.resolve(accept('bk_a'));
    expect(await alice).toEqual(accept('bk_a'));
  });

  it('a retry of the same booking is not counted against itself', async () => {
    const { count, book } = fleetOfCounts();
    const limit = new LiveBookingLimit(1, count);
    expect((await limit.admit('carol', 'bk_1', book('carol', 'bk_1'))).ok).toBe(true);
    expect((await limit.admit('carol', 'bk_1', book('carol', 'bk_1'))).ok).toBe(true);
    expect((await limit.admit('carol', 'bk_2', book('carol', 'bk_2'))).ok).toBe(false);
  });

  it('a failed count fails that request only; the next one runs', async () => {
    let calls = 0;
    const limit = new LiveBookingLimit(1, async () => {
      calls += 1;
      if (calls === 1) throw new Error('shard 1 is down');
      return [];
    });
    const first = limit.admit('dave', 'bk_1', async () => accept('bk_1'));
    const second = limit.admit('dave', 'bk_2', async () => accept('bk_2'));
    await expect(first).rejects.toThrow('shard 1 is down');
    expect(await second).toEqual(accept('bk_2'));
    expect(limit.busyCustomers).toBe(0);
  });

  it('0 is no limit: nothing is counted', async () => {
    let counted = 0;
    const limit = new LiveBookingLimit(0, async () => {
      counted += 1;
      return ['bk_0'];
    });
    expect(await limit.admit('erin', 'bk_1', async () => accept('bk_1'))).toEqual(accept('bk_1'));
    expect(counted).toBe(0);
  });
});
