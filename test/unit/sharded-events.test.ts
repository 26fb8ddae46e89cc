import { describe, expect, it } from 'vitest';
import type { PublicEvent } from '../../api/ports.js';
import type { ShardLinks } from '../../server/fleet-service.js';
import { ShardedEvents } from '../../server/fleet-reads.js';
import type { FleetShardLink, ShardCall } from '../../server/shard-calls.js';

/** Shards that answer `events` reads from fixed journals: `rows` are public rows, `null` one that is no event. */
function shardsWith(journals: Array<Array<PublicEvent | { position: number; skipped: true }>>): ShardLinks {
  const links = journals.map((journal) => ({
    call: async (call: ShardCall) => {
      if (call.op !== 'read' || call.read.read !== 'events') throw new Error('unexpected call');
      const { after, limit } = call.read;
      const rows = journal.filter((row) => row.position > after).slice(0, limit);
      return { events: rows.filter((row): row is PublicEvent => !('skipped' in row)), scannedTo: rows.at(-1)?.position ?? after };
    },
    onEvents: () => () => undefined,
    onUp: () => () => undefined,
    followEvents: () => undefined,
  }));
  return { count: links.length, link: (shard) => links[shard] as unknown as FleetShardLink };
}

const event = (shard: number, position: number, key: string, ms: number): PublicEvent => ({
  shard,
  position,
  key,
  type: 'booking.created',
  data: {},
  time: new Date(1_700_000_000_000 + ms).toISOString(),
  id: `booking/${key}:${position}`,
});

describe('GET /events across shards (the merge behind it)', () => {
  it('interleaves shards by time, keeps each shard in journal order, and pages with no gap and no duplicate', async () => {
    const events = new ShardedEvents(
      shardsWith([
        [event(0, 1, 'a', 10), event(0, 2, 'a', 5), event(0, 3, 'b', 30)],
        [event(1, 1, 'c', 1), event(1, 2, 'c', 20)],
      ]),
    );
    const seen: PublicEvent[] = [];
    let cursor = [0, 0] as readonly number[];
    for (let page = 0; page < 10; page += 1) {
      const read = await events.read(cursor, 2);
      if (read.items.length === 0) break;
      seen.push(...read.items);
      cursor = read.next;
    }
    expect(seen.map((e) => `${e.shard}:${e.position}`)).toEqual(['1:1', '0:1', '0:2', '1:2', '0:3']);
    expect(cursor).toEqual([3, 2]);
  });

  it('moves a shard past rows that are no event, so its cursor never stalls', async () => {
    const events = new ShardedEvents(shardsWith([[{ position: 1, skipped: true }, { position: 2, skipped: true }, event(0, 3, 'a', 1)], []]));
    const first = await events.read([0, 0], 2);
    expect(first.items).toEqual([]);
    expect(first.next).toEqual([2, 0]);
    const second = await events.read(first.next, 2);
    expect(second.items.map((e) => e.position)).toEqual([3]);
    expect(second.next).toEqual([3, 0]);
  });
});
