import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelay, startEventRelay, type EventRelay, type EventRelayOptions } from '../../actors/event-relay/relay.js';
import { SqliteCheckpointStore } from '../../persistence/checkpoints.js';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import type { CheckpointStore } from '../../runtime/kernel/journal.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { startActorSystem, type ActorSystem } from '../../runtime/kernel/actor-system.js';
import type { ProducerConnectionState, RecordPublisher } from '../../actors/event-relay/publisher.js';
import type { KafkaRecord } from '../../actors/contract/event-record.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { journalEventWriter } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The relay's rules without Kafka: a real (in-memory) journal and actor system, and a publisher that
 * records what it was given and fails when told to.
 */
class FakePublisher implements RecordPublisher {
  readonly batches: KafkaRecord[][] = [];
  attempts = 0;
  failNext = 0;
  failAlways = false;
  /** While set, sendBatch waits for it: a batch "in flight". */
  gate: Promise<void> | null = null;

  async sendBatch(records: readonly KafkaRecord[]): Promise<void> {
    this.attempts += 1;
    if (this.gate) await this.gate;
    if (this.failAlways || this.failNext > 0) {
      this.failNext = Math.max(0, this.failNext - 1);
      throw new Error('broker unreachable');
    }
    this.batches.push([...records]);
  }

  connectionState(): ProducerConnectionState {
    return { connected: !this.failAlways, lastError: null, lastErrorAt: null, lastAckAt: null, rebuilds: 0 };
  }

  get sentIds(): string[] {
    return this.batches.flat().map((record) => record.headers.ce_id!);
  }
}

interface Fixture {
  db: Db;
  engine: SqliteJournalEngine;
  checkpoints: SqliteCheckpointStore;
  system: ActorSystem;
  publisher: FakePublisher;
  write: ReturnType<typeof journalEventWriter>;
  start(options?: Partial<EventRelayOptions>): EventRelay;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function fixture(): Fixture {
  const db = openDatabase(':memory:');
  const engine = new SqliteJournalEngine(db);
  const logger = createLogger('silent');
  const system = startActorSystem(engine, logger);
  const checkpoints = new SqliteCheckpointStore(db);
  const publisher = new FakePublisher();
  cleanups.push(() => void db.close(), () => system.stop());
  return {
    db,
    engine,
    checkpoints,
    system,
    publisher,
    write: journalEventWriter(engine),
    start: (options = {}) => {
      const relay = startEventRelay({ system, journal: engine, checkpoints, producer: publisher, logger, backoff: { initialMs: 5, maxMs: 40 }, ...options });
      cleanups.push(() => relay.stop());
      return relay;
    },
  };
}

const lifecycle = (booking: string, vehicle: string) => [
  { key: `booking/${booking}`, type: 'BookingRequested' },
  { key: `vehicle/${vehicle}`, type: 'VehicleReserved' },
  { key: `booking/${booking}`, type: 'BookingConfirmed' },
  { key: `vehicle/${vehicle}`, type: 'VehicleUnlocked' },
  { key: `vehicle/${vehicle}`, type: 'VehicleLocked' },
  { key: `booking/${booking}`, type: 'BookingCompleted' },
];

describe('event relay', () => {
  it('publishes only public events, in journal order, and checkpoints after the acknowledgement', async () => {
    const { write, start, publisher, checkpoints, engine } = fixture();
    await write(lifecycle('b-1', 'v-1'));
    const relay = start({ batchSize: 2 });

    await waitFor(() => relay.lag() === 0 && publisher.sentIds.length === 4, { what: 'the four public events' });
    expect(publisher.sentIds).toEqual(['booking/b-1:2', 'vehicle/v-1:2', 'vehicle/v-1:3', 'booking/b-1:3']);
    expect(publisher.batches.map((batch) => batch.length)).toEqual([2, 2]);
    expect(checkpoints.get('event-relay')).toBe(engine.lastPosition('public'));
    expect(relay.stats()).toMatchObject({ published: 4, failures: 0, checkpoint: engine.lastPosition('public') });
  });

  it('wakes on commit: events committed later are published without polling', async () => {
    const { write, start, publisher } = fixture();
    const relay = start();
    await waitFor(() => publisher.attempts === 0 && relay.lag() === 0, { what: 'an idle relay' });

    await write(lifecycle('b-2', 'v-2'));
    await waitFor(() => publisher.sentIds.length === 4, { what: 'the events committed after start' });
    await write([{ key: 'booking/b-2', type: 'BookingCancelled' }]);
    await waitFor(() => publisher.sentIds.includes('booking/b-2:4'), { what: 'the cancellation' });
    expect(relay.lag()).toBe(0);
  });

  it('keeps the checkpoint while Kafka fails, retries with backoff, and then delivers everything in order', async () => {
    const { write, start, publisher, checkpoints } = fixture();
    publisher.failAlways = true;
    await write(lifecycle('b-3', 'v-3'));
    const relay = start({ batchSize: 3 });

    await waitFor(() => relay.stats().consecutiveFailures >= 3, { what: 'three failed attempts' });
    expect(checkpoints.get('event-relay')).toBe(0);
    expect(relay.lag()).toBeGreaterThan(0);
    expect(relay.stats()).toMatchObject({ lastError: 'broker unreachable', published: 0, connected: false });

    // Commits during the outage wait for the retry timer instead of each causing an attempt.
    const attemptsBefore = publisher.attempts;
    for (let i = 0; i < 20; i += 1) await write([{ key: `vehicle/v-x${i}`, type: 'VehicleUnlocked' }]);
    expect(publisher.attempts - attemptsBefore).toBeLessThan(10);

    publisher.failAlways = false;
    await waitFor(() => relay.lag() === 0, { what: 'the relay to catch up', timeoutMs: 5000 });
    const expected = ['booking/b-3:2', 'vehicle/v-3:2', 'vehicle/v-3:3', 'booking/b-3:3', ...Array.from({ length: 20 }, (_, i) => `vehicle/v-x${i}:1`)];
    expect(publisher.sentIds).toEqual(expected);
    expect(relay.stats().consecutiveFailures).toBe(0);
  });

  it('re-publishes from the durable checkpoint when the previous relay died before writing it', async () => {
    const { write, start, publisher, checkpoints, engine } = fixture();
    await write(lifecycle('b-4', 'v-4'));
    const crashingCheckpoints: CheckpointStore = {
      get: (name) => checkpoints.get(name),
      set: () => {
        throw new Error('process killed before the checkpoint write');
      },
    };
    const first = start({ checkpoints: crashingCheckpoints, name: 'event-relay' });
    await waitFor(() => first.stats().failures >= 1 && publisher.sentIds.length >= 4, { what: 'a publish whose checkpoint failed' });
    await first.stop();
    expect(checkpoints.get('event-relay')).toBe(0);

    publisher.batches.length = 0;
    // A new actor system over the same database: what the restarted process would run.
    const restarted = startActorSystem(engine, createLogger('silent'));
    cleanups.push(() => restarted.stop());
    const second = startEventRelay({ system: restarted, journal: engine, checkpoints, producer: publisher, logger: createLogger('silent') });
    cleanups.push(() => second.stop());
    expect(second.stats().checkpoint).toBe(0);
    await waitFor(() => checkpoints.get('event-relay') === engine.lastPosition('public'), { what: 'the second relay to catch up' });
    expect(publisher.sentIds).toEqual(['booking/b-4:2', 'vehicle/v-4:2', 'vehicle/v-4:3', 'booking/b-4:3']);
  });

  it('skips a public row it cannot publish and goes on with the next ones', async () => {
    const { write, start, publisher } = fixture();
    await write([
      { key: 'booking/b-5', type: 'BookingConfirmed' },
      { key: 'booking/b-5', type: 'BookingTeleported', public: true },
      { key: 'booking/b-5', type: 'BookingCompleted' },
    ]);
    const relay = start();
    await waitFor(() => relay.lag() === 0, { what: 'the relay to pass the bad row' });
    expect(publisher.sentIds).toEqual(['booking/b-5:1', 'booking/b-5:3']);
    expect(relay.stats()).toMatchObject({ published: 2, unpublishable: 1 });
  });

  it('lets the batch in flight finish and checkpoint on stop, then publishes nothing more', async () => {
    const { write, start, publisher, checkpoints, engine } = fixture();
    let release!: () => void;
    publisher.gate = new Promise((resolve) => (release = resolve));
    await write(lifecycle('b-6', 'v-6'));
    const relay = start();
    await waitFor(() => publisher.attempts === 1, { what: 'a batch in flight' });

    const stopped = relay.stop();
    release();
    await stopped;
    expect(checkpoints.get('event-relay')).toBe(engine.lastPosition('public'));

    publisher.gate = null;
    await write([{ key: 'booking/b-6', type: 'BookingCancelled' }]);
    await engine.flush();
    expect(publisher.sentIds).not.toContain('booking/b-6:4');
    expect(publisher.attempts).toBe(1);
  });
});

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 50].map((failures) => backoffDelay(failures));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    expect(backoffDelay(1, { initialMs: 5, maxMs: 40 })).toBe(5);
  });
});
