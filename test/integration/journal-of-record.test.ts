import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { createKafkaClient } from '../../adapters/kafka/client.js';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { isFencedError, journalTopic, JournalOfRecord, readPartition } from '../../adapters/kafka/journal-of-record.js';
import { JournalError, SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { decodeRecord } from '../../persistence/journal-replication.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { createLogger } from '../../runtime/ground/logger.js';
import type { PersistedEvent } from '../../runtime/kernel/journal.js';
import { collectRecords, kafkaBrokersForTests, uniqueName, type ConsumedRecord } from '../helpers/kafka.js';
import { EventOutbox } from '../../actors/event-relay/outbox.js';
import { toKafkaRecord } from '../../actors/event-relay/records.js';
import { ALL_TOPICS } from '../../actors/contract/event-catalog.js';
import type { JournalRow } from '../../runtime/kernel/journal.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

/**
 * The journal engine with a real Kafka as its journal of record (cluster mode, docs/cluster.md): a
 * persist resolves only once its batch is committed in Kafka, an empty file restores the same journal
 * from the partition alone, and a second producer with the shard's transactional id fences the first.
 */
const logger = createLogger('silent');
const SHARD = 1;
let kafka: Kafka;
let cluster: string;

const opened: { db: Db; temp: TempDbFile; record?: JournalOfRecord }[] = [];

beforeAll(async () => {
  kafka = createKafkaClient({ brokers: kafkaBrokersForTests(), clientId: 'journal-of-record-test', logger });
  cluster = uniqueName('jor');
  await ensureTopics(kafka, [journalTopic(cluster)], 2, 1);
  // One partition each, so that offsets show how records were committed (each commit marker takes one).
  await ensureTopics(kafka, ALL_TOPICS.map((topic) => `${cluster}.${topic}`), 1, 1);
}, 60_000);

afterEach(async () => {
  for (const { db, temp, record } of opened.splice(0)) {
    await record?.close();
    if (db.open) db.close();
    temp.cleanup();
  }
});

afterAll(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [journalTopic(cluster), ...ALL_TOPICS.map((topic) => `${cluster}.${topic}`)] }).catch(() => undefined);
  await admin.disconnect();
});

function openEngine(): { db: Db; engine: SqliteJournalEngine; entry: (typeof opened)[number] } {
  const temp = tempDbFile();
  const db = openDatabase(temp.file);
  const entry = { db, temp };
  opened.push(entry);
  return { db, engine: new SqliteJournalEngine(db, { logger }), entry };
}

/** As server/shard.ts does it: open (fence + owner mark), replay up to the mark, then replicate. */
async function joinShard(
  engine: SqliteJournalEngine,
  entry: (typeof opened)[number],
  extra: Pick<Parameters<typeof JournalOfRecord.open>[0], 'outbox' | 'beforeCommit'> = {},
): Promise<{ record: JournalOfRecord; applied: number }> {
  const record = await JournalOfRecord.open({ kafka, clusterName: cluster, shard: SHARD, nodeId: 'test', logger, ...extra });
  (entry as { record?: JournalOfRecord }).record = record;
  const applied = await readPartition({
    kafka,
    topic: journalTopic(cluster),
    partition: SHARD,
    fromOffset: (engine.replicatedOffset() ?? -1) + 1,
    untilOffset: record.ownerMarkOffset,
    groupIdPrefix: `${cluster}.restore`,
    logger,
    apply: (value, offset) => engine.applyReplicated(decodeRecord(value), offset),
  });
  engine.applyReplicated({ v: 1, type: 'owner', node: 'test', at: 0 }, record.ownerMarkOffset);
  engine.replicateTo(record);
  return { record, applied };
}

const event = (key: string, sequenceNumber: number, data: unknown = { type: 'Added', n: sequenceNumber }, tags: string[] = []): PersistedEvent => ({
  key,
  sequenceNumber,
  data,
  tags,
  createdAt: 1_700_000_000_000 + sequenceNumber,
  isDeleted: false,
});

const rowsOf = (db: Db) => db.prepare('SELECT position, persistence_key, sequence_number, event_type, data, tags, is_public, trace_id, span_id, created_at FROM journal ORDER BY position').all();
const snapshotsOf = (db: Db) => db.prepare('SELECT persistence_key, sequence_number, data, created_at FROM snapshots ORDER BY persistence_key').all();

describe('the journal of record in Kafka', () => {
  it('acknowledges a persist once Kafka holds it, and an empty file restores the same journal from the partition alone', async () => {
    const owner = openEngine();
    const { record } = await joinShard(owner.engine, owner.entry);
    const markBefore = record.ownerMarkOffset;

    // One turn: one batch, one transaction. Then a second batch with a snapshot and a refused duplicate.
    await Promise.all([
      owner.engine.persist(event('vehicle/a', 1), { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16) }),
      owner.engine.persist(event('vehicle/b', 1, { type: 'Added', n: 1 }, ['public'])),
      owner.engine.persist(event('vehicle/a', 2)),
    ]);
    const duplicate = owner.engine.persist(event('vehicle/a', 2, { type: 'Again' }));
    const later = owner.engine.persist(event('vehicle/b', 2));
    const snapshot = owner.engine.takeSnapshot({ key: 'vehicle/a', sequenceNumber: 2, data: { total: 2 }, createdAt: 1_700_000_000_500 });
    await expect(duplicate).rejects.toMatchObject({ code: 'duplicate-sequence-number' });
    await Promise.all([later, snapshot]);

    expect(record.stats().transactions).toBe(2);
    // The file recorded the offset of the last record it applied, with the rows. Each transaction's
    // commit marker takes an offset too: mark, marker, batch, marker, batch.
    expect(owner.engine.replicatedOffset()).toBe(markBefore + 4);
    const written = rowsOf(owner.db);
    expect(written).toHaveLength(4);

    // A new owner on an empty file: fences the first, replays everything before its own mark.
    const successor = openEngine();
    const joined = await joinShard(successor.engine, successor.entry);
    // The first owner's mark and its two batches.
    expect(joined.applied).toBe(3);
    expect(rowsOf(successor.db)).toEqual(written);
    expect(snapshotsOf(successor.db)).toEqual(snapshotsOf(owner.db));
    expect(successor.engine.replicatedOffset()).toBe(joined.record.ownerMarkOffset);

    // The first owner is fenced: its next persist is refused, and the refusal says so first.
    const halts: unknown[] = [];
    owner.engine.onHalt((error) => halts.push(error));
    const fenced = owner.engine.persist(event('vehicle/c', 1));
    await expect(fenced).rejects.toMatchObject({ code: 'not-replicated' });
    expect(halts).toHaveLength(1);
    expect(isFencedError(halts[0])).toBe(true);
    await expect(owner.engine.persist(event('vehicle/d', 1))).rejects.toBeInstanceOf(JournalError);
    expect(rowsOf(owner.db)).toEqual(written);

    // What the fenced owner tried is in no committed record: a third owner restores the same four rows
    // plus whatever the successor wrote.
    await successor.engine.persist(event('vehicle/e', 1));
    const third = openEngine();
    await joinShard(third.engine, third.entry);
    expect(rowsOf(third.db)).toEqual(rowsOf(successor.db));
    expect((rowsOf(third.db) as Array<{ persistence_key: string }>).map((row) => row.persistence_key)).toEqual(['vehicle/a', 'vehicle/b', 'vehicle/a', 'vehicle/b', 'vehicle/e']);
  }, 60_000);

  it('catches a file that is behind up from the offset it recorded', async () => {
    const first = openEngine();
    await joinShard(first.engine, first.entry);
    await first.engine.persist(event('booking/x', 1));
    const behind = first.engine.replicatedOffset();
    await first.entry.record?.close();
    first.entry.record = undefined;

    // Another owner writes on; then the first file's owner takes the shard back and catches up.
    const other = openEngine();
    await joinShard(other.engine, other.entry);
    await other.engine.persist(event('booking/x', 2));
    await other.engine.persist(event('booking/y', 1));

    const again = new SqliteJournalEngine(first.db, { logger });
    const { applied } = await joinShard(again, first.entry);
    expect(behind).not.toBeNull();
    // The other owner's mark and its two batches.
    expect(applied).toBe(3);
    const keys = (rowsOf(first.db) as Array<{ persistence_key: string; sequence_number: number }>).map((row) => `${row.persistence_key}#${row.sequence_number}`);
    expect(keys.slice(-3)).toEqual(['booking/x#1', 'booking/x#2', 'booking/y#1']);
  }, 60_000);

  it('commits a batch bigger than the broker\'s 1 MiB record-batch limit (a seed) in one transaction of several requests, and restores it whole', async () => {
    const owner = openEngine();
    const { record } = await joinShard(owner.engine, owner.entry);
    // 3 000 rows of ~1 KiB in one turn: about 3 MiB, one batch. The broker refuses a produce request
    // whose record batch for a partition exceeds message.max.bytes (1 MiB by default).
    const padding = 'x'.repeat(1000);
    await Promise.all(Array.from({ length: 3000 }, (_, index) => owner.engine.persist(event(`vehicle/seed-${index}`, 1, { type: 'Registered', padding }))));
    expect(record.stats().transactions).toBe(1);
    // The file also holds what earlier tests of this file wrote to the same partition.
    const seeded = (db: Db) => (rowsOf(db) as Array<{ persistence_key: string }>).filter((row) => row.persistence_key.startsWith('vehicle/seed-'));
    expect(seeded(owner.db)).toHaveLength(3000);

    const successor = openEngine();
    await joinShard(successor.engine, successor.entry);
    expect(seeded(successor.db)).toEqual(seeded(owner.db));
    expect(rowsOf(successor.db)).toEqual(rowsOf(owner.db));
  }, 60_000);
});

describe('the public events in the journal\'s transaction (the outbox of cluster mode)', () => {
  const createdTopic = () => `${cluster}.booking.created`;
  const cancelledTopic = () => `${cluster}.booking.cancelled`;
  const confirmed = (id: string, seq = 1) => event(`booking/${id}`, seq, { type: 'BookingConfirmed', bookingId: id, vehicleId: `v-${id}` }, ['public']);
  const journalRow = (db: Db, key: string, seq: number): JournalRow => {
    const row = db.prepare('SELECT position, persistence_key, sequence_number, event_type, data, tags, trace_id, span_id, created_at FROM journal WHERE persistence_key = ? AND sequence_number = ?').get(key, seq) as
      | { position: number; persistence_key: string; sequence_number: number; event_type: string; data: string; tags: string; trace_id: string | null; span_id: string | null; created_at: number }
      | undefined;
    if (!row) throw new Error(`${key}#${seq} is not in the journal`);
    return { position: row.position, persistenceKey: row.persistence_key, sequenceNumber: row.sequence_number, eventType: row.event_type, data: JSON.parse(row.data) as unknown, tags: row.tags.split(','), traceId: row.trace_id, spanId: row.span_id, createdAt: row.created_at };
  };
  const asRecord = (consumed: ConsumedRecord) => ({ topic: consumed.topic, key: consumed.key, value: consumed.value, headers: consumed.headers });

  it('commits a batch\'s public events in its one transaction, as the relay would publish them, and none of a refused duplicate', async () => {
    const outbox = new EventOutbox(`${cluster}.`, logger);
    const owner = openEngine();
    const { record } = await joinShard(owner.engine, owner.entry, { outbox });
    const committed = await collectRecords(kafka, [createdTopic(), cancelledTopic()], undefined, { isolation: 'read_committed' });
    try {
      // One turn, one batch: three public events (two topics), a private one.
      await Promise.all([
        owner.engine.persist(confirmed('b-1'), { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16) }),
        owner.engine.persist(confirmed('b-2')),
        owner.engine.persist(event('booking/b-1', 2, { type: 'BookingCancelled', bookingId: 'b-1' }, ['public'])),
        owner.engine.persist(event('vehicle/v-b-1', 1, { type: 'VehicleReserved' })),
      ]);
      expect(record.stats()).toMatchObject({ transactions: 1, events: 3 });
      // The next batch: a duplicate of b-2's confirmation (refused before Kafka saw it) and b-3's.
      const duplicate = owner.engine.persist(confirmed('b-2'));
      const next = owner.engine.persist(confirmed('b-3'));
      await expect(duplicate).rejects.toMatchObject({ code: 'duplicate-sequence-number' });
      await next;
      expect(record.stats()).toMatchObject({ transactions: 2, events: 4 });

      const seen = await committed.waitForCount(4);
      // Exactly the records the relay builds from the journal's rows: same topic, key, value, CloudEvents headers.
      const expected = [journalRow(owner.db, 'booking/b-1', 1), journalRow(owner.db, 'booking/b-2', 1), journalRow(owner.db, 'booking/b-1', 2), journalRow(owner.db, 'booking/b-3', 1)].map((row) => {
        const built = toKafkaRecord(row, `${cluster}.`);
        if (!built.ok) throw new Error(built.reason);
        return { topic: built.record.topic, key: built.record.key, value: built.record.value, headers: built.record.headers };
      });
      expect([...seen].map(asRecord)).toEqual(expect.arrayContaining(expected));
      expect(seen).toHaveLength(4);
      expect(seen.find((each) => each.headers.ce_id === 'booking/b-1:1')?.headers.traceparent).toBe(`00-${'c'.repeat(32)}-${'d'.repeat(16)}-01`);
      // One transaction per batch: the batch's two records on booking.created are adjacent; the next
      // batch's record comes after one commit marker.
      const offsets = seen.filter((each) => each.topic === createdTopic()).map((each) => Number(each.offset));
      expect(offsets).toEqual([offsets[0]!, offsets[0]! + 1, offsets[0]! + 3]);
    } finally {
      await committed.stop();
    }
  }, 60_000);

  it('shows read_committed consumers none of the events of a transaction that a new owner\'s fence aborted', async () => {
    const outbox = new EventOutbox(`${cluster}.`, logger);
    const owner = openEngine();
    const successor = openEngine();
    let fenceNow = false;
    // The successor takes the shard after the owner's records were sent and before its commit.
    await joinShard(owner.engine, owner.entry, {
      outbox,
      beforeCommit: async () => {
        if (fenceNow) await joinShard(successor.engine, successor.entry, { outbox: new EventOutbox(`${cluster}.`, logger) });
      },
    });
    const committed = await collectRecords(kafka, [createdTopic()], undefined, { isolation: 'read_committed' });
    const everything = await collectRecords(kafka, [createdTopic()], undefined, { isolation: 'read_uncommitted' });
    try {
      await owner.engine.persist(confirmed('f-before'));
      fenceNow = true;
      await expect(owner.engine.persist(confirmed('f-fenced'))).rejects.toMatchObject({ code: 'not-replicated' });
      await successor.engine.persist(confirmed('f-after'));

      // The aborted record is in the log (a read_uncommitted consumer gets it), …
      const ids = (records: readonly ConsumedRecord[]) => records.map((each) => each.headers.ce_id);
      await everything.waitUntil((records) => ids(records).includes('booking/f-after:1'), 'f-after, read_uncommitted');
      expect(ids(everything.records)).toContain('booking/f-fenced:1');
      // … but a read_committed consumer, in the same partition order, never sees it.
      await committed.waitUntil((records) => ids(records).includes('booking/f-after:1'), 'f-after, read_committed');
      expect(ids(committed.records).filter((id) => id?.startsWith('booking/f-'))).toEqual(['booking/f-before:1', 'booking/f-after:1']);
      // Neither does the journal: the successor's file (restored from Kafka) holds no row of it.
      expect((rowsOf(successor.db) as Array<{ persistence_key: string }>).map((row) => row.persistence_key).filter((key) => key.startsWith('booking/f-'))).toEqual(['booking/f-before', 'booking/f-after']);
    } finally {
      await committed.stop();
      await everything.stop();
    }
  }, 60_000);
});
