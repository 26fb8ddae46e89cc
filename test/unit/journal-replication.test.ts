import { describe, expect, it } from 'vitest';
import { KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { decodeRecord, encodeBatch, ReplicatedRecordError, type ReplicatedRecord, type ReplicatedRow } from '../../persistence/journal-replication.js';
import { chunksOf, isFencedError, journalTopicConfigs, valueChunksOf } from '../../adapters/kafka/journal-of-record.js';

const row = (seq: number, size = 10): ReplicatedRow => ({
  key: 'vehicle/v-1',
  seq,
  data: JSON.stringify({ type: 'Padded', pad: 'x'.repeat(size) }),
  tags: [],
  traceId: null,
  spanId: null,
  createdAt: 1_700_000_000_000,
  isDeleted: false,
});

const seqsOf = (record: ReplicatedRecord): number[] => (record.type === 'batch' ? record.rows.map((each) => each.seq) : []);

describe('a batch on the wire (persistence/journal-replication.ts)', () => {
  it('is one record while it fits, and decodes back to the same rows and snapshots', () => {
    const batch = { rows: [row(1), row(2)], snapshots: [{ key: 'vehicle/v-1', seq: 2, data: '{"n":2}', createdAt: 5 }] };
    const values = encodeBatch(batch);
    expect(values).toHaveLength(1);
    expect(decodeRecord(values[0]!)).toEqual({ v: 1, type: 'batch', ...batch });
  });

  it('splits a big batch into records under the limit, rows in order, snapshots after the rows', () => {
    const rows = Array.from({ length: 50 }, (_, index) => row(index + 1, 100));
    const snapshots = [{ key: 'vehicle/v-1', seq: 50, data: '{}', createdAt: 1 }];
    const values = encodeBatch({ rows, snapshots }, 1000);
    expect(values.length).toBeGreaterThan(5);
    for (const value of values) expect(value.length).toBeLessThanOrEqual(1000 + 100);
    const decoded = values.map(decodeRecord);
    expect(decoded.flatMap((record) => (record.type === 'batch' ? record.rows : []))).toEqual(rows);
    expect(decoded.flatMap((record) => (record.type === 'batch' ? record.snapshots : []))).toEqual(snapshots);
  });

  it('sends a row bigger than the limit alone rather than refusing it', () => {
    const values = encodeBatch({ rows: [row(1), row(2, 5000), row(3)], snapshots: [] }, 1000);
    expect(values.map((value) => seqsOf(decodeRecord(value)))).toEqual([[1], [2], [3]]);
  });

  it('is nothing for an empty batch', () => {
    expect(encodeBatch({ rows: [], snapshots: [] })).toEqual([]);
  });

  it('refuses what is not a record of this version', () => {
    expect(() => decodeRecord('nope')).toThrow(ReplicatedRecordError);
    expect(() => decodeRecord('{"v":2,"type":"batch","rows":[],"snapshots":[]}')).toThrow(/unknown version/);
    expect(() => decodeRecord('{"v":1,"type":"other"}')).toThrow(/unknown type/);
    expect(decodeRecord('{"v":1,"type":"owner","node":"n1","at":3}')).toEqual({ v: 1, type: 'owner', node: 'n1', at: 3 });
  });
});

describe('a fenced transactional producer (adapters/kafka/journal-of-record.ts)', () => {
  const protocolError = (type: string, code: number) => new KafkaJSProtocolError({ type, code, retriable: false, message: `${type} message` } as unknown as Error);

  it('is recognised by INVALID_PRODUCER_EPOCH, however deep kafkajs wraps it', () => {
    expect(isFencedError(protocolError('INVALID_PRODUCER_EPOCH', 47))).toBe(true);
    const wrapped = new KafkaJSNumberOfRetriesExceeded(protocolError('INVALID_PRODUCER_EPOCH', 47), { retryCount: 5, retryTime: 100 });
    expect(isFencedError(wrapped)).toBe(true);
    expect(isFencedError({ errors: [new Error('other'), { cause: protocolError('INVALID_PRODUCER_EPOCH', 47) }] })).toBe(true);
  });

  it('is recognised by PRODUCER_FENCED (code 90), which kafkajs reports as an unknown code', () => {
    expect(isFencedError(new KafkaJSProtocolError({ type: 'KAFKAJS_UNKNOWN_ERROR_CODE', code: -99, retriable: false, message: 'Unknown error code 90' } as unknown as Error))).toBe(true);
  });

  it('is recognised by a producer stuck in ABORTING (kafkajs #1355)', () => {
    expect(isFencedError(new KafkaJSNonRetriableError('Transaction state exception: Invalid transition ABORTING --> TRANSACTING'))).toBe(true);
    expect(isFencedError(new KafkaJSNonRetriableError('Transaction state exception: Cannot call "beginTransaction" in state "ABORTING"'))).toBe(true);
    expect(isFencedError(new KafkaJSNonRetriableError('Transaction state exception: Invalid transition READY --> COMMITTING'))).toBe(false);
  });

  it('is not a broker that is merely away, nor a cycle of causes', () => {
    expect(isFencedError(new KafkaJSNonRetriableError('Connection error: connect ECONNREFUSED 127.0.0.1:9'))).toBe(false);
    expect(isFencedError(protocolError('NOT_LEADER_FOR_PARTITION', 6))).toBe(false);
    const cyclic: { cause?: unknown } = {};
    cyclic.cause = cyclic;
    expect(isFencedError(cyclic)).toBe(false);
    expect(isFencedError(undefined)).toBe(false);
  });
});

describe('the journal topic\'s configs', () => {
  it('never expire a record, and carry min.insync.replicas only when it is set', () => {
    expect(journalTopicConfigs(null)).toEqual({ 'retention.ms': '-1', 'retention.bytes': '-1' });
    expect(journalTopicConfigs(2)).toEqual({ 'retention.ms': '-1', 'retention.bytes': '-1', 'min.insync.replicas': '2' });
  });
});

describe('the outbox\'s requests (chunksOf)', () => {
  const record = (n: number, size: number) => ({ topic: 't', key: `k${n}`, value: 'x'.repeat(size), headers: {} });

  it('keeps a batch\'s events in order, in runs under the bound, a record bigger than it alone', () => {
    const records = [record(1, 100), record(2, 100), record(3, 2000), record(4, 100)];
    const chunks = chunksOf(records, 1100);
    expect(chunks.flat()).toEqual(records);
    expect(chunks.map((chunk) => chunk.map((each) => each.key))).toEqual([['k1', 'k2'], ['k3'], ['k4']]);
    expect(chunksOf([], 1100)).toEqual([]);
  });
});

describe('the journal\'s requests (valueChunksOf)', () => {
  it('keeps the values in order, in runs under the limit, a bigger value alone, and never no run', () => {
    const values = ['a'.repeat(300), 'b'.repeat(300), 'c'.repeat(2000), 'd'.repeat(10)];
    const chunks = valueChunksOf(values, 1000);
    expect(chunks.flat()).toEqual(values);
    expect(chunks.map((chunk) => chunk.length)).toEqual([2, 1, 1]);
    expect(valueChunksOf(['only'], 1000)).toEqual([['only']]);
  });
});
