import { afterEach, describe, expect, it } from 'vitest';
import { ALL_TOPICS } from '../../actors/event-relay/catalog.js';
import { startEventRelay } from '../../actors/event-relay/relay.js';
import { SqliteCheckpointStore } from '../../persistence/checkpoints.js';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { openDatabase } from '../../persistence/sqlite.js';
import { startActorSystem } from '../../runtime/actor-system.js';
import { ensureTopics } from '../../runtime/kafka/admin.js';
import { createKafkaClient } from '../../runtime/kafka/client.js';
import { ResilientProducer, type RecordPublisher } from '../../runtime/kafka/producer.js';
import { createLogger } from '../../runtime/logger.js';
import { byCloudEventId, collectRecords, journalEventWriter, kafkaBrokersForTests, testKafkaClient, testTopicPrefix, type TestEvent } from '../helpers/kafka.js';
import { tempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The relay's speed against the real broker, printed for the README. The bounds asserted are far
 * below what a 2-core machine does, so only a real regression (a per-record round trip, polling
 * instead of waking) fails them.
 */
const logger = createLogger('silent');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(label: string) {
  const temp = tempDbFile();
  // NORMAL: the relay is measured here, not fsync; FULL would make each commit of the lag test wait on the disk.
  const db = openDatabase(temp.file, { synchronous: 'NORMAL' });
  const journal = new SqliteJournalEngine(db);
  const system = startActorSystem(journal, logger);
  cleanups.push(temp.cleanup, () => void db.close(), () => journal.close(), () => system.stop());
  const kafka = createKafkaClient({ brokers: kafkaBrokersForTests(), clientId: `relay-${label}`, logger });
  const topicPrefix = testTopicPrefix(label);
  const topics = ALL_TOPICS.map((topic) => `${topicPrefix}${topic}`);
  await ensureTopics(kafka, topics, 3, 1);
  const producer = new ResilientProducer(kafka, logger);
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  /** When Kafka acknowledged each ce_id (the relay's side of the end-to-end lag). */
  const ackedAt = new Map<string, number>();
  const publisher: RecordPublisher = {
    sendBatch: async (records) => {
      await producer.sendBatch(records);
      const now = Date.now();
      for (const record of records) ackedAt.set(record.headers.ce_id!, now);
    },
    connectionState: () => producer.connectionState(),
  };
  const start = () => {
    const relay = startEventRelay({ system, journal, checkpoints: new SqliteCheckpointStore(db), producer: publisher, logger, topicPrefix });
    cleanups.push(() => relay.stop());
    return relay;
  };
  const endOffsets = async (): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      let total = 0;
      for (const topic of topics) for (const partition of await admin.fetchTopicOffsets(topic)) total += Number(partition.high);
      return total;
    } finally {
      await admin.disconnect();
    }
  };
  return { journal, topics, start, endOffsets, ackedAt, write: journalEventWriter(journal) };
}

/** A booking's confirmation as the booking actor would persist it (~300 bytes of JSON). */
const confirmed = (i: number): TestEvent => ({
  key: `booking/bk-${i.toString(36).padStart(8, '0')}`,
  type: 'BookingConfirmed',
  data: {
    bookingId: `bk-${i.toString(36).padStart(8, '0')}`,
    vehicleId: `v-${i % 500}`,
    customerId: `c-${i % 2000}`,
    authorization: { id: `auth-${i}`, amount: 1500, currency: 'EUR' },
    createdAt: new Date(1_700_000_000_000 + i).toISOString(),
    expiresAt: new Date(1_700_000_900_000 + i).toISOString(),
  },
  trace: { traceId: i.toString(16).padStart(32, '0'), spanId: i.toString(16).padStart(16, '0') },
});

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

describe('event relay throughput and lag', () => {
  it('catches up a backlog of 20 000 public events', { timeout: 120_000 }, async () => {
    const { write, start, endOffsets, journal } = await setUp('throughput');
    const total = 20_000;
    for (let from = 0; from < total; from += 2000) {
      // Every other row private, as in the real journal: the relay's query skips them through the partial index.
      const events: TestEvent[] = [];
      for (let i = from; i < from + 2000; i += 1) events.push(confirmed(i), { key: `vehicle/v-${i % 500}`, type: 'TelemetryNoted' });
      await write(events);
    }
    expect(journal.lastPosition()).toBe(2 * total);

    const started = performance.now();
    const relay = start();
    await waitFor(() => relay.lag() === 0, { what: 'the backlog in Kafka', timeoutMs: 100_000, intervalMs: 5 });
    const seconds = (performance.now() - started) / 1000;

    expect(relay.stats().published).toBe(total);
    expect(await endOffsets()).toBe(total);
    const rate = total / seconds;
    console.log(`relay throughput: ${total} events in ${seconds.toFixed(2)} s = ${Math.round(rate)} events/s (batch 500, acks all, idempotent, 3 partitions)`);
    expect(rate).toBeGreaterThan(1000);
  });

  it('gets a committed event to a consumer within milliseconds under steady load', { timeout: 120_000 }, async () => {
    const { write, start, topics, ackedAt } = await setUp('lag');
    start();
    const consumer = await collectRecords(testKafkaClient(), topics);
    cleanups.push(() => consumer.stop());

    // 2000 events/s for 3 s: 20 events per commit, a commit every 10 ms.
    const total = 6000;
    const committedAt = new Map<string, number>();
    let next = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        const events: TestEvent[] = [];
        for (let i = 0; i < 20 && next < total; i += 1, next += 1) events.push(confirmed(next));
        const batch = events.map((event) => `${event.key}:1`);
        write(events).then(() => {
          const now = Date.now();
          for (const id of batch) committedAt.set(id, now);
        }, reject);
        if (next >= total) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    const received = await consumer.waitForCount(total, 60_000);
    const byId = byCloudEventId(received);
    expect(byId.size).toBe(total);

    const sorted = (values: number[]): number[] => values.sort((a, b) => a - b);
    const lags = sorted([...byId].map(([id, [record]]) => record!.receivedAt - committedAt.get(id)!));
    const ackLags = sorted([...committedAt].map(([id, at]) => ackedAt.get(id)! - at));
    const p50 = percentile(lags, 50);
    const p99 = percentile(lags, 99);
    console.log(
      `lag at 2000 events/s: commit → Kafka ack p50 ${percentile(ackLags, 50)} ms, p99 ${percentile(ackLags, 99)} ms; ` +
        `commit → consumer p50 ${p50} ms, p99 ${p99} ms, max ${lags[lags.length - 1]} ms`,
    );
    expect(p99).toBeLessThan(2000);
  });
});
