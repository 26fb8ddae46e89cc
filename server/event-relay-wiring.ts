import { ALL_TOPICS } from '../actors/contract/event-catalog.js';
import { startEventRelay, type EventRelay } from '../actors/event-relay/relay.js';
import type { FleetConfig } from './config.js';
import { createKafkaClient } from '../adapters/kafka/client.js';
import { ResilientProducer } from '../adapters/kafka/producer.js';

export type { EventRelay } from '../actors/event-relay/relay.js';

/**
 * A shard's event relay on its own Kafka producer, or null without KAFKA_BROKERS (events then stay in
 * the journal, served by GET /events). Each shard publishes its own journal: one aggregate lives on
 * one shard, so per-key order holds, and `ce_id` (`<kind>/<id>:<seq>`) is unique across shards.
 */
export function startEventRelayOnKafka(
  config: FleetConfig,
  parts: Omit<Parameters<typeof startEventRelay>[0], 'producer'> & { topicPrefix: string; clientId: string },
): EventRelay | null {
  if (config.kafka.mode !== 'kafka') return null;
  const kafka = createKafkaClient({ brokers: config.kafka.brokers, clientId: parts.clientId, logger: parts.logger.child({ component: 'kafka' }) });
  const producer = new ResilientProducer(kafka, parts.logger, {
    topics: { names: ALL_TOPICS.map((topic) => `${parts.topicPrefix}${topic}`), partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor },
  });
  const relay = startEventRelay({ ...parts, producer });
  // Topics exist from start-up on (consumers can subscribe before the first event), and a Kafka that
  // is down shows on /health at once; the relay retries on its own when this fails.
  producer.connect().catch((error: unknown) => parts.logger.warn({ err: error }, 'Kafka not reachable at start-up; events wait in the journal'));
  return {
    lag: () => relay.lag(),
    stats: () => relay.stats(),
    stop: async () => {
      await relay.stop();
      await producer.disconnect();
    },
  };
}
