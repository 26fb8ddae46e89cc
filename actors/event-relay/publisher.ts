import type { KafkaRecord } from '../contract/event-record.js';

/** The event relay's outbound port: adapters/kafka/producer.ts is the Kafka implementation. */

/** What /health and /metrics show about the link to Kafka. */
export interface ProducerConnectionState {
  /** True after a successful connect or acknowledged batch, until the next failure. */
  readonly connected: boolean;
  readonly lastError: string | null;
  /** Epoch milliseconds. */
  readonly lastErrorAt: number | null;
  readonly lastAckAt: number | null;
  /** How many times the kafkajs producer was thrown away and built again after a failure. */
  readonly rebuilds: number;
}

/** The port the event relay publishes through; tests substitute their own. */
export interface RecordPublisher {
  /** Resolves once Kafka acknowledged every record (acks = all in-sync replicas); rejects otherwise. */
  sendBatch(records: readonly KafkaRecord[]): Promise<void>;
  connectionState(): ProducerConnectionState;
}
