import type { Kafka } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { ALL_TOPICS } from '../../actors/contract/event-catalog.js';
import { startEventRelay, type EventRelay, type EventRelayOptions } from '../../actors/event-relay/relay.js';
import { SqliteCheckpointStore } from '../../persistence/checkpoints.js';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import type { CheckpointStore } from '../../runtime/kernel/journal.js';
import { openDatabase } from '../../persistence/sqlite.js';
import { startActorSystem } from '../../runtime/kernel/actor-system.js';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { createKafkaClient } from '../../adapters/kafka/client.js';
import { ResilientProducer } from '../../adapters/kafka/producer.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { byCloudEventId, collectRecords, journalEventWriter, kafkaBrokersForTests, testKafkaClient, testTopicPrefix, type TestEvent } from '../helpers/kafka.js';
import { tempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('silent');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A journal in a temp SQLite file, an actor system, Kafka topics of the test's own, and a consumer reading them. */
async function setUp(label: string) {
  const temp = tempDbFile();
  const db = openDatabase(temp.file);
  const journal = new SqliteJournalEngine(db);
  const checkpoints = new SqliteCheckpointStore(db);
  const system = startActorSystem(journal, logger);
  cleanups.push(temp.cleanup, () => void db.close(), () => journal.close(), () => system.stop());

  const kafka: Kafka = createKafkaClient({ brokers: kafkaBrokersForTests(), clientId: `relay-test-${label}`, logger });
  const topicPrefix = testTopicPrefix(label);
  const topics = ALL_TOPICS.map((topic) => `${topicPrefix}${topic}`);
  await ensureTopics(kafka, topics, 3, 1);
  const producer = new ResilientProducer(kafka, logger);
  cleanups.push(() => producer.disconnect());
  const consumer = await collectRecords(testKafkaClient(), topics);
  cleanups.push(() => consumer.stop());

  const startRelay = (options: Partial<EventRelayOptions> = {}): EventRelay => {
    const relay = startEventRelay({ system, journal, checkpoints, producer, logger, topicPrefix, ...options });
    cleanups.push(() => relay.stop());
    return relay;
  };
  /** Sum of the topics' end offsets: every record ever written to them, read or not. */
  const recordsInKafka = async (): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      let total = 0;
      for (const topic of topics) {
        for (const partition of await admin.fetchTopicOffsets(topic)) total += Number(partition.high);
      }
      return total;
    } finally {
      await admin.disconnect();
    }
  };
  return { db, journal, checkpoints, system, kafka, producer, consumer, topicPrefix, startRelay, recordsInKafka, write: journalEventWriter(journal) };
}

const trace = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };

describe('event relay → Kafka', () => {
  it('publishes exactly the public events, with key, value and every CloudEvents header, then checkpoints', async () => {
    const { write, startRelay, consumer, topicPrefix, journal, checkpoints, recordsInKafka } = await setUp('publish');
    await write([
      { key: 'booking/b-1', type: 'BookingRequested', data: { bookingId: 'b-1' } },
      { key: 'vehicle/v-1', type: 'VehicleReserved', data: { bookingId: 'b-1' } },
      { key: 'booking/b-1', type: 'BookingConfirmed', data: { bookingId: 'b-1', vehicleId: 'v-1' }, trace },
    ]);
    await write([
      { key: 'vehicle/v-1', type: 'UnlockRequested', data: { commandId: 'c-1' } },
      { key: 'vehicle/v-1', type: 'VehicleUnlocked', data: { commandId: 'c-1', bookingId: 'b-1' }, trace },
      { key: 'vehicle/v-1', type: 'VehicleLocked', data: { bookingId: 'b-1' } },
    ]);
    const relay = startRelay();

    const received = await consumer.waitForCount(3);
    await waitFor(() => relay.lag() === 0, { what: 'lag 0' });
    const confirmed = journal.readAfter(0, 10, 'public')[0]!;
    expect(received.find((record) => record.headers.ce_id === 'booking/b-1:2')).toEqual({
      topic: `${topicPrefix}booking.created`,
      partition: expect.any(Number),
      offset: '0',
      key: 'b-1',
      value: JSON.stringify({ type: 'BookingConfirmed', bookingId: 'b-1', vehicleId: 'v-1' }),
      headers: {
        ce_specversion: '1.0',
        ce_id: 'booking/b-1:2',
        ce_type: 'dev.fleetactors.booking.created',
        ce_source: '/fleetactors/bookings/b-1',
        ce_time: new Date(confirmed.createdAt).toISOString(),
        ce_subject: 'b-1',
        'content-type': 'application/json',
        traceparent: `00-${trace.traceId}-${trace.spanId}-01`,
      },
      receivedAt: expect.any(Number),
    });
    expect(received.find((record) => record.headers.ce_id === 'vehicle/v-1:3')).toMatchObject({
      topic: `${topicPrefix}vehicle.unlocked`,
      key: 'v-1',
      headers: { ce_type: 'dev.fleetactors.vehicle.unlocked', ce_source: '/fleetactors/vehicles/v-1', ce_subject: 'v-1', traceparent: `00-${trace.traceId}-${trace.spanId}-01` },
    });
    const locked = received.find((record) => record.headers.ce_id === 'vehicle/v-1:4');
    expect(locked).toMatchObject({ topic: `${topicPrefix}vehicle.locked`, key: 'v-1' });
    expect(locked!.headers).not.toHaveProperty('traceparent');

    // Exactly these three in Kafka: the private events never left.
    expect(await recordsInKafka()).toBe(3);
    expect(checkpoints.get('event-relay')).toBe(journal.lastPosition('public'));
    expect(relay.stats()).toMatchObject({ published: 3, failures: 0, connected: true });
  });

  it('keeps every aggregate key on one partition and its events in journal order', async () => {
    const { write, startRelay, consumer } = await setUp('order');
    const relay = startRelay({ batchSize: 7 });
    const vehicles = Array.from({ length: 12 }, (_, i) => `v-${i}`);
    const bookings = Array.from({ length: 12 }, (_, i) => `b-${i}`);
    let expected = 0;
    // 10 rounds, each one commit, interleaving every aggregate, while the relay publishes in batches of 7.
    for (let round = 0; round < 10; round += 1) {
      const events: TestEvent[] = [];
      for (const vehicle of vehicles) {
        events.push({ key: `vehicle/${vehicle}`, type: 'VehicleUnlocked', data: { round } }, { key: `vehicle/${vehicle}`, type: 'TelemetryNoted' });
        events.push({ key: `vehicle/${vehicle}`, type: 'VehicleLocked', data: { round } });
        expected += 2;
      }
      if (round === 0) for (const booking of bookings) events.push({ key: `booking/${booking}`, type: 'BookingConfirmed' });
      if (round === 9) for (const [i, booking] of bookings.entries()) events.push({ key: `booking/${booking}`, type: i % 2 ? 'BookingCancelled' : 'BookingCompleted' });
      if (round === 0 || round === 9) expected += bookings.length;
      await write(events);
    }

    const received = await consumer.waitForCount(expected);
    await waitFor(() => relay.lag() === 0, { what: 'lag 0' });
    expect(byCloudEventId(received).size).toBe(expected);

    const sequence = (ceId: string): number => Number(ceId.slice(ceId.lastIndexOf(':') + 1));
    const perTopicAndKey = new Map<string, { partitions: Set<number>; sequences: number[] }>();
    for (const record of received) {
      const id = `${record.topic}|${record.key}`;
      const entry = perTopicAndKey.get(id) ?? { partitions: new Set<number>(), sequences: [] };
      entry.partitions.add(record.partition);
      entry.sequences.push(sequence(record.headers.ce_id!));
      perTopicAndKey.set(id, entry);
    }
    for (const [id, { partitions, sequences }] of perTopicAndKey) {
      expect(partitions.size, `${id} on one partition`).toBe(1);
      expect(sequences, `${id} in journal order`).toEqual([...sequences].sort((a, b) => a - b));
    }
    // A vehicle's 10 unlocks arrive in order, and its 10 locks, across 3 partitions shared with others.
    const unlocks = perTopicAndKey.get([...perTopicAndKey.keys()].find((id) => id.endsWith('vehicle.unlocked|v-3'))!)!;
    expect(unlocks.sequences).toEqual([1, 4, 7, 10, 13, 16, 19, 22, 25, 28]);
    expect(new Set(received.map((record) => record.partition)).size).toBe(3);
  });

  it('re-publishes from the checkpoint after a relay died between the Kafka ack and its checkpoint write', async () => {
    const { write, startRelay, consumer, checkpoints, journal, db, topicPrefix, recordsInKafka } = await setUp('crash');
    const crashingCheckpoints: CheckpointStore = {
      get: (name) => checkpoints.get(name),
      set: () => {
        throw new Error('killed after the Kafka ack, before the checkpoint write');
      },
    };
    const first: TestEvent[] = Array.from({ length: 10 }, (_, i) => ({ key: `booking/b-${i}`, type: 'BookingConfirmed' }));
    await write(first);
    const dying = startRelay({ checkpoints: crashingCheckpoints, backoff: { initialMs: 10_000, maxMs: 10_000 } });
    await consumer.waitForCount(10);
    await waitFor(() => dying.stats().failures === 1, { what: 'the failed checkpoint write' });
    await dying.stop();
    expect(checkpoints.get('event-relay')).toBe(0);

    await write(Array.from({ length: 5 }, (_, i) => ({ key: `booking/b-${i}`, type: 'BookingCancelled' })));
    // The restarted process: a new actor system, a new producer (new producer id), the same database.
    const restartedSystem = startActorSystem(journal, logger);
    const producer = new ResilientProducer(createKafkaClient({ brokers: kafkaBrokersForTests(), clientId: 'relay-test-restarted', logger }), logger);
    cleanups.push(() => restartedSystem.stop(), () => producer.disconnect());
    const relay = startRelay({ system: restartedSystem, producer, checkpoints: new SqliteCheckpointStore(db), topicPrefix });
    expect(relay.stats().checkpoint).toBe(0);

    const received = await consumer.waitUntil((seen) => seen.length === 25 && byCloudEventId(seen).size === 15, '25 records, 15 distinct');
    await waitFor(() => relay.lag() === 0, { what: 'lag 0 after the restart' });
    expect(await recordsInKafka()).toBe(25);
    const groups = byCloudEventId(received);
    // Each of the first ten was published twice (before the crash and after), the five new ones once.
    for (let i = 0; i < 10; i += 1) expect(groups.get(`booking/b-${i}:1`), `booking/b-${i}:1`).toHaveLength(2);
    for (let i = 0; i < 5; i += 1) expect(groups.get(`booking/b-${i}:2`), `booking/b-${i}:2`).toHaveLength(1);
    expect(checkpoints.get('event-relay')).toBe(journal.lastPosition('public'));
  });
});
