import { Partitioners, type Kafka, type Message, type Producer, type TopicMessages } from 'kafkajs';
import type { Logger } from '../../runtime/ground/logger.js';
import { ensureTopics } from './admin.js';
import type { KafkaRecord } from '../../actors/contract/event-record.js';
import type { ProducerConnectionState, RecordPublisher } from '../../actors/event-relay/publisher.js';

export interface ResilientProducerOptions {
  /** Broker-side wait for the in-sync replicas' acknowledgement. */
  readonly ackTimeoutMs?: number;
  /**
   * Topics to create (if missing) before the first send. Done here rather than at start-up so that
   * the process starts while Kafka is down, and the first successful connection creates them.
   */
  readonly topics?: { readonly names: readonly string[]; readonly partitions: number; readonly replicationFactor: number };
}

/**
 * An idempotent kafkajs producer that survives a broker outage.
 *
 * Idempotent (`acks: -1`, one request in flight): the broker drops a batch that a retry delivers
 * twice, and records of one partition are written in the order they were sent.
 *
 * kafkajs gives an idempotent producer unlimited retries, so a send during an outage would hang
 * instead of failing, and a kafkajs producer does not always reconnect after its broker went away
 * (its connections and producer-id state go stale). So retries are capped (a few seconds) and, after
 * a failed send, the kafkajs producer is discarded and a new one (new producer id) is built for the
 * next attempt. The price: a batch that was written but whose acknowledgement was lost is written
 * again by the new producer, which is why delivery is at-least-once and consumers de-duplicate on
 * `ce_id` (docs/contract.md).
 *
 * One batch at a time: its only user, the event relay, sends the next batch after the previous one
 * settled.
 */
export class ResilientProducer implements RecordPublisher {
  private producer: Producer | null = null;
  private connecting: Promise<Producer> | null = null;
  private connected = false;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  private lastAckAt: number | null = null;
  private rebuilds = 0;
  private closed = false;
  private readonly log: Logger;
  private readonly ackTimeoutMs: number;
  private topicsReady: boolean;

  constructor(
    private readonly kafka: Kafka,
    logger: Logger,
    private readonly options: ResilientProducerOptions = {},
  ) {
    this.log = logger.child({ component: 'kafka-producer' });
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.topicsReady = options.topics === undefined;
  }

  /** Connects now instead of on the first send; rejects when Kafka cannot be reached. */
  async connect(): Promise<void> {
    await this.current();
  }

  async sendBatch(records: readonly KafkaRecord[]): Promise<void> {
    if (records.length === 0) return;
    const producer = await this.current();
    try {
      await producer.sendBatch({ acks: -1, timeout: this.ackTimeoutMs, topicMessages: byTopic(records) });
    } catch (error) {
      await this.discard(producer, error);
      throw error;
    }
    this.connected = true;
    this.lastAckAt = Date.now();
  }

  connectionState(): ProducerConnectionState {
    return {
      connected: this.connected,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      lastAckAt: this.lastAckAt,
      rebuilds: this.rebuilds,
    };
  }

  async disconnect(): Promise<void> {
    this.closed = true;
    const producer = this.producer;
    this.producer = null;
    this.connected = false;
    if (producer) await producer.disconnect();
  }

  /** One producer however many callers ask at once (the start-up connect and the relay's first send). */
  private current(): Promise<Producer> {
    if (this.closed) return Promise.reject(new Error('the Kafka producer is closed'));
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= this.build().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async build(): Promise<Producer> {
    if (!this.topicsReady) await this.ensureTopics();
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      // Java-compatible murmur2 hashing: a key lands on the same partition as with any Java client.
      createPartitioner: Partitioners.DefaultPartitioner,
      // Topics are created up front with their partition count (ensureTopics); a typo'd topic must
      // fail loudly, not appear with the broker's default of one partition.
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    });
    try {
      await producer.connect();
    } catch (error) {
      await this.discard(producer, error);
      throw error;
    }
    if (this.closed) {
      // disconnect() ran while this connect was under way: nobody would ever close this one.
      await producer.disconnect();
      throw new Error('the Kafka producer is closed');
    }
    this.producer = producer;
    this.connected = true;
    return producer;
  }

  private async ensureTopics(): Promise<void> {
    const { names, partitions, replicationFactor } = this.options.topics!;
    try {
      const created = await ensureTopics(this.kafka, names, partitions, replicationFactor);
      if (created.length > 0) this.log.info({ topics: created, partitions, replicationFactor }, 'created Kafka topics');
    } catch (error) {
      this.recordFailure(error);
      throw error;
    }
    this.topicsReady = true;
  }

  private recordFailure(error: unknown): void {
    this.connected = false;
    this.lastError = error instanceof Error ? error.message : String(error);
    this.lastErrorAt = Date.now();
  }

  private async discard(producer: Producer, error: unknown): Promise<void> {
    this.recordFailure(error);
    if (this.producer === producer) this.producer = null;
    this.rebuilds += 1;
    // debug: the caller (the relay) logs the failure itself, with what it does about it.
    this.log.debug({ err: error, rebuilds: this.rebuilds }, 'Kafka producer failed; a new one is built for the next attempt');
    // A stale producer's disconnect can itself wait on dead sockets: bounded, and its result ignored.
    await Promise.race([producer.disconnect().catch(() => undefined), delay(2000)]);
  }
}

/** The records grouped by topic, in order, as kafkajs' sendBatch takes them (the journal of record's outbox sends them the same way). */
export function byTopic(records: readonly KafkaRecord[]): TopicMessages[] {
  const topics = new Map<string, Message[]>();
  for (const record of records) {
    let messages = topics.get(record.topic);
    if (!messages) topics.set(record.topic, (messages = []));
    // kafkajs' IHeaders is mutable; ours are read-only and never changed after this point.
    messages.push({ key: record.key, value: record.value, headers: record.headers as Record<string, string>, timestamp: record.timestamp });
  }
  return [...topics].map(([topic, messages]) => ({ topic, messages }));
}

const delay = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
