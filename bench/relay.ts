/**
 * The event relay against a real Kafka broker: how fast a backlog drains, and how long a committed
 * event takes to reach Kafka and a consumer under steady load. Run by `npm run bench -- --only relay`.
 */
import { ALL_TOPICS } from '../actors/contract/event-catalog.js';
import { startEventRelay } from '../actors/event-relay/relay.js';
import { SqliteCheckpointStore } from '../persistence/checkpoints.js';
import { SqliteJournalEngine } from '../persistence/journal-engine.js';
import { openDatabase } from '../persistence/sqlite.js';
import { startActorSystem } from '../runtime/kernel/actor-system.js';
import { ensureTopics } from '../adapters/kafka/admin.js';
import { createKafkaClient } from '../adapters/kafka/client.js';
import { type RecordPublisher } from '../actors/event-relay/publisher.js';
import { ResilientProducer } from '../adapters/kafka/producer.js';
import { createLogger } from '../runtime/ground/logger.js';
import { byCloudEventId, collectRecords, journalEventWriter, testKafkaClient, testTopicPrefix, type TestEvent } from '../test/helpers/kafka.js';
import { tempDbFile } from '../test/helpers/temp-db.js';
import { waitFor } from '../test/helpers/wait.js';

/**
 * The relay's speed against the real broker, printed for the README. The bounds asserted are far
 * below what a 2-core machine does, so only a real regression (a per-record round trip, polling
 * instead of waking) fails them.
 */
const logger = createLogger('silent');
const cleanups: (() => Promise<void> | void)[] = [];
async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

async function setUp(brokers: readonly string[], label: string) {
  const temp = tempDbFile();
  // NORMAL: the relay is measured here, not fsync; FULL would make each commit of the lag test wait on the disk.
  const db = openDatabase(temp.file, { synchronous: 'NORMAL' });
  const journal = new SqliteJournalEngine(db);
  const system = startActorSystem(journal, logger);
  cleanups.push(temp.cleanup, () => void db.close(), () => journal.close(), () => system.stop());
  const kafka = createKafkaClient({ brokers: brokers, clientId: `relay-${label}`, logger });
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

export interface RelayBenchResult {
  readonly backlog: { readonly events: number; readonly seconds: number; readonly eventsPerSecond: number };
  readonly steadyLoad: {
    readonly eventsPerSecond: number;
    /** What the 10 ms timer really delivered on this machine. */
    readonly achievedEventsPerSecond: number;
    readonly events: number;
    readonly commitToAckMs: { readonly p50: number; readonly p99: number };
    readonly commitToConsumerMs: { readonly p50: number; readonly p99: number; readonly max: number };
  };
}

/** Catch-up of a backlog (50 000 by default), then commit → Kafka ack → consumer lag at a steady rate (5000 events/s). */
export interface RelayBenchOptions {
  /** Public events in the backlog (as many private rows again). */
  readonly backlog?: number;
  /** Steady load for the lag figure. */
  readonly eventsPerSecond?: number;
  readonly seconds?: number;
}

export async function runRelayBench(brokers: readonly string[], options: RelayBenchOptions = {}): Promise<RelayBenchResult> {
  try {
    // Warm-up, untimed: a small backlog through a relay of its own (JIT, producer connections, topic metadata).
    await measureBacklog(brokers, 2000, 'warmup');
    await cleanUp();
    const backlog = await measureBacklog(brokers, options.backlog ?? 50_000, 'throughput');
    await cleanUp();
    const steadyLoad = await measureLag(brokers, options.eventsPerSecond ?? 5000, options.seconds ?? 5);
    return { backlog, steadyLoad };
  } finally {
    await cleanUp();
  }
}

async function measureBacklog(brokers: readonly string[], total: number, label: string): Promise<RelayBenchResult['backlog']> {
  const { write, start, endOffsets } = await setUp(brokers, label);
  for (let from = 0; from < total; from += 2000) {
    // Every other row private, as in the real journal: the relay's query skips them through the partial index.
    const events: TestEvent[] = [];
    for (let i = from; i < from + 2000; i += 1) events.push(confirmed(i), { key: `vehicle/v-${i % 500}`, type: 'TelemetryNoted' });
    await write(events);
  }
  const started = performance.now();
  const relay = start();
  await waitFor(() => relay.lag() === 0, { what: 'the backlog in Kafka', timeoutMs: 100_000, intervalMs: 5 });
  const seconds = (performance.now() - started) / 1000;
  const inKafka = await endOffsets();
  if (inKafka !== total) throw new Error(`expected ${total} records in Kafka, found ${inKafka}`);
  return { events: total, seconds: Math.round(seconds * 100) / 100, eventsPerSecond: Math.round(total / seconds) };
}

async function measureLag(brokers: readonly string[], eventsPerSecond: number, seconds: number): Promise<RelayBenchResult['steadyLoad']> {
  const { write, start, topics, ackedAt } = await setUp(brokers, 'lag');
  start();
  const consumer = await collectRecords(testKafkaClient(brokers), topics);
  cleanups.push(() => consumer.stop());
  // eventsPerSecond for `seconds`: a commit every 10 ms of eventsPerSecond / 100 events.
  const perCommit = Math.max(1, Math.round(eventsPerSecond / 100));
  const total = eventsPerSecond * seconds;
  const committedAt = new Map<string, number>();
  let next = 0;
  const loadStarted = performance.now();
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const events: TestEvent[] = [];
      for (let i = 0; i < perCommit && next < total; i += 1, next += 1) events.push(confirmed(next));
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
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const byId = byCloudEventId(await consumer.waitForCount(total, 60_000));
  const sorted = (values: number[]): number[] => values.sort((a, b) => a - b);
  const lags = sorted([...byId].map(([id, [record]]) => record!.receivedAt - committedAt.get(id)!));
  const ackLags = sorted([...committedAt].map(([id, at]) => ackedAt.get(id)! - at));
  return {
    eventsPerSecond,
    achievedEventsPerSecond: Math.round(total / loadSeconds),
    events: byId.size,
    commitToAckMs: { p50: percentile(ackLags, 50), p99: percentile(ackLags, 99) },
    commitToConsumerMs: { p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags[lags.length - 1]! },
  };
}
