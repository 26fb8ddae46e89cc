import { createKafkaClient } from '../../adapters/kafka/client.js';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { journalTopic, journalTopicConfigs } from '../../adapters/kafka/journal-of-record.js';
import { SHARD_OWNERS_TOPIC_CONFIGS, shardOwnersTopic } from '../../adapters/kafka/shard-owners.js';
import type { Logger } from '../../runtime/ground/logger.js';
import { ALL_TOPICS } from '../../actors/contract/event-catalog.js';
import { ConfigError, type ClusterConfig } from '../config.js';

/** The cluster's shard topic: one partition per shard; the shard group (server/cluster/shard-placement.ts) places the shards over it. */
export const shardsTopic = (clusterName: string): string => `${clusterName}.shards`;

export interface ShardCountCheck {
  readonly cluster: ClusterConfig;
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly replicationFactor: number;
  /** Partitions of the public event topics (KAFKA_PARTITIONS), as the relay creates them in a single process. */
  readonly eventPartitions: number;
  /** The journal topic's min.insync.replicas; null: the broker's default. */
  readonly minInsyncReplicas: number | null;
  readonly shardCount: number;
  readonly logger: Logger;
}

/**
 * FLEET_SHARDS is fixed with the cluster: the first node creates `<cluster>.shards` and the journal of
 * record `<cluster>.journal` with one partition per shard, and every node after it must have the same count, or it would place bookings and vehicles
 * on other shards than its peers. A node with another count is refused by name before it starts a shard.
 */
export async function agreeOnShardCount(check: ShardCountCheck): Promise<void> {
  const topic = shardsTopic(check.cluster.name);
  const kafka = createKafkaClient({ brokers: check.brokers, clientId: `${check.clientId}-${check.cluster.node.id}`, logger: check.logger });
  await ensureTopics(kafka, [topic], check.shardCount, check.replicationFactor);
  await ensureTopics(kafka, [journalTopic(check.cluster.name)], check.shardCount, check.replicationFactor, undefined, journalTopicConfigs(check.minInsyncReplicas));
  // The routing table (adapters/kafka/shard-owners.ts): one partition, so one reader sees every shard's record in order.
  await ensureTopics(kafka, [shardOwnersTopic(check.cluster.name)], 1, check.replicationFactor, undefined, SHARD_OWNERS_TOPIC_CONFIGS);
  // The public event topics, `<cluster>.booking.created`, …: the shards' journal producers write them
  // in their transactions (the outbox) and never create a topic themselves.
  await ensureTopics(kafka, ALL_TOPICS.map((name) => `${check.cluster.name}.${name}`), check.eventPartitions, check.replicationFactor);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = metadata.topics[0]?.partitions.length ?? 0;
    if (partitions !== check.shardCount) {
      throw new ConfigError('FLEET_SHARDS', `is ${check.shardCount}, but cluster ${check.cluster.name} has ${partitions} shards (the partitions of Kafka topic ${topic}): every node must run with the cluster's count`);
    }
  } finally {
    await admin.disconnect();
  }
}
