import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { createKafkaClient } from '../../adapters/kafka/client.js';
import { evictGroupMember } from '../../adapters/kafka/group-eviction.js';
import { joinShardGroup, type ShardGroup } from '../../adapters/kafka/shard-group.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { placeShards } from '../../server/cluster/sticky-placement.js';
import { kafkaBrokersForTests, uniqueName } from '../helpers/kafka.js';

/**
 * A dead peer's member dropped at once (adapters/kafka/group-eviction.ts, ShardGroup.evictStart),
 * against the test broker: one node asks the coordinator to drop another's member by that node's
 * process start. With a 30 s session, nothing but the eviction can change a live member's id within
 * the test's wait: the dropped member rejoins under a new id, and the shards are placed again.
 */
describe('dropping another node\'s group member by its process start', () => {
  const logger = createLogger('silent');
  const brokers = kafkaBrokersForTests();
  const topic = uniqueName('evict-shards');
  const groupId = uniqueName('evict-nodes');
  const groups: ShardGroup[] = [];
  interface Seen {
    readonly memberIds: string[];
    shards: readonly number[];
  }

  const join = async (node: string, start: string, seen: Seen): Promise<ShardGroup> => {
    const group = await joinShardGroup({
      kafka: createKafkaClient({ brokers, clientId: `evict-test-${node}`, logger }),
      groupId,
      topic,
      node,
      url: `http://127.0.0.1:1/${node}`,
      start,
      held: () => seen.shards,
      known: () => ['a', 'b'],
      place: placeShards,
      onAssignment: (shards, memberId) => {
        seen.shards = shards;
        if (seen.memberIds.at(-1) !== memberId) seen.memberIds.push(memberId);
      },
      onMembers: () => {},
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 300,
      logger,
    });
    groups.push(group);
    return group;
  };

  beforeAll(async () => {
    await ensureTopics(createKafkaClient({ brokers, clientId: 'evict-test-admin', logger }), [topic], 2, 1);
  });
  afterAll(async () => {
    await Promise.all(groups.map((group) => group.leave()));
  });

  it('drops the member of the start named (which then rejoins under a new id), and none for its own start or a start the group does not have', async () => {
    const a: Seen = { memberIds: [], shards: [] };
    const b: Seen = { memberIds: [], shards: [] };
    const groupA = await join('a', 'a/start-1', a);
    await join('b', 'b/start-1', b);
    await expect.poll(() => [a.shards.length, b.shards.length], { timeout: 30_000, interval: 100 }).toEqual([1, 1]);
    expect(b.memberIds).toHaveLength(1);

    expect(await groupA.evictStart('a/start-1')).toBe(0);
    expect(await groupA.evictStart('b/start-0')).toBe(0);
    expect(await groupA.evictStart('b/start-1')).toBe(1);
    // Well inside the 30 s session: only the eviction moves a member that heartbeats.
    await expect.poll(() => b.memberIds.length, { timeout: 15_000, interval: 100 }).toBe(2);
    await expect.poll(() => [a.shards.length, b.shards.length], { timeout: 15_000, interval: 100 }).toEqual([1, 1]);
    expect(a.memberIds).toHaveLength(1);
  });

  it('answers not-a-member for a member id the group does not have', async () => {
    const kafka = createKafkaClient({ brokers, clientId: 'evict-test-stranger', logger });
    expect(await evictGroupMember(kafka, groupId, 'evict-test-nobody-0000', logger)).toBe('not-a-member');
  });
});
