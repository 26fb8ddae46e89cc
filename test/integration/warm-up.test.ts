import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config.js';
import { createsItsActor, tagsForEvent } from '../../runtime/shard.js';
import { warmUpHttp, warmUpShard } from '../../runtime/warm-up.js';

/**
 * The cold-start warm-up runs the real booking path on throw-away parts: it must really reach the end
 * of the path (a warm-up that fails early would warm the wrong code) and leave nothing behind.
 */
describe('warm-up before ready', () => {
  const config = loadConfig({ FLEET_DB: ':memory:', LOG_LEVEL: 'silent' });

  it('a shard runs whole booking sagas to CONFIRMED on an in-memory journal', async () => {
    const warmed = await warmUpShard(config, { budgetMs: 50, startsFresh: createsItsActor, tagsFor: tagsForEvent });
    expect(warmed.bookings).toBeGreaterThanOrEqual(50);
    expect(warmed.confirmed).toBe(warmed.bookings);
  });

  it('the main thread answers POST /bookings with 201 through auth, validation, idempotency and serialisation', async () => {
    expect(await warmUpHttp(config, 120)).toBe(120);
  });
});
