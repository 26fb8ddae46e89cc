import { createRequire } from 'node:module';
import { Partitioners, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { createKafkaClient } from '../../adapters/kafka/client.js';
import { keepTransactionCoordinators } from '../../adapters/kafka/coordinator-cache.js';
import { quietIdleConnections } from '../../adapters/kafka/idle-connections.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { kafkaBrokersForTests, uniqueName } from '../helpers/kafka.js';

/**
 * The two fixes the project applies to kafkajs 2.2.4, against the test broker:
 * - adapters/kafka/coordinator-cache.ts: a transactional producer made from the project's client looks
 *   its coordinator up once, not before every AddPartitionsToTxn and EndTxn, and a producer fenced by
 *   another with its id still fails as fenced (the cache does not hide the fence);
 * - adapters/kafka/idle-connections.ts: an idle connection arms no timer of its own.
 */
describe('the transaction coordinator, kept between transactions', () => {
  const logger = createLogger('silent');
  const kafka = createKafkaClient({ brokers: kafkaBrokersForTests(), clientId: 'coordinator-cache-test', logger });
  const topic = uniqueName('coordinator-cache');
  const producers: Producer[] = [];
  const transactional = (transactionalId: string): Producer => {
    const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 8, initialRetryTime: 5, maxRetryTime: 1000 } });
    producers.push(producer);
    return producer;
  };
  const commitOne = async (producer: Producer, value: string): Promise<void> => {
    const transaction = await producer.transaction();
    try {
      await transaction.send({ topic, acks: -1, messages: [{ partition: 0, value }] });
      await transaction.commit();
    } catch (error) {
      if (transaction.isActive()) await transaction.abort().catch(() => undefined);
      throw error;
    }
  };

  beforeAll(async () => {
    await ensureTopics(kafka, [topic], 1, 1);
  });
  afterAll(async () => {
    await Promise.all(producers.map((producer) => producer.disconnect().catch(() => undefined)));
  });

  it('is in effect for the installed kafkajs', () => {
    expect(keepTransactionCoordinators()).toBe(true);
  });

  it('20 transactions look the coordinator up at most twice, and send one AddPartitionsToTxn and one EndTxn each', async () => {
    const producer = transactional(uniqueName('cached'));
    const requests: Record<string, number> = {};
    producer.on(producer.events.REQUEST, ({ payload }) => {
      requests[payload.apiName] = (requests[payload.apiName] ?? 0) + 1;
    });
    await producer.connect();
    await commitOne(producer, 'first');
    for (const name of Object.keys(requests)) delete requests[name];
    for (let index = 0; index < 20; index += 1) {
      await commitOne(producer, `value-${index}`);
      // The journal's pause after a commit (journal-of-record.ts): the markers land before the next one.
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // kafkajs 2.2.4 alone: 2 lookups per transaction (40 here).
    expect(requests.GroupCoordinator ?? 0).toBeLessThanOrEqual(2);
    expect(requests.EndTxn).toBe(20);
    expect(requests.Produce).toBe(20);
    expect(requests.AddPartitionsToTxn).toBeGreaterThanOrEqual(20);
  });

  it('a producer fenced by a newer one with its id still fails its next transaction', async () => {
    const id = uniqueName('fenced');
    const old = transactional(id);
    await old.connect();
    await commitOne(old, 'before the fence');
    const newer = transactional(id);
    await newer.connect();
    await commitOne(newer, 'the new owner');
    await expect(commitOne(old, 'after the fence')).rejects.toThrow();
    await commitOne(newer, 'still the owner');
  });
});

describe('an idle broker connection', () => {
  it('arms no timer while nothing waits in its queue (kafkajs alone polls it every millisecond)', async () => {
    expect(quietIdleConnections()).toBe(true);
    const kafka = createKafkaClient({ brokers: kafkaBrokersForTests(), clientId: 'idle-connections-test', logger: createLogger('silent') });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as { prototype: { checkPendingRequests: () => void } };
    let checks = 0;
    const original = RequestQueue.prototype.checkPendingRequests;
    RequestQueue.prototype.checkPendingRequests = function (this: unknown) {
      checks += 1;
      original.call(this);
    };
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Without the fix: one check per millisecond or so (~300 here).
      expect(checks).toBeLessThan(10);
    } finally {
      RequestQueue.prototype.checkPendingRequests = original;
      await producer.disconnect();
    }
  });
});
