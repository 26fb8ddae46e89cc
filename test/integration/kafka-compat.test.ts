import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { createKafkaClient } from '../../adapters/kafka/client.js';
import { ResilientProducer } from '../../adapters/kafka/producer.js';
import type { KafkaRecord } from '../../actors/contract/event-record.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { collectRecords, consumeRecords, kafkaBrokersForTests, testGroupId, testKafkaClient, uniqueName } from '../helpers/kafka.js';

/**
 * kafkajs 2.2.4 against the Kafka that scripts/kafka.mjs runs (4.1, which dropped the oldest protocol
 * versions, KIP-896): what this codebase uses of it must keep working on an upgrade of either.
 */
describe('kafkajs against the test broker', () => {
  const logger = createLogger('silent');
  let kafka: Kafka;

  beforeAll(() => {
    kafka = createKafkaClient({ brokers: kafkaBrokersForTests(), clientId: 'compat-test', logger });
  });

  it('admin: describes the single-node cluster, creates topics once, reports their partitions', async () => {
    const topic = uniqueName('compat-admin');
    const admin = kafka.admin();
    await admin.connect();
    try {
      const cluster = await admin.describeCluster();
      expect(cluster.brokers).toHaveLength(1);
      expect(cluster.controller).toBe(cluster.brokers[0]!.nodeId);

      expect(await ensureTopics(kafka, [topic, topic], 3, 1)).toEqual([topic]);
      expect(await ensureTopics(kafka, [topic], 3, 1)).toEqual([]);
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(metadata.topics[0]!.partitions.map((partition) => partition.partitionId).sort()).toEqual([0, 1, 2]);
      expect(metadata.topics[0]!.partitions.every((partition) => partition.leader === cluster.brokers[0]!.nodeId)).toBe(true);
    } finally {
      await admin.disconnect();
    }
  });

  describe('idempotent producer and consumer group', () => {
    const topicA = uniqueName('compat-a');
    const topicB = uniqueName('compat-b');
    let producer: ResilientProducer;

    beforeAll(async () => {
      producer = new ResilientProducer(kafka, logger, { topics: { names: [topicA, topicB], partitions: 3, replicationFactor: 1 } });
      await producer.connect();
    });
    afterAll(async () => {
      await producer?.disconnect();
    });

    it('creates its topics on connect, and sendBatch (acks = all) delivers records with keys and headers to a group', async () => {
      const records: KafkaRecord[] = Array.from({ length: 30 }, (_, i) => ({
        topic: i % 2 === 0 ? topicA : topicB,
        key: `k-${i % 5}`,
        value: JSON.stringify({ n: i }),
        headers: { ce_id: `id-${i}`, 'content-type': 'application/json' },
        timestamp: String(1_700_000_000_000 + i),
      }));
      await producer.sendBatch(records);
      expect(producer.connectionState()).toMatchObject({ connected: true, lastError: null, rebuilds: 0 });

      const received = await consumeRecords(testKafkaClient(), [topicA, topicB], 30);
      expect(received).toHaveLength(30);
      expect(new Set(received.map((record) => record.headers.ce_id))).toEqual(new Set(records.map((record) => record.headers.ce_id)));
      const byId = new Map(received.map((record) => [record.headers.ce_id, record]));
      for (const sent of records) {
        const got = byId.get(sent.headers.ce_id)!;
        expect(got).toMatchObject({ topic: sent.topic, key: sent.key, value: sent.value, headers: sent.headers });
      }
      // Same key, same partition (per topic): the basis of per-key order.
      const partitionsOfKey = new Map<string, Set<number>>();
      for (const record of received) {
        const id = `${record.topic}/${record.key}`;
        partitionsOfKey.set(id, (partitionsOfKey.get(id) ?? new Set()).add(record.partition));
      }
      for (const partitions of partitionsOfKey.values()) expect(partitions.size).toBe(1);
    });

    it('keeps the send order of one partition, and the group commits its offsets', async () => {
      const groupId = testGroupId('compat-order');
      const values = Array.from({ length: 200 }, (_, i) => String(i));
      // Four batches back to back, as the relay sends them.
      for (let batch = 0; batch < 4; batch += 1) {
        await producer.sendBatch(values.slice(batch * 50, batch * 50 + 50).map((value) => ({ topic: topicA, key: 'one-key', value, headers: {} })));
      }
      const collector = await collectRecords(testKafkaClient(), [topicA], groupId);
      try {
        const received = await collector.waitUntil((seen) => seen.filter((record) => record.key === 'one-key').length === 200, '200 one-key records');
        expect(received.filter((record) => record.key === 'one-key').map((record) => record.value)).toEqual(values);
      } finally {
        await collector.stop();
      }
      const admin = kafka.admin();
      await admin.connect();
      try {
        const [offsets] = await admin.fetchOffsets({ groupId, topics: [topicA] });
        const committed = offsets!.partitions.reduce((sum, partition) => sum + Math.max(0, Number(partition.offset)), 0);
        expect(committed).toBe(215); // 15 records of the first test + 200
      } finally {
        await admin.disconnect();
      }
    });
  });

  it('fails a send to an unreachable broker within seconds instead of hanging, and counts the rebuild', async () => {
    const unreachable = createKafkaClient({ brokers: ['127.0.0.1:1'], clientId: 'compat-unreachable', logger, connectionTimeoutMs: 200 });
    const producer = new ResilientProducer(unreachable, logger);
    // Settles at all (the test's timeout is the bound): kafkajs alone would retry an idempotent send forever.
    await expect(producer.sendBatch([{ topic: 'nowhere', key: 'k', value: 'v', headers: {} }])).rejects.toThrow();
    expect(producer.connectionState()).toMatchObject({ connected: false, rebuilds: 1 });
    expect(producer.connectionState().lastError).toMatch(/connect|ECONNREFUSED/i);
  });
});
