import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import type { Logger } from '../../runtime/ground/logger.js';

/**
 * The owner records of a cluster (docs/cluster.md, "Routing"): a compacted topic, key = shard, value
 * `{shard, owner, url, epoch}`. A shard's owner writes its record in the first transaction of its
 * transactional producer, together with its owner mark, so only a live owner that fenced the previous
 * one can write it. The epoch is the offset of that owner mark in the shard's journal partition: it
 * grows with every new owner. Every node reads the topic from its start and routes by it.
 */
export const shardOwnersTopic = (clusterName: string): string => `${clusterName}.shard-owners`;

/** Compacted: a shard's latest record is all that matters, and it is never dropped. */
export const SHARD_OWNERS_TOPIC_CONFIGS: Readonly<Record<string, string>> = { 'cleanup.policy': 'compact', 'retention.ms': '-1' };

export interface OwnerRecord {
  readonly shard: number;
  readonly owner: string;
  readonly url: string;
  readonly epoch: number;
}

export const encodeOwnerRecord = (record: OwnerRecord): { key: string; value: string } => ({ key: String(record.shard), value: JSON.stringify(record) });

export function decodeOwnerRecord(value: Buffer | null): OwnerRecord | null {
  if (value === null) return null;
  try {
    const parsed = JSON.parse(value.toString('utf8')) as Partial<OwnerRecord>;
    if (!Number.isInteger(parsed.shard) || typeof parsed.owner !== 'string' || typeof parsed.url !== 'string' || !Number.isInteger(parsed.epoch)) return null;
    return { shard: parsed.shard as number, owner: parsed.owner, url: parsed.url, epoch: parsed.epoch as number };
  } catch {
    return null;
  }
}

export interface OwnerRecordsOptions {
  readonly kafka: Kafka;
  readonly clusterName: string;
  readonly node: string;
  readonly onRecord: (record: OwnerRecord) => void;
  readonly logger: Logger;
}

/** Below the follower's 1 s heartbeat interval: kafkajs heartbeats between fetches. */
const OWNER_FETCH_WAIT_MS = 900;

/**
 * Follows the owner records, read_committed (kafkajs' default), from the topic's start: a group of
 * its own per node start (kafkajs has no manual assign, #373), deleted when the node stops.
 */
export async function followOwnerRecords(options: OwnerRecordsOptions): Promise<{ close(): Promise<void> }> {
  const log = options.logger.child({ component: 'owner-records' });
  const groupId = `${options.clusterName}.owners.${options.node}.${randomUUID().slice(0, 8)}`;
  // A fetch is answered as soon as a record is there; the wait sets only how often an idle follower asks
  // again (at 100 ms, three nodes' followers were 30 of the idle broker's ~55 requests a second).
  const consumer = options.kafka.consumer({ groupId, maxWaitTimeInMs: OWNER_FETCH_WAIT_MS, sessionTimeout: 10_000, heartbeatInterval: 1000, allowAutoTopicCreation: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [shardOwnersTopic(options.clusterName)], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      const record = decodeOwnerRecord(message.value);
      if (record) options.onRecord(record);
      else log.warn({ offset: message.offset }, 'owner record not understood; skipped');
    },
  });
  return {
    close: async () => {
      await consumer.disconnect().catch(() => undefined);
      const admin = options.kafka.admin();
      try {
        await admin.connect();
        await admin.deleteGroups([groupId]);
      } catch (error) {
        log.debug({ err: error, groupId }, 'owner records group not deleted');
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
  };
}
