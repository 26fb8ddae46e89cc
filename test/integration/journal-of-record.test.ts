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
import { kafkaBrokersForTests, uniqueName } from '../helpers/kafka.js';
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
  await admin.deleteTopics({ topics: [journalTopic(cluster)] }).catch(() => undefined);
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
async function joinShard(engine: SqliteJournalEngine, entry: (typeof opened)[number]): Promise<{ record: JournalOfRecord; applied: number }> {
  const record = await JournalOfRecord.open({ kafka, clusterName: cluster, shard: SHARD, nodeId: 'test', logger });
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
});
