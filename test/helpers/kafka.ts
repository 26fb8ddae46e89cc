import { fileURLToPath } from 'node:url';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel, type Consumer, type IHeaders } from 'kafkajs';
import { isPublicEventType } from '../../actors/contract/event-catalog.js';
import { freePort } from './free-port.js';

/**
 * Kafka for tests: a real Apache Kafka started by scripts/kafka.mjs (npm test starts one and passes
 * KAFKA_TEST_BROKERS). A test that needs Kafka fails loudly without it; it never skips.
 */

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const kafkaScript = join(repoRoot, 'scripts', 'kafka.mjs');
const run = promisify(execFile);

export function kafkaBrokersForTests(): string[] {
  const value = process.env.KAFKA_TEST_BROKERS?.trim();
  if (!value) {
    throw new Error(
      'KAFKA_TEST_BROKERS is not set: this test needs a real Kafka broker. Run it through `npm test` (which starts one), ' +
        'or start one yourself: `KAFKA_PORT=19192 KAFKA_HOME=.kafka/test node scripts/kafka.mjs start` and set KAFKA_TEST_BROKERS=127.0.0.1:19192',
    );
  }
  return value.split(',').map((broker) => broker.trim());
}

/** Unique per call, Kafka-legal (`[a-zA-Z0-9._-]`): test files share one broker and must not see each other's data. */
export function uniqueName(label: string): string {
  return `t-${label.replace(/[^a-zA-Z0-9-]/g, '-')}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A topic prefix for the event relay's `topicPrefix`: topics become `<prefix>booking.created`, … */
export const testTopicPrefix = (label: string): string => `${uniqueName(label)}.`;

export const testGroupId = (label: string): string => uniqueName(`group-${label}`);

/** A kafkajs client for the test itself (consumers, admin), quiet unless it fails. */
export function testKafkaClient(brokers: readonly string[] = kafkaBrokersForTests()): Kafka {
  return new Kafka({
    clientId: 'fleetactors-test',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
  });
}

export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Readonly<Record<string, string>>;
  /** Epoch milliseconds at which this test process received it (for end-to-end lag). */
  readonly receivedAt: number;
}

export interface RecordCollector {
  /** Everything received so far, in arrival order. */
  readonly records: readonly ConsumedRecord[];
  /** Per `topic:partition`, the offset after the last one fetched (records, commit markers and aborted records alike). */
  readonly positions: ReadonlyMap<string, number>;
  /** Resolves with the records once at least `count` arrived; rejects after `timeoutMs` saying how many did. */
  waitForCount(count: number, timeoutMs?: number): Promise<readonly ConsumedRecord[]>;
  /** Waits until `done(records)` holds. */
  waitUntil(done: (records: readonly ConsumedRecord[]) => boolean, what: string, timeoutMs?: number): Promise<readonly ConsumedRecord[]>;
  stop(): Promise<void>;
}

export interface CollectOptions {
  /** Default `read_committed` (kafkajs' default): records of aborted or open transactions are not delivered. */
  readonly isolation?: 'read_committed' | 'read_uncommitted';
}

/**
 * A consumer in a fresh group, reading `topics` from the beginning, that collects every record. It
 * resolves once the group has its partitions, so records produced afterwards are not missed and
 * their lag is not inflated by the join. The topics must exist.
 */
export async function collectRecords(kafka: Kafka, topics: readonly string[], groupId = testGroupId('collect'), options: CollectOptions = {}): Promise<RecordCollector> {
  // kafkajs reads read_committed unless told otherwise; said here, since the outbox's tests depend on it.
  const readUncommitted = options.isolation === 'read_uncommitted';
  const consumer: Consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1000, readUncommitted });
  const records: ConsumedRecord[] = [];
  const waiters = new Set<() => void>();
  const joined = new Promise<void>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, () => resolve());
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...topics], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      records.push({
        topic,
        partition,
        offset: message.offset,
        key: message.key?.toString() ?? null,
        value: message.value?.toString() ?? null,
        headers: headerText(message.headers),
        receivedAt: Date.now(),
      });
      for (const wake of waiters) wake();
    },
  });
  // Where the consumer's fetches have got to per partition, control records (commit markers) and
  // aborted records included: what `consumeToEnd` waits on.
  const positions = new Map<string, number>();
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const next = Number(payload.lastOffset) + 1;
    const id = `${payload.topic}:${payload.partition}`;
    if (next > (positions.get(id) ?? 0)) positions.set(id, next);
    for (const wake of waiters) wake();
  });
  await withTimeout(joined, 30_000, `consumer group ${groupId} to get its partitions`);

  const waitUntil = (done: (seen: readonly ConsumedRecord[]) => boolean, what: string, timeoutMs = 20_000): Promise<readonly ConsumedRecord[]> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done(records)) return;
        cleanup();
        resolve(records);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`waited ${timeoutMs} ms for ${what}; received ${records.length} records`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  return {
    records,
    positions,
    waitUntil,
    waitForCount: (count, timeoutMs) => waitUntil((seen) => seen.length >= count, `${count} records`, timeoutMs),
    stop: () => consumer.disconnect(),
  };
}

/** Reads `count` records of `topics` from the beginning in a fresh group, then leaves it. */
export async function consumeRecords(kafka: Kafka, topics: readonly string[], count: number, timeoutMs = 20_000): Promise<readonly ConsumedRecord[]> {
  const collector = await collectRecords(kafka, topics);
  try {
    return [...(await collector.waitForCount(count, timeoutMs))];
  } finally {
    await collector.stop();
  }
}

/**
 * Every record of `topics` written so far: reads them from the beginning in a fresh group until its
 * fetches reach each partition's end as it was when called (the end offsets are taken first, so
 * nothing written before the call is missed). With `read_committed` (the default), records of
 * transactions that were aborted, or are still open, are not among them; call it once every writer
 * has committed or been fenced.
 */
export async function consumeToEnd(kafka: Kafka, topics: readonly string[], options: CollectOptions = {}, timeoutMs = 30_000): Promise<readonly ConsumedRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<string, number>();
  try {
    for (const topic of topics) {
      for (const { partition, high } of await admin.fetchTopicOffsets(topic)) if (Number(high) > 0) ends.set(`${topic}:${partition}`, Number(high));
    }
  } finally {
    await admin.disconnect();
  }
  const collector = await collectRecords(kafka, topics, testGroupId('to-end'), options);
  try {
    await collector.waitUntil(() => [...ends].every(([id, end]) => (collector.positions.get(id) ?? 0) >= end), `the end of ${topics.join(', ')}`, timeoutMs);
    return [...collector.records];
  } finally {
    await collector.stop();
  }
}

/** Consumers de-duplicate on `ce_id` (docs/contract.md); so do the tests. */
export function byCloudEventId(records: readonly ConsumedRecord[]): Map<string, ConsumedRecord[]> {
  const groups = new Map<string, ConsumedRecord[]>();
  for (const record of records) {
    const id = record.headers.ce_id;
    if (id === undefined) throw new Error(`record without ce_id on ${record.topic}@${record.offset}`);
    const group = groups.get(id);
    if (group) group.push(record);
    else groups.set(id, [record]);
  }
  return groups;
}

function headerText(headers: IHeaders | undefined): Record<string, string> {
  const text: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) text[name] = Array.isArray(value) ? value.map(String).join(',') : value.toString();
  }
  return text;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- broker processes

/** What scripts/kafka.mjs needs to find one broker: the same env for start, stop and status. */
export interface KafkaTestBroker {
  readonly port: number;
  readonly controllerPort: number;
  readonly home: string;
  /** Jars folder; shared so a private broker does not download Kafka again. */
  readonly lib: string;
  readonly brokers: readonly string[];
}

/** The broker npm test started (KAFKA_TEST_BROKERS, KAFKA_TEST_HOME as in scripts/test.mjs). */
export function sharedTestBroker(): KafkaTestBroker {
  const [first] = kafkaBrokersForTests();
  const port = Number(first!.split(':')[1]);
  const home = process.env.KAFKA_TEST_HOME ?? join(repoRoot, '.kafka', 'test');
  return { port, controllerPort: port + 1, home, lib: join(home, 'lib'), brokers: [`127.0.0.1:${port}`] };
}

function scriptEnv(broker: KafkaTestBroker): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KAFKA_PORT: String(broker.port),
    KAFKA_CONTROLLER_PORT: String(broker.controllerPort),
    KAFKA_HOME: broker.home,
    KAFKA_LIB: broker.lib,
  };
}

/** `scripts/kafka.mjs stop`: SIGTERM, waits until the port is closed. Asynchronous: the test's own event loop keeps running. */
export async function stopKafkaForTest(broker: KafkaTestBroker = sharedTestBroker()): Promise<void> {
  await run('node', [kafkaScript, 'stop'], { env: scriptEnv(broker) });
}

/** `scripts/kafka.mjs start`: returns once the broker accepts clients again; its data is kept unless `fresh`. */
export async function startKafkaForTest(broker: KafkaTestBroker = sharedTestBroker(), options: { fresh?: boolean } = {}): Promise<void> {
  try {
    await run('node', [kafkaScript, 'start', ...(options.fresh ? ['--fresh'] : [])], { env: scriptEnv(broker) });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`scripts/kafka.mjs start failed: ${stderr ?? String(error)}`, { cause: error });
  }
}

const privateBrokers = new Set<KafkaTestBroker>();

/**
 * A broker of the test's own, on free ports, for a test that stops and restarts Kafka: stopping the
 * shared broker would break the Kafka tests running in parallel in the other worker. Costs ~5 s and
 * 512 MB while it runs. `dispose` stops it and removes its data.
 */
export async function startPrivateKafkaForTest(label: string): Promise<KafkaTestBroker & { dispose(): Promise<void> }> {
  const shared = sharedTestBroker();
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const broker: KafkaTestBroker = {
    port,
    controllerPort,
    home: join(repoRoot, '.kafka', 'test-private', uniqueName(label)),
    lib: shared.lib,
    brokers: [`127.0.0.1:${port}`],
  };
  privateBrokers.add(broker);
  installExitHook();
  await startKafkaForTest(broker, { fresh: true });
  return {
    ...broker,
    dispose: async () => {
      await stopKafkaForTest(broker);
      privateBrokers.delete(broker);
      rmSync(broker.home, { recursive: true, force: true });
      try {
        rmdirSync(dirname(broker.home));
      } catch {
        // another private broker still lives there
      }
    },
  };
}

let exitHookInstalled = false;

/** A test that dies before its afterAll must not leave a JVM behind (the broker runs detached). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const broker of privateBrokers) {
      spawnSync('node', [kafkaScript, 'stop'], { env: scriptEnv(broker), stdio: 'ignore' });
      rmSync(broker.home, { recursive: true, force: true });
    }
  });
}

// ---------------------------------------------------------------- journal events for relay tests

export interface TestEvent {
  /** Persistence key, `<kind>/<id>`. */
  readonly key: string;
  readonly type: string;
  readonly data?: Readonly<Record<string, unknown>>;
  /** Default: public iff the catalog knows the type, as the runtime tags events. */
  readonly public?: boolean;
  readonly trace?: { readonly traceId: string; readonly spanId: string };
}

/** Anything that persists like the journal engine (nact's PersistenceEngine.persist plus meta). */
interface Persister {
  persist(event: { key: string; sequenceNumber: number; data: unknown; tags: string[]; createdAt: number }, meta?: { traceId?: string; spanId?: string }): Promise<void>;
}

/**
 * Commits events as actors would (sequence numbers per key, the `public` tag as the runtime sets
 * it). One call = one event-loop turn = one group commit; resolves when it is durable.
 */
export function journalEventWriter(journal: Persister): (events: readonly TestEvent[]) => Promise<void> {
  const sequence = new Map<string, number>();
  return async (events) => {
    const persists: Promise<void>[] = [];
    for (const event of events) {
      const sequenceNumber = (sequence.get(event.key) ?? 0) + 1;
      sequence.set(event.key, sequenceNumber);
      const isPublic = event.public ?? isPublicEventType(event.type);
      persists.push(
        journal.persist(
          { key: event.key, sequenceNumber, data: { type: event.type, ...event.data }, tags: isPublic ? ['public'] : [], createdAt: Date.now() },
          event.trace,
        ),
      );
    }
    await Promise.all(persists);
  };
}
