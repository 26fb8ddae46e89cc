/**
 * The journal of record outside the shard's own file (cluster mode, docs/cluster.md): what a
 * group-commit batch looks like on its way out, the port the journal engine awaits before it writes the
 * batch to SQLite, and the records' wire form. The Kafka adapter (adapters/kafka/journal-of-record.ts)
 * implements the port; nothing here knows Kafka.
 */

import type { OutboxRow } from '../actors/event-relay/outbox.js';

/** One journal row, with everything needed to write the same row again on another machine (the outbox reads the same fields). */
export interface ReplicatedRow extends OutboxRow {
  readonly isDeleted: boolean;
}

export interface ReplicatedSnapshot {
  readonly key: string;
  readonly seq: number;
  readonly data: string;
  readonly createdAt: number;
}

/** A group-commit batch (or, on the wire, a part of one), rows in the order they were persisted. */
export interface ReplicatedBatch {
  readonly rows: readonly ReplicatedRow[];
  readonly snapshots: readonly ReplicatedSnapshot[];
}

/**
 * Where a batch must be durable before any of its persists resolves. `replicate` resolves with the
 * offset of the batch's last record once the batch is committed; it rejects when it cannot say so
 * (fenced, broker gone, commit outcome unknown): then nothing of the batch may be acknowledged, and the
 * journal engine stops for good (persistence/journal-engine.ts, `halt`).
 */
export interface BatchReplicator {
  replicate(batch: ReplicatedBatch): Promise<number>;
  /**
   * How long the next batch waits after a batch of `committedRows` rows is committed (0 or absent:
   * none). What is persisted meanwhile joins it. The Kafka journal needs it: a transaction begun before
   * the broker has written the previous one's commit markers is refused (CONCURRENT_TRANSACTIONS) and
   * retried; and a longer wait on a busy shard makes fewer, larger transactions.
   */
  pauseAfterCommitMs?(committedRows: number): number;
}

/**
 * A record of a shard's journal partition: a batch (or a part of one: a big batch spans several
 * records of one transaction), or the mark a new owner writes when it takes the shard. The mark's
 * offset is where a restore stops: everything before it was committed by earlier owners.
 */
export type ReplicatedRecord =
  | { readonly v: 1; readonly type: 'batch'; readonly rows: readonly ReplicatedRow[]; readonly snapshots: readonly ReplicatedSnapshot[] }
  | { readonly v: 1; readonly type: 'owner'; readonly node: string; readonly at: number };

/**
 * A record well under Kafka's default `message.max.bytes` (1 MiB): a seed of thousands of vehicles is
 * one batch, and a record the broker refuses would fail the whole batch.
 */
export const MAX_RECORD_BYTES = 256 * 1024;

/**
 * The batch as record values, in order, each under `maxBytes` where a single row allows it (a row
 * bigger than that goes alone). Rows keep their order across records; snapshots follow the rows.
 */
export function encodeBatch(batch: ReplicatedBatch, maxBytes = MAX_RECORD_BYTES): string[] {
  const values: string[] = [];
  let rows: ReplicatedRow[] = [];
  let snapshots: ReplicatedSnapshot[] = [];
  let size = 0;
  const emit = () => {
    if (rows.length === 0 && snapshots.length === 0) return;
    const record: ReplicatedRecord = { v: 1, type: 'batch', rows, snapshots };
    values.push(JSON.stringify(record));
    rows = [];
    snapshots = [];
    size = 0;
  };
  for (const row of batch.rows) {
    const rowSize = JSON.stringify(row).length + 1;
    if (size > 0 && size + rowSize > maxBytes) emit();
    rows.push(row);
    size += rowSize;
  }
  for (const snapshot of batch.snapshots) {
    const snapshotSize = JSON.stringify(snapshot).length + 1;
    if (size > 0 && size + snapshotSize > maxBytes) emit();
    snapshots.push(snapshot);
    size += snapshotSize;
  }
  emit();
  return values;
}

export class ReplicatedRecordError extends Error {
  override readonly name = 'ReplicatedRecordError';
}

/** A record read back from the journal partition; throws ReplicatedRecordError for anything else. */
export function decodeRecord(text: string): ReplicatedRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ReplicatedRecordError('journal record is not JSON', { cause: error });
  }
  const record = parsed as Partial<{ v: unknown; type: unknown; rows: unknown; snapshots: unknown; node: unknown; at: unknown }> | null;
  if (record === null || typeof record !== 'object' || record.v !== 1) throw new ReplicatedRecordError('journal record of an unknown version');
  if (record.type === 'batch' && Array.isArray(record.rows) && Array.isArray(record.snapshots)) return parsed as ReplicatedRecord;
  if (record.type === 'owner' && typeof record.node === 'string' && typeof record.at === 'number') return parsed as ReplicatedRecord;
  throw new ReplicatedRecordError(`journal record of an unknown type ${JSON.stringify(record.type)}`);
}
