import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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
const memberProcess = fileURLToPath(new URL('../helpers/group-member-process.ts', import.meta.url));

describe('dropping another node\'s group member by its process start', () => {
  const logger = createLogger('silent');
  const brokers = kafkaBrokersForTests();
  const topic = uniqueName('evict-shards');
  const groupId = uniqueName('evict-nodes');
  const groups: ShardGroup[] = [];
  const children: ChildProcess[] = [];
  /** Joins still under way when a test ended (a failed one): their members leave too. */
  const joining: Array<Promise<ShardGroup>> = [];
  interface Seen {
    readonly memberIds: string[];
    shards: readonly number[];
    nodes?: readonly string[];
  }

  const join = async (node: string, start: string, seen: Seen, group: { groupId: string; topic: string } = { groupId, topic }): Promise<ShardGroup> => {
    const member = await joinShardGroup({
      kafka: createKafkaClient({ brokers, clientId: `evict-test-${node}`, logger }),
      ...group,
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
      onMembers: (nodes) => {
        seen.nodes = nodes.map((each) => each.node).sort();
      },
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 300,
      logger,
    });
    groups.push(member);
    return member;
  };

  /** A member in a child process (test/helpers/group-member-process.ts), so that SIGKILL leaves it dead to the coordinator. */
  const joinInChild = async (node: string, start: string, group: { groupId: string; topic: string }): Promise<ChildProcess> => {
    const child = spawn(process.execPath, ['--import', 'tsx', memberProcess, brokers.join(','), group.groupId, group.topic, node, start, '30000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (/assigned \S+ \d/.test(out)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`group member ${node} ended (${code}) before its first assignment: ${out}`)));
      setTimeout(() => reject(new Error(`group member ${node} had no assignment within 20 s: ${out}`)), 20_000).unref();
    });
    return child;
  };

  beforeAll(async () => {
    await ensureTopics(createKafkaClient({ brokers, clientId: 'evict-test-admin', logger }), [topic], 2, 1);
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.allSettled(joining);
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

  it('drops a dead member while the group rebalances, named from the last Stable description, so the rebalance ends without waiting out its session', async () => {
    const group = { groupId: uniqueName('evict-rebalance-nodes'), topic: uniqueName('evict-rebalance-shards') };
    await ensureTopics(createKafkaClient({ brokers, clientId: 'evict-test-admin', logger }), [group.topic], 2, 1);
    const a: Seen = { memberIds: [], shards: [] };
    const groupA = await join('a', 'a/start-1', a, group);
    const b = await joinInChild('b', 'b/start-1', group);
    // a's description of the group (taken while Stable, after the rebalance b's join made) names b.
    await expect.poll(() => [a.shards.length, a.nodes], { timeout: 30_000, interval: 100 }).toEqual([1, ['a', 'b']]);

    b.kill('SIGKILL');
    await new Promise((resolve) => b.once('exit', resolve));
    const c: Seen = { memberIds: [], shards: [] };
    // Not awaited: kafkajs' run resolves once the member's first join is done, and that join is the one held up.
    const joiningC = join('c', 'c/start-1', c, group);
    joining.push(joiningC);
    // Awaited below; if the test fails first, afterAll settles it (no unhandled rejection meanwhile).
    joiningC.catch(() => undefined);
    // c's join starts a rebalance that waits for b to rejoin: it never will, and its 30 s session runs on.
    const admin = createKafkaClient({ brokers, clientId: 'evict-test-describer', logger }).admin();
    await admin.connect();
    try {
      const state = async () => (await admin.describeGroups([group.groupId])).groups[0]?.state;
      await expect.poll(state, { timeout: 10_000, interval: 50 }).toBe('PreparingRebalance');

      const evictedAt = Date.now();
      expect(await groupA.evictStart('b/start-1')).toBe(1);
      await joiningC;
      await expect.poll(() => [a.shards.length, c.shards.length], { timeout: 10_000, interval: 50 }).toEqual([1, 1]);
      expect(await state()).toBe('Stable');
      // Far inside b's 30 s session: only the eviction let the rebalance end.
      expect(Date.now() - evictedAt).toBeLessThan(10_000);
    } finally {
      await admin.disconnect();
    }
  }, 60_000);
});
