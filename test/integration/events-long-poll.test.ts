import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * The `events` read with `waitMs` (server/shard-read-dispatch.ts): how a node follows the live events
 * of a shard another node owns (server/cluster/remote-events.ts). Here on one process's shard.
 */
describe('a shard\'s events read held until something commits (long poll)', () => {
  let t: TestFleet;
  beforeAll(async () => {
    t = await startTestFleet({ PAYMENT_LATENCY_MS: '0' });
    expect((await t.registerVehicle('poll-1')).statusCode).toBe(201);
  });
  afterAll(async () => {
    await t.close();
  });

  const position = async (): Promise<number> => (await t.fleet.shards.link(0).call({ op: 'stats' }, 5000)).journal.position;

  it('answers as soon as a booking commits, with its events, not at the end of the wait', async () => {
    const after = await position();
    const waiting = t.fleet.shards.link(0).call({ op: 'read', read: { read: 'events', after, limit: 100, waitMs: 60_000 } }, 120_000);
    let answered = false;
    void waiting.then(() => (answered = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(answered).toBe(false);
    expect((await t.book('alice', 'poll-1')).statusCode).toBe(201);
    // Far before the 60 s wait: the test's own timeout would fail it otherwise.
    const page = await waiting;
    expect(page.events.map((event) => event.type)).toContain('booking.created');
    expect(page.scannedTo).toBeGreaterThan(after);
  });

  it('answers at once when something is there already, and with an empty page once the wait ends with nothing', async () => {
    const now = await position();
    const there = await t.fleet.shards.link(0).call({ op: 'read', read: { read: 'events', after: 0, limit: 5, waitMs: 60_000 } }, 120_000);
    expect(there.events.length).toBeGreaterThan(0);
    const nothing = await t.fleet.shards.link(0).call({ op: 'read', read: { read: 'events', after: now, limit: 5, waitMs: 100 } }, 10_000);
    expect(nothing).toEqual({ events: [], scannedTo: now });
  });
});
