import { createKafkaClient } from '../../adapters/kafka/client.js';
import { joinShardGroup } from '../../adapters/kafka/shard-group.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { placeShards } from '../../server/cluster/sticky-placement.js';

/**
 * A shard-group member in a process of its own, for tests that must kill one with SIGKILL (no leave,
 * no closed socket the coordinator could act on before its session runs out):
 * `node --import tsx test/helpers/group-member-process.ts <brokers> <groupId> <topic> <node> <start> <sessionMs>`.
 * It prints `assigned <memberId> <shards,…>` on every assignment and stays in the group until killed.
 */
const [brokers, groupId, topic, node, start, sessionMs] = process.argv.slice(2);
if (!brokers || !groupId || !topic || !node || !start || !sessionMs) throw new Error('usage: <brokers> <groupId> <topic> <node> <start> <sessionMs>');

const logger = createLogger('silent');
let held: readonly number[] = [];
await joinShardGroup({
  kafka: createKafkaClient({ brokers: brokers.split(','), clientId: `group-member-${node}`, logger }),
  groupId,
  topic,
  node,
  url: `http://127.0.0.1:1/${node}`,
  start,
  held: () => held,
  known: () => [node],
  place: placeShards,
  onAssignment: (shards, memberId) => {
    held = shards;
    process.stdout.write(`assigned ${memberId} ${shards.join(',')}\n`);
  },
  onMembers: () => {},
  sessionTimeoutMs: Number(sessionMs),
  heartbeatIntervalMs: 300,
  logger,
});
