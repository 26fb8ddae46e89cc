import type { CheckpointStore, JournalReader } from '../../persistence/journal-types.js';
import type { ActorSystem } from '../../runtime/actor-system.js';
import { createKafkaClient } from '../../runtime/kafka/client.js';
import { ResilientProducer, type ProducerConnectionState } from '../../runtime/kafka/producer.js';
import type { Logger } from '../../runtime/logger.js';
import { ALL_TOPICS } from './catalog.js';
import { startEventRelay, type EventRelay } from './relay.js';

/** The `kafka` part of FleetConfig when KAFKA_BROKERS is set. */
export interface KafkaRelaySettings {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly partitions: number;
  readonly replicationFactor: number;
}

export interface KafkaEventRelay extends EventRelay {
  /** Producer side of /health: connected, last error, rebuilds. */
  connectionState(): ProducerConnectionState;
}

/**
 * The event relay with a real Kafka behind it, as runtime/main.ts starts it when KAFKA_BROKERS is
 * set. It does not wait for Kafka: topics are created and the producer connects on the first
 * publish, retried with backoff, so the service starts (and keeps its events in the journal) while
 * Kafka is down. `stop()` lets the batch in flight finish, then disconnects the producer.
 */
export function startKafkaEventRelay(options: {
  readonly kafka: KafkaRelaySettings;
  readonly system: ActorSystem;
  readonly journal: JournalReader;
  readonly checkpoints: CheckpointStore;
  readonly logger: Logger;
  /** Tests only: isolates their topics on a shared broker. */
  readonly topicPrefix?: string;
}): KafkaEventRelay {
  const { kafka: settings, logger, topicPrefix = '' } = options;
  const producer = new ResilientProducer(createKafkaClient({ brokers: settings.brokers, clientId: settings.clientId, logger }), logger, {
    topics: { names: ALL_TOPICS.map((topic) => `${topicPrefix}${topic}`), partitions: settings.partitions, replicationFactor: settings.replicationFactor },
  });
  const relay = startEventRelay({ system: options.system, journal: options.journal, checkpoints: options.checkpoints, producer, logger, topicPrefix });
  return {
    lag: () => relay.lag(),
    stats: () => relay.stats(),
    connectionState: () => producer.connectionState(),
    stop: async () => {
      await relay.stop();
      await producer.disconnect();
    },
  };
}
