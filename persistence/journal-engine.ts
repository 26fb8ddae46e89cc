import type { Statement } from 'better-sqlite3';
import { createLogger, type Logger } from '../runtime/ground/logger.js';
import type { Db } from './sqlite.js';
import {
  eventTypeOf,
  PUBLIC_TAG,
  type CommitListener,
  type EventMeta,
  type JournalReader,
  type JournalRow,
  type PersistedEvent,
  type PersistedSnapshot,
  type Projector,
} from '../runtime/kernel/journal.js';
import type { BatchReplicator, ReplicatedRecord, ReplicatedBatch, ReplicatedRow, ReplicatedSnapshot } from './journal-replication.js';
import type { WalSync } from './wal-sync.js';

/**
 * nact's PersistenceEngine on SQLite, with group commit: every persist issued in one event-loop turn
 * is written in one transaction (one fsync), and each persist promise settles only after that
 * transaction committed. The journal is also the outbox that the event relay and `GET /events` read.
 */

export type JournalErrorCode =
  /** The (persistence key, sequence number) pair is already in the journal. */
  | 'duplicate-sequence-number'
  /** A projector threw: the event and its read-model changes were rolled back. */
  | 'projector-failed'
  /** The event data cannot be stored as JSON (undefined, BigInt, a cycle). */
  | 'unserialisable-event'
  /** Tags are stored comma-joined, so a tag may not contain a comma. */
  | 'invalid-tag'
  /** The row or the whole transaction failed in SQLite (I/O error, disk full, ...). */
  | 'write-failed'
  /** persist/takeSnapshot after close(). */
  | 'engine-closed'
  /** Cluster mode: the batch could not be committed to the journal of record; the engine stopped with it. */
  | 'not-replicated'
  /** Cluster mode: persist/takeSnapshot after the engine stopped (a batch was not replicated, or was but not written here). */
  | 'halted';

export class JournalError extends Error {
  override readonly name = 'JournalError';
  constructor(
    readonly code: JournalErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface JournalEngineOptions {
  /** Run inside the commit transaction for every inserted row, in this order. */
  readonly projectors?: readonly Projector[];
  readonly logger?: Logger;
  /**
   * When the queued persists are written. `immediate` (default): in a setImmediate callback, i.e. after
   * every actor handler already scheduled for this loop turn has run. `microtask`: as soon as the
   * current callback's microtasks ran. nact runs each actor's handler in its own setImmediate callback,
   * so `microtask` commits once per actor while `immediate` commits once per turn (bench/journal.ts
   * measures both); neither waits for a timer, so neither adds latency beyond the turn itself.
   */
  readonly schedule?: 'immediate' | 'microtask';
  /**
   * The connection commits at `synchronous=NORMAL` and this makes its WAL durable off the thread
   * (persistence/wal-sync.ts): a batch settles (persists resolve, listeners hear it, `readAfter` and
   * `lastPosition` show its rows) only after a sync that began after its commit. Without it a batch
   * settles when its COMMIT returns, durable under the connection's own synchronous mode.
   */
  readonly walSync?: WalSync;
}

export interface JournalStats {
  /** Transactions committed since the engine started. */
  readonly commits: number;
  /** Journal rows committed since the engine started. */
  readonly rows: number;
  /** Events in the most recent batch (committed or not). */
  readonly lastBatchSize: number;
}

/** What events() returns: awaitable, and reducible the way nact's recovery consumes it. */
export interface JournalEventStream extends PromiseLike<PersistedEvent[]> {
  reduce<U>(reducer: (previous: U, event: PersistedEvent, index: number) => U, initial: U): Promise<U>;
}

/** What nact passes to persist (its PersistedEvent class, or a plain object of the same shape). */
type EventToPersist = Pick<PersistedEvent, 'data' | 'sequenceNumber' | 'key'> &
  Partial<Pick<PersistedEvent, 'createdAt' | 'isDeleted' | 'tags'>>;

interface PendingWrite {
  readonly event: EventToPersist;
  readonly meta: EventMeta | undefined;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  row: JournalRow | undefined;
  error: unknown;
  /** Computed once when the batch is replicated before it is written. */
  fields?: RowFields;
}

interface PendingSnapshot {
  readonly snapshot: PersistedSnapshot;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  error: unknown;
}

/** A batch committed to the file and waiting for the WAL sync that makes it durable (walSync). */
interface UnsyncedBatch {
  readonly writes: PendingWrite[];
  readonly snapshots: PendingSnapshot[];
  /** flush() callers: woken once the batch has settled. */
  readonly waiters: (() => void)[];
  /** Its actors: a recovery of one of them reads after the batch has settled. */
  readonly keys: ReadonlySet<string>;
}

interface JournalRecord {
  position: number;
  persistence_key: string;
  sequence_number: number;
  event_type: string;
  data: string;
  tags: string;
  trace_id: string | null;
  span_id: string | null;
  created_at: number;
}

interface EventRecord {
  sequence_number: number;
  data: string;
  tags: string;
  created_at: number;
  is_deleted: number;
}

interface SnapshotRecord {
  sequence_number: number;
  data: string;
  created_at: number;
}

/** The checkpoints row that holds the offset of the journal of record this file has applied. */
const REPLICATED_OFFSET = 'journal-of-record';


/** The actors a batch writes for: their recoveries and look-ups wait for, or see, the batch. */
function keysOf(writes: readonly PendingWrite[], snapshots: readonly PendingSnapshot[]): Set<string> {
  const keys = new Set<string>();
  for (const write of writes) keys.add(write.event.key);
  for (const pending of snapshots) keys.add(pending.snapshot.key);
  return keys;
}
const JOURNAL_COLUMNS = 'position, persistence_key, sequence_number, event_type, data, tags, trace_id, span_id, created_at';

export class SqliteJournalEngine implements JournalReader {
  private readonly projectors: readonly Projector[];
  private readonly log: Logger;
  private readonly schedule: 'immediate' | 'microtask';
  private readonly listeners = new Set<CommitListener>();
  /** Keys whose next recovery reads nothing (expectNew), until their `events` call consumes the mark. */
  private readonly expectedNew = new Set<string>();

  private writes: PendingWrite[] = [];
  private snapshots: PendingSnapshot[] = [];
  private flushWaiters: (() => void)[] = [];
  private scheduled = false;
  private closed = false;

  /** Cluster mode: where each batch is committed before it is written here (replicateTo). */
  private replicator: BatchReplicator | null = null;
  /** The batch on its way to the replicator: keys it holds, and flush() callers waiting for it. */
  private inFlight: { readonly keys: ReadonlySet<string>; readonly waiters: (() => void)[] } | null = null;
  /** Cluster mode: the pause after a commit (BatchReplicator.pauseAfterCommitMs) is running; its end starts the next batch. */
  private pausing = false;
  /** walSync: batches committed since the running sync began, and those that sync covers. */
  private readonly walSync: WalSync | null;
  private unsynced: UnsyncedBatch[] = [];
  private syncing: UnsyncedBatch[] | null = null;
  /** The last journal position readers may see: every row up to it is durable (walSync), else all. */
  private durablePosition = Number.POSITIVE_INFINITY;
  private halted: unknown = null;
  private readonly haltListeners = new Set<(error: unknown) => void>();

  private commits = 0;
  private committedRows = 0;
  private lastBatchSize = 0;

  private readonly insertEvent: Statement<[string, number, string, string, string, number, string | null, string | null, number, number]>;
  private readonly upsertSnapshot: Statement<[string, number, string, number]>;
  private readonly selectEvents: Statement<[string, number, number], EventRecord>;
  private readonly selectAllEvents: Statement<[string, number], EventRecord>;
  private readonly selectSnapshot: Statement<[string], SnapshotRecord>;
  private readonly selectAfter: Statement<[number, number], JournalRecord>;
  private readonly selectPublicAfter: Statement<[number, number], JournalRecord>;
  private readonly selectTaggedAfter: Statement<[number, string, number], JournalRecord>;
  private readonly selectLast: Statement<[], { last: number | null }>;
  private readonly selectLastPublic: Statement<[], { last: number | null }>;
  private readonly selectLastTagged: Statement<[string], { last: number | null }>;
  private readonly selectReplicatedOffset: Statement<[string], { position: number }>;
  private readonly selectTaken: Statement<[string, number], { taken: number }>;
  private readonly selectHeld: Statement<[string, string], { held: number }>;
  private readonly upsertReplicatedOffset: Statement<[string, number]>;
  private readonly writeBatch: (writes: PendingWrite[], snapshots: PendingSnapshot[], replicatedOffset: number | null) => void;
  private readonly insertProjected: (write: PendingWrite, fields: RowFields) => JournalRow;

  constructor(
    private readonly db: Db,
    options: JournalEngineOptions = {},
  ) {
    this.projectors = options.projectors ?? [];
    this.log = (options.logger ?? createLogger('silent')).child({ component: 'journal' });
    this.schedule = options.schedule ?? 'immediate';
    this.walSync = options.walSync ?? null;

    this.insertEvent = db.prepare(
      `INSERT INTO journal (persistence_key, sequence_number, event_type, data, tags, is_public, trace_id, span_id, created_at, is_deleted)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    // A late snapshot never replaces a newer one: recovery would replay events the newer one covers.
    this.upsertSnapshot = db.prepare(
      `INSERT INTO snapshots (persistence_key, sequence_number, data, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (persistence_key) DO UPDATE
         SET sequence_number = excluded.sequence_number, data = excluded.data, created_at = excluded.created_at
         WHERE excluded.sequence_number >= snapshots.sequence_number`,
    );
    this.selectEvents = db.prepare(
      `SELECT sequence_number, data, tags, created_at, is_deleted FROM journal
       WHERE persistence_key = ? AND sequence_number > ? ORDER BY sequence_number LIMIT ?`,
    );
    // Recovery reads all of a key's events: without `LIMIT ?` (bound to -1) SQLite answered it 3 × faster.
    this.selectAllEvents = db.prepare(
      `SELECT sequence_number, data, tags, created_at, is_deleted FROM journal
       WHERE persistence_key = ? AND sequence_number > ? ORDER BY sequence_number`,
    );
    this.selectSnapshot = db.prepare('SELECT sequence_number, data, created_at FROM snapshots WHERE persistence_key = ?');
    this.selectAfter = db.prepare(`SELECT ${JOURNAL_COLUMNS} FROM journal WHERE position > ? ORDER BY position LIMIT ?`);
    // `is_public = 1` spelled out so that SQLite picks the partial index journal_public.
    this.selectPublicAfter = db.prepare(
      `SELECT ${JOURNAL_COLUMNS} FROM journal WHERE is_public = 1 AND position > ? ORDER BY position LIMIT ?`,
    );
    this.selectTaggedAfter = db.prepare(
      `SELECT ${JOURNAL_COLUMNS} FROM journal WHERE position > ? AND instr(',' || tags || ',', ?) > 0 ORDER BY position LIMIT ?`,
    );
    this.selectLast = db.prepare('SELECT MAX(position) AS last FROM journal');
    this.selectLastPublic = db.prepare('SELECT MAX(position) AS last FROM journal WHERE is_public = 1');
    this.selectLastTagged = db.prepare(`SELECT MAX(position) AS last FROM journal WHERE instr(',' || tags || ',', ?) > 0`);
    // openWalSync synced what the file holds: all of it is durable.
    if (this.walSync !== null) this.durablePosition = this.selectLast.get()?.last ?? 0;

    // The offset of the journal of record that this file has applied, in the checkpoints table: it
    // commits with the rows it covers, so the two never disagree after a crash.
    this.selectReplicatedOffset = db.prepare('SELECT position FROM checkpoints WHERE name = ?');
    this.selectTaken = db.prepare('SELECT 1 AS taken FROM journal WHERE persistence_key = ? AND sequence_number = ?');
    this.selectHeld = db.prepare('SELECT EXISTS (SELECT 1 FROM journal WHERE persistence_key = ?) OR EXISTS (SELECT 1 FROM snapshots WHERE persistence_key = ?) AS held');
    this.upsertReplicatedOffset = db.prepare('INSERT INTO checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position');

    this.writeBatch = db.transaction((writes: PendingWrite[], snapshots: PendingSnapshot[], replicatedOffset: number | null) => {
      for (const write of writes) this.writeOne(write);
      for (const pending of snapshots) this.writeSnapshot(pending);
      if (replicatedOffset !== null) this.upsertReplicatedOffset.run(REPLICATED_OFFSET, replicatedOffset);
    }).immediate;
    // Called inside writeBatch, better-sqlite3 turns this into a savepoint: a projector that throws
    // takes back its own row and read-model writes, not the rest of the batch.
    this.insertProjected = db.transaction((write: PendingWrite, fields: RowFields): JournalRow => {
      const row = this.insertRow(write, fields);
      for (const project of this.projectors) {
        try {
          project(row);
        } catch (error) {
          throw new JournalError('projector-failed', `projector ${project.name || '(anonymous)'} failed for ${row.persistenceKey}#${row.sequenceNumber}`, { cause: error });
        }
      }
      return row;
    });
  }

  // ---------------------------------------------------------------- the actor kernel's persistence engine (runtime/kernel/actor-system.ts adapts it to nact)

  /** Queues the event for this turn's commit; resolves once it is durable. `meta` is what runtime passes to ctx.persist. */
  persist(event: EventToPersist, meta?: EventMeta): Promise<void> {
    if (this.closed) return Promise.reject(new JournalError('engine-closed', 'journal engine is closed'));
    if (this.halted !== null) return Promise.reject(this.haltedError());
    return new Promise<void>((resolve, reject) => {
      this.writes.push({ event, meta, resolve, reject, row: undefined, error: undefined });
      this.scheduleFlush();
    });
  }

  /** Events of `key` with sequence number > `offset`, ascending; only those carrying every tag in `tags` when given. */
  events(persistenceKey: string, offset: number, limit?: number, tags?: readonly string[]): JournalEventStream {
    if (offset === 0 && this.expectedNew.delete(persistenceKey)) return eventStream(() => Promise.resolve([]));
    let loaded: Promise<PersistedEvent[]> | undefined;
    // Recovery may start while the same actor's last events still wait in the queue: read after them.
    return eventStream(() => (loaded ??= this.settled(persistenceKey).then(() => this.readEvents(persistenceKey, offset, limit, tags))));
  }

  /**
   * The next recovery of `key` (nact asks latestSnapshot, then events from 0) reads nothing: two of a
   * booking's three activations are of actors that cannot have a journal yet (the booking itself, its
   * payment authorization), and two reads each were 7 % of a shard's time under the booking load. A wrong
   * hint cannot corrupt anything: the actor's first event then collides with its journal's first
   * (UNIQUE key and sequence number) and the directory recovers it for real.
   */
  expectNew(persistenceKey: string): void {
    this.expectedNew.add(persistenceKey);
  }

  /**
   * Whether anything of `key` is in the journal (committed, synced or not), on its way there (queued,
   * or in the batch out to the journal of record) or waiting for its sync: two indexed look-ups.
   */
  holds(persistenceKey: string): boolean {
    return this.notWrittenYet(persistenceKey) || this.selectHeld.get(persistenceKey, persistenceKey)!.held === 1;
  }

  /** Something of `key` is queued, or in the batch out to the journal of record: not in this file yet. */
  private notWrittenYet(persistenceKey: string): boolean {
    return (
      this.writes.some((write) => write.event.key === persistenceKey) ||
      this.snapshots.some((pending) => pending.snapshot.key === persistenceKey) ||
      this.inFlight?.keys.has(persistenceKey) === true
    );
  }

  /** The newest snapshot of `key`; resolves undefined when there is none (nact checks for that). */
  latestSnapshot(persistenceKey: string): Promise<PersistedSnapshot> {
    if (this.expectedNew.has(persistenceKey)) return Promise.resolve(undefined as unknown as PersistedSnapshot);
    // nact's typings omit `| undefined`, but its recovery tests the result for truthiness.
    return this.settled(persistenceKey).then(() => this.readSnapshot(persistenceKey) as PersistedSnapshot);
  }

  /**
   * Resolves once nothing of `key` waits in the queue. Only that key's writes are waited for: under
   * load something is always queued, and a new actor (most activations) would otherwise wait a whole
   * commit for other actors' events before it could even read its own.
   */
  private settled(persistenceKey: string): Promise<void> {
    const queued =
      this.notWrittenYet(persistenceKey) ||
      this.unsynced.some((batch) => batch.keys.has(persistenceKey)) ||
      this.syncing?.some((batch) => batch.keys.has(persistenceKey)) === true;
    return queued ? this.flush() : Promise.resolve();
  }

  /** Upserts the snapshot in this turn's commit (one fsync with the events), keeping only the newest per key. */
  takeSnapshot(snapshot: PersistedSnapshot): Promise<void> {
    if (this.closed) return Promise.reject(new JournalError('engine-closed', 'journal engine is closed'));
    if (this.halted !== null) return Promise.reject(this.haltedError());
    return new Promise<void>((resolve, reject) => {
      this.snapshots.push({ snapshot, resolve, reject, error: undefined });
      this.scheduleFlush();
    });
  }

  readSnapshot(persistenceKey: string): PersistedSnapshot | undefined {
    const record = this.selectSnapshot.get(persistenceKey);
    if (!record) return undefined;
    return {
      data: JSON.parse(record.data) as unknown,
      sequenceNumber: record.sequence_number,
      key: persistenceKey,
      createdAt: record.created_at,
    };
  }

  // ---------------------------------------------------------------- JournalReader

  readAfter(after: number, limit: number, tag?: string): JournalRow[] {
    const records =
      tag === undefined
        ? this.selectAfter.all(after, limit)
        : tag === PUBLIC_TAG
          ? this.selectPublicAfter.all(after, limit)
          : this.selectTaggedAfter.all(after, `,${tag},`, limit);
    const durable = this.durablePosition;
    return (records.length > 0 && records[records.length - 1]!.position > durable ? records.filter((record) => record.position <= durable) : records).map(toJournalRow);
  }

  lastPosition(tag?: string): number {
    const record =
      tag === undefined
        ? this.selectLast.get()
        : tag === PUBLIC_TAG
          ? this.selectLastPublic.get()
          : this.selectLastTagged.get(`,${tag},`);
    return Math.min(record?.last ?? 0, this.durablePosition);
  }

  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /** Resolves when everything queued so far has been written (each persist promise has settled). */
  flush(): Promise<void> {
    if (this.writes.length === 0 && this.snapshots.length === 0) {
      const inFlight = this.inFlight;
      if (inFlight !== null) return new Promise<void>((resolve) => inFlight.waiters.push(resolve));
      const lastUnsynced = this.unsynced.at(-1) ?? this.syncing?.at(-1);
      if (lastUnsynced !== undefined) return new Promise<void>((resolve) => lastUnsynced.waiters.push(resolve));
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.flushWaiters.push(resolve));
  }

  /** Stops accepting persists and snapshots, then drains the queue. Does not close the database (not ours). */
  close(): Promise<void> {
    this.closed = true;
    return this.flush();
  }

  // ---------------------------------------------------------------- the journal of record (cluster mode, docs/cluster.md)

  /**
   * From now on every batch is committed by `replicator` before it is written here, and its persists
   * resolve only after both. Set once, after the restore and before the first persist.
   */
  replicateTo(replicator: BatchReplicator): void {
    this.replicator = replicator;
  }

  /** The offset of the journal of record this file has applied up to (inclusive); null when it never applied one. */
  replicatedOffset(): number | null {
    return this.selectReplicatedOffset.get(REPLICATED_OFFSET)?.position ?? null;
  }

  /**
   * Restore: writes a record read back from the journal of record, at `offset`, as the batch that
   * wrote it was written (same rows in the same order, same projectors, same per-row refusals: a row
   * refused then, such as a duplicate sequence number, is refused again), together with the offset.
   * Before the engine serves: no listener hears these rows. Throws when the transaction fails.
   */
  applyReplicated(record: ReplicatedRecord, offset: number): void {
    if (record.type !== 'batch') {
      this.upsertReplicatedOffset.run(REPLICATED_OFFSET, offset);
      return;
    }
    const ignore = () => {};
    const writes: PendingWrite[] = record.rows.map((row) => ({
      event: { key: row.key, sequenceNumber: row.seq, data: JSON.parse(row.data) as unknown, tags: row.tags, createdAt: row.createdAt, isDeleted: row.isDeleted },
      meta: { traceId: row.traceId ?? undefined, spanId: row.spanId ?? undefined },
      resolve: ignore,
      reject: ignore,
      row: undefined,
      error: undefined,
    }));
    const snapshots: PendingSnapshot[] = record.snapshots.map((snapshot) => ({
      snapshot: { key: snapshot.key, sequenceNumber: snapshot.seq, data: JSON.parse(snapshot.data) as unknown, createdAt: snapshot.createdAt },
      resolve: ignore,
      reject: ignore,
      error: undefined,
    }));
    this.writeBatch(writes, snapshots, offset);
  }

  /**
   * Called once, synchronously, when the engine stops for good, before any persist of the failed batch
   * is rejected; at once when it already stopped.
   */
  onHalt(listener: (error: unknown) => void): () => void {
    if (this.halted !== null) {
      listener(this.halted);
      return () => {};
    }
    this.haltListeners.add(listener);
    return () => {
      this.haltListeners.delete(listener);
    };
  }

  stats(): JournalStats {
    return { commits: this.commits, rows: this.committedRows, lastBatchSize: this.lastBatchSize };
  }

  // ---------------------------------------------------------------- internals

  private scheduleFlush(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.schedule === 'immediate') setImmediate(this.runFlush);
    else queueMicrotask(this.runFlush);
  }

  /** Never throws: it runs as a bare setImmediate callback. */
  private readonly runFlush = (): void => {
    this.scheduled = false;
    if (this.replicator !== null) {
      this.startReplicatedBatch(this.replicator);
      return;
    }
    const { writes, snapshots, waiters } = this.takePending();
    if ((writes.length > 0 || snapshots.length > 0) && this.commitBatch(writes, snapshots, waiters) === 'awaits-sync') return;
    for (const wake of waiters) wake();
  };

  /** What was persisted since the last batch, and who waits for it: the next batch, taken whole. */
  private takePending(): { readonly writes: PendingWrite[]; readonly snapshots: PendingSnapshot[]; readonly waiters: (() => void)[] } {
    const pending = { writes: this.writes, snapshots: this.snapshots, waiters: this.flushWaiters };
    this.writes = [];
    this.snapshots = [];
    this.flushWaiters = [];
    return pending;
  }

  /** 'awaits-sync' (walSync): committed, and settled with its waiters by the sync that covers it. */
  private commitBatch(writes: PendingWrite[], snapshots: PendingSnapshot[], waiters: (() => void)[]): 'settled' | 'awaits-sync' {
    this.lastBatchSize = writes.length;
    if (this.halted !== null) {
      this.rejectAll(writes, snapshots, this.haltedError());
      return 'settled';
    }
    try {
      this.writeBatch(writes, snapshots, null);
    } catch (error) {
      // Rolled back as a whole (I/O error, disk full): nothing of this batch is durable.
      this.log.error({ err: error, events: writes.length, snapshots: snapshots.length }, 'journal commit failed');
      const failure = new JournalError('write-failed', 'journal transaction failed and was rolled back', { cause: error });
      for (const write of writes) write.reject(write.error ?? failure);
      for (const pending of snapshots) pending.reject(pending.error ?? failure);
      return 'settled';
    }
    if (this.walSync === null) {
      this.settle(writes, snapshots);
      return 'settled';
    }
    this.unsynced.push({ writes, snapshots, waiters, keys: keysOf(writes, snapshots) });
    this.startSync(this.walSync);
    return 'awaits-sync';
  }

  /**
   * One sync at a time covers every batch committed before it began; batches committed meanwhile wait
   * for the next one (group commit of the fsync). A failed sync leaves the outcome of every unsynced
   * commit unknown (after a failed fsync the kernel may have dropped the dirty pages): the engine halts,
   * as PostgreSQL does, and a restart reads what the file really holds.
   */
  private startSync(walSync: WalSync): void {
    if (this.syncing !== null || this.unsynced.length === 0) return;
    const covered = this.unsynced;
    this.unsynced = [];
    this.syncing = covered;
    walSync.sync((error) => {
      this.syncing = null;
      if (error !== null) {
        this.halt(error);
        const failure = new JournalError('write-failed', 'the journal could not make its commit durable (fsync failed)', { cause: error });
        for (const batch of [...covered, ...this.unsynced.splice(0)]) {
          this.rejectAll(batch.writes, batch.snapshots, failure);
          for (const wake of batch.waiters) wake();
        }
        return;
      }
      for (const batch of covered) {
        for (const write of batch.writes) if (write.row && write.row.position > this.durablePosition) this.durablePosition = write.row.position;
        this.settle(batch.writes, batch.snapshots);
        for (const wake of batch.waiters) wake();
      }
      this.startSync(walSync);
    });
  }

  /** After the batch's transaction committed: the commit listeners hear its rows, then each persist settles. */
  private settle(writes: PendingWrite[], snapshots: PendingSnapshot[]): void {
    this.commits += 1;
    const committed: JournalRow[] = [];
    for (const write of writes) if (write.row) committed.push(write.row);
    this.committedRows += committed.length;
    if (committed.length > 0) {
      for (const listener of this.listeners) {
        try {
          listener(committed);
        } catch (error) {
          this.log.error({ err: error }, 'journal commit listener failed');
        }
      }
    }
    for (const write of writes) {
      if (write.row) write.resolve();
      else write.reject(write.error);
    }
    for (const pending of snapshots) {
      if (pending.error === undefined) pending.resolve();
      else pending.reject(pending.error);
    }
  }

  /**
   * Cluster mode: one batch at a time goes to the replicator; what is persisted meanwhile queues up
   * and becomes the next batch, so a busy shard makes one transaction of the journal of record per
   * batch, not per event.
   */
  private startReplicatedBatch(replicator: BatchReplicator): void {
    if (this.inFlight !== null || this.pausing) return; // its end starts the next batch
    const { writes, snapshots, waiters } = this.takePending();
    if (writes.length === 0 && snapshots.length === 0) {
      for (const wake of waiters) wake();
      return;
    }
    const inFlight = { keys: keysOf(writes, snapshots), waiters };
    this.inFlight = inFlight;
    void this.commitReplicated(replicator, writes, snapshots).finally(() => {
      this.inFlight = null;
      for (const wake of inFlight.waiters) wake();
      const pauseMs = this.halted === null ? (replicator.pauseAfterCommitMs?.(writes.length) ?? 0) : 0;
      if (pauseMs <= 0) {
        this.startNextReplicatedBatch(replicator);
        return;
      }
      this.pausing = true;
      setTimeout(() => {
        this.pausing = false;
        this.startNextReplicatedBatch(replicator);
      }, pauseMs);
    });
  }

  private startNextReplicatedBatch(replicator: BatchReplicator): void {
    if (this.writes.length > 0 || this.snapshots.length > 0) this.startReplicatedBatch(replicator);
  }

  /**
   * The order is the argument (docs/cluster.md, "Durable before acknowledged"): the journal of record
   * first, then this file, then the acknowledgement.
   * - A crash before the Kafka commit: the batch is nowhere, nobody was told it was kept.
   * - A crash after the Kafka commit, before the SQLite commit: the batch is in Kafka only, and nobody
   *   was told (the outcome a client of a timed-out request must expect anyway). The next owner replays
   *   it from the offset this file recorded, which still names the batch before.
   * - After both: this file holds the batch and its offset in one transaction, so a restore never
   *   applies it twice.
   * The other order (SQLite first) would leave, after a crash or a fence, a local tail that Kafka does
   * not hold, with read models already projected from it: it could only be thrown away by rebuilding
   * the file. This way the file is never ahead of the journal of record.
   *
   * Any failure on the way halts the engine: a failed commit may still have committed (its outcome is
   * unknown), and a batch in Kafka but not in this file would let the next persist reuse its sequence
   * numbers. The shard stops and a restart catches up from Kafka.
   */
  private async commitReplicated(replicator: BatchReplicator, writes: PendingWrite[], snapshots: PendingSnapshot[]): Promise<void> {
    this.lastBatchSize = writes.length;
    if (this.halted !== null) {
      this.rejectAll(writes, snapshots, this.haltedError());
      return;
    }
    const batch = this.replicatedForm(writes, snapshots);
    let offset: number;
    try {
      offset = await replicator.replicate(batch);
    } catch (error) {
      this.halt(error);
      this.rejectAll(writes, snapshots, new JournalError('not-replicated', 'the batch was not committed to the journal of record', { cause: error }));
      return;
    }
    if (!this.db.open) {
      // Closed underneath (a crash-like stop): the batch is in Kafka; a restore brings it here.
      this.rejectAll(writes, snapshots, new JournalError('engine-closed', 'journal engine is closed'));
      return;
    }
    try {
      this.writeBatch(writes, snapshots, offset);
    } catch (error) {
      // In Kafka but not here: this file is behind its journal of record and must catch up first.
      this.log.error({ err: error, events: writes.length, snapshots: snapshots.length, offset }, 'journal commit failed after the journal of record committed it');
      this.halt(error);
      this.rejectAll(writes, snapshots, new JournalError('write-failed', 'journal transaction failed and was rolled back', { cause: error }));
      return;
    }
    this.settle(writes, snapshots);
  }

  /**
   * What goes to the journal of record: the rows and snapshots that can be written (the others are
   * refused here and now). A sequence number already taken, in this file or earlier in this batch, is
   * refused before Kafka sees it: the batch's public events go out in its transaction (the outbox,
   * docs/cluster.md), and a duplicate refused only after the commit would have published an event
   * the journal does not hold. Taken-for-new activations meet this refusal by design
   * (runtime/kernel/fresh-proof.ts). One batch is in flight at a time, so the file holds every earlier one.
   */
  private replicatedForm(writes: PendingWrite[], snapshots: PendingSnapshot[]): ReplicatedBatch {
    const rows: ReplicatedRow[] = [];
    const inBatch = new Set<string>();
    for (const write of writes) {
      try {
        write.fields = rowFields(write.event, write.meta);
      } catch (error) {
        write.error = error;
        continue;
      }
      const { key, sequenceNumber } = write.event;
      const id = `${sequenceNumber}:${key}`;
      if (inBatch.has(id) || this.selectTaken.get(key, sequenceNumber) !== undefined) {
        write.error = new JournalError('duplicate-sequence-number', `${key}#${sequenceNumber} is already in the journal`);
        continue;
      }
      inBatch.add(id);
      const { event, fields } = write;
      rows.push({ key: event.key, seq: event.sequenceNumber, data: fields.json, tags: fields.tags, traceId: fields.traceId, spanId: fields.spanId, createdAt: fields.createdAt, isDeleted: event.isDeleted === true });
    }
    const replicatedSnapshots: ReplicatedSnapshot[] = [];
    for (const pending of snapshots) {
      const json = JSON.stringify(pending.snapshot.data);
      if (json === undefined) continue; // writeSnapshot refuses it the same way
      replicatedSnapshots.push({ key: pending.snapshot.key, seq: pending.snapshot.sequenceNumber, data: json, createdAt: pending.snapshot.createdAt ?? Date.now() });
    }
    return { rows, snapshots: replicatedSnapshots };
  }

  /** The engine stops for good: its listeners hear it first (the shard stops answering), then the callers. */
  private halt(error: unknown): void {
    if (this.halted !== null) return;
    this.halted = error;
    this.log.error({ err: error }, 'a batch could not be made durable (journal of record, or fsync): the journal stops');
    for (const listener of this.haltListeners) {
      try {
        listener(error);
      } catch (listenerError) {
        this.log.error({ err: listenerError }, 'journal halt listener failed');
      }
    }
  }

  private haltedError(): JournalError {
    return new JournalError('halted', 'the journal stopped: a batch was not made durable (journal of record, or fsync)', { cause: this.halted });
  }

  private rejectAll(writes: PendingWrite[], snapshots: PendingSnapshot[], failure: JournalError): void {
    for (const write of writes) write.reject(write.error ?? failure);
    for (const pending of snapshots) pending.reject(failure);
  }

  /** Inside the batch transaction. A failure of this one row is recorded on it; a failure of the transaction is rethrown. */
  private writeOne(write: PendingWrite): void {
    if (write.error !== undefined) return; // refused before the batch was replicated
    let fields: RowFields;
    try {
      fields = write.fields ?? rowFields(write.event, write.meta);
    } catch (error) {
      write.error = error;
      return;
    }
    try {
      write.row = this.isProjected(write.event.key) ? this.insertProjected(write, fields) : this.insertRow(write, fields);
    } catch (error) {
      // SQLite rolls back the whole transaction on some errors (SQLITE_FULL, SQLITE_IOERR): then the
      // batch cannot go on, and rows written before this one are gone too.
      if (!this.db.inTransaction) throw error;
      write.error = classifyRowError(error, write.event);
      if (write.error instanceof JournalError && write.error.code === 'projector-failed') {
        this.log.error({ err: write.error, cause: write.error.cause, key: write.event.key }, 'projector failed; event rejected');
      }
    }
  }

  /** Whether a projector reads rows of `key` (a payment's rows: none, and their savepoint was 2 statements each). */
  private isProjected(key: string): boolean {
    for (const project of this.projectors) {
      if (project.keyPrefixes === undefined) return true;
      for (const prefix of project.keyPrefixes) if (key.startsWith(prefix)) return true;
    }
    return false;
  }

  /** A failed statement only undoes itself in SQLite, so a duplicate key needs no savepoint here. */
  private insertRow(write: PendingWrite, fields: RowFields): JournalRow {
    const { event } = write;
    const info = this.insertEvent.run(
      event.key,
      event.sequenceNumber,
      fields.eventType,
      fields.json,
      fields.tagText,
      fields.isPublic ? 1 : 0,
      fields.traceId,
      fields.spanId,
      fields.createdAt,
      event.isDeleted ? 1 : 0,
    );
    return {
      position: Number(info.lastInsertRowid),
      persistenceKey: event.key,
      sequenceNumber: event.sequenceNumber,
      eventType: fields.eventType,
      data: event.data,
      tags: fields.tags,
      traceId: fields.traceId,
      spanId: fields.spanId,
      createdAt: fields.createdAt,
    };
  }

  private writeSnapshot(pending: PendingSnapshot): void {
    const { snapshot } = pending;
    try {
      const json = JSON.stringify(snapshot.data);
      if (json === undefined) throw new JournalError('unserialisable-event', `snapshot of ${snapshot.key} is not JSON`);
      this.upsertSnapshot.run(snapshot.key, snapshot.sequenceNumber, json, snapshot.createdAt ?? Date.now());
    } catch (error) {
      if (!this.db.inTransaction) throw error;
      pending.error = error instanceof JournalError ? error : new JournalError('write-failed', `snapshot of ${snapshot.key} failed`, { cause: error });
    }
  }

  private readEvents(key: string, offset: number, limit: number | undefined, tags: readonly string[] | undefined): PersistedEvent[] {
    const wanted = tags && tags.length > 0 ? tags : undefined;
    // Filtering by tag happens here, so the SQL limit only applies when there is no tag filter.
    const records = wanted || limit === undefined ? this.selectAllEvents.all(key, offset) : this.selectEvents.all(key, offset, limit);
    const events: PersistedEvent[] = [];
    for (const record of records) {
      const eventTags = splitTags(record.tags);
      if (wanted && !wanted.every((tag) => eventTags.includes(tag))) continue;
      events.push({
        data: JSON.parse(record.data) as unknown,
        sequenceNumber: record.sequence_number,
        key,
        createdAt: record.created_at,
        isDeleted: record.is_deleted === 1,
        tags: eventTags,
      });
      if (limit !== undefined && events.length >= limit) break;
    }
    return events;
  }
}

function eventStream(load: () => Promise<PersistedEvent[]>): JournalEventStream {
  return {
    then: (onFulfilled, onRejected) => load().then(onFulfilled, onRejected),
    reduce: (reducer, initial) => load().then((events) => events.reduce(reducer, initial)),
  };
}

interface RowFields {
  readonly eventType: string;
  readonly json: string;
  readonly tags: readonly string[];
  readonly tagText: string;
  readonly isPublic: boolean;
  readonly traceId: string | null;
  readonly spanId: string | null;
  readonly createdAt: number;
}

function rowFields(event: EventToPersist, meta: EventMeta | undefined): RowFields {
  let json: string | undefined;
  try {
    json = JSON.stringify(event.data);
  } catch (error) {
    throw new JournalError('unserialisable-event', `event ${event.key}#${event.sequenceNumber} has no JSON form`, { cause: error });
  }
  if (json === undefined) {
    throw new JournalError('unserialisable-event', `event ${event.key}#${event.sequenceNumber} has no JSON form`);
  }
  const given = event.tags ?? [];
  // nact's PersistedEvent sorts its tags already; a plain object may not have.
  const tags = given.length > 1 ? [...given].sort() : given;
  for (const tag of tags) {
    if (tag.includes(',')) throw new JournalError('invalid-tag', `tag ${JSON.stringify(tag)} contains a comma`);
  }
  return {
    eventType: eventTypeOf(event.data),
    json,
    tags,
    tagText: tags.join(','),
    isPublic: tags.includes(PUBLIC_TAG),
    traceId: meta?.traceId ?? null,
    spanId: meta?.spanId ?? null,
    createdAt: typeof event.createdAt === 'number' ? event.createdAt : Date.now(),
  };
}

function classifyRowError(error: unknown, event: EventToPersist): JournalError {
  if (error instanceof JournalError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new JournalError('duplicate-sequence-number', `${event.key}#${event.sequenceNumber} is already in the journal`, { cause: error });
  }
  return new JournalError('write-failed', `writing ${event.key}#${event.sequenceNumber} failed`, { cause: error });
}

const splitTags = (text: string): string[] => (text === '' ? [] : text.split(','));

function toJournalRow(record: JournalRecord): JournalRow {
  return {
    position: record.position,
    persistenceKey: record.persistence_key,
    sequenceNumber: record.sequence_number,
    eventType: record.event_type,
    data: JSON.parse(record.data) as unknown,
    tags: splitTags(record.tags),
    traceId: record.trace_id,
    spanId: record.span_id,
    createdAt: record.created_at,
  };
}
