import { afterEach, describe, expect, it } from 'vitest';
import { ALL_TOPICS } from '../../actors/contract/event-catalog.js';
import { cloudEventId } from '../../actors/event-relay/records.js';
import { startEventRelay } from '../../actors/event-relay/relay.js';
import { SqliteCheckpointStore } from '../../persistence/checkpoints.js';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { openDatabase } from '../../persistence/sqlite.js';
import { startActorSystem } from '../../runtime/kernel/actor-system.js';
import { createKafkaClient } from '../../adapters/kafka/client.js';
import { ResilientProducer } from '../../adapters/kafka/producer.js';
import { createLogger } from '../../runtime/ground/logger.js';
import {
  byCloudEventId,
  collectRecords,
  journalEventWriter,
  startKafkaForTest,
  startPrivateKafkaForTest,
  stopKafkaForTest,
  testKafkaClient,
  testTopicPrefix,
  type TestEvent,
} from '../helpers/kafka.js';
import { tempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('silent');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('event relay across a Kafka outage', () => {
  it('delivers every event committed before, during and after a broker stop, exactly once after de-dup on ce_id', { timeout: 180_000 }, async () => {
    // Its own broker: stopping the shared one would fail the Kafka tests of the other vitest worker.
    const broker = await startPrivateKafkaForTest('outage');
    cleanups.push(() => broker.dispose());

    const temp = tempDbFile();
    const db = openDatabase(temp.file);
    const journal = new SqliteJournalEngine(db);
    const system = startActorSystem(journal, logger);
    cleanups.push(temp.cleanup, () => void db.close(), () => journal.close(), () => system.stop());
    const write = journalEventWriter(journal);

    const topicPrefix = testTopicPrefix('outage');
    const topics = ALL_TOPICS.map((topic) => `${topicPrefix}${topic}`);
    const kafka = createKafkaClient({ brokers: broker.brokers, clientId: 'relay-outage-test', logger });
    // The producer creates the topics on its first connection, as in production.
    const producer = new ResilientProducer(kafka, logger, { topics: { names: topics, partitions: 3, replicationFactor: 1 } });
    cleanups.push(() => producer.disconnect());
    const relay = startEventRelay({ system, journal, checkpoints: new SqliteCheckpointStore(db), producer, logger, topicPrefix, backoff: { initialMs: 100, maxMs: 2000 } });
    cleanups.push(() => relay.stop());

    let next = 0;
    const commitSome = (count: number): Promise<void> => {
      const events: TestEvent[] = [];
      for (let i = 0; i < count; i += 1, next += 1) {
        events.push({ key: `vehicle/v-${next % 25}`, type: next % 2 ? 'VehicleLocked' : 'VehicleUnlocked' }, { key: `vehicle/v-${next % 25}`, type: 'TelemetryNoted' });
        if (next % 10 === 0) events.push({ key: `booking/b-${next}`, type: 'BookingConfirmed' });
      }
      return write(events);
    };

    await commitSome(100);
    await waitFor(() => relay.lag() === 0, { what: 'the first 100 events in Kafka', timeoutMs: 20_000 });
    const publishedBeforeOutage = relay.stats().published;

    // Steady traffic from here on: the journal keeps committing whatever Kafka does.
    let traffic: Promise<void> = Promise.resolve();
    const generator = setInterval(() => {
      traffic = traffic.then(() => commitSome(5));
    }, 20);
    cleanups.push(() => clearInterval(generator));

    await stopKafkaForTest(broker);
    await waitFor(() => relay.stats().consecutiveFailures >= 2 && relay.lag() > 0, { what: 'failed attempts while Kafka is down', timeoutMs: 30_000 });
    expect(relay.stats().connected).toBe(false);

    await startKafkaForTest(broker);
    await waitFor(() => relay.stats().consecutiveFailures === 0 && relay.stats().published > publishedBeforeOutage, { what: 'publishing after the restart', timeoutMs: 60_000 });
    clearInterval(generator);
    await traffic;
    await waitFor(() => relay.lag() === 0, { what: 'lag back to 0', timeoutMs: 30_000 });

    const expectedIds = new Set(journal.readAfter(0, 1_000_000, 'public').map(cloudEventId));
    expect(expectedIds.size).toBeGreaterThan(300);
    const consumer = await collectRecords(testKafkaClient(broker.brokers), topics);
    cleanups.push(() => consumer.stop());
    const received = await consumer.waitUntil((seen) => byCloudEventId(seen).size >= expectedIds.size, `${expectedIds.size} distinct events`, 30_000);
    const groups = byCloudEventId(received);
    expect([...groups.keys()].filter((id) => !expectedIds.has(id))).toEqual([]);
    expect([...expectedIds].filter((id) => !groups.has(id))).toEqual([]);
    expect(relay.stats().failures).toBeGreaterThanOrEqual(2);
    expect(producer.connectionState()).toMatchObject({ connected: true });
    expect(producer.connectionState().rebuilds).toBeGreaterThanOrEqual(1);
    console.log(
      `outage: ${expectedIds.size} events, ${received.length} records (${received.length - expectedIds.size} duplicates), ` +
        `${relay.stats().failures} failed attempts, ${producer.connectionState().rebuilds} producer rebuilds`,
    );
  });
});
