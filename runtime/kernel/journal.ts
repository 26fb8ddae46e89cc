/**
 * The journal as the rest of the system sees it. The SQLite engine (persistence/journal-engine.ts)
 * is the actor kernel's persistence engine; runtime/kernel/actor-system.ts, the one place that knows
 * nact, adapts it to nact's PersistenceEngine. The shapes below are nact's, restated so that
 * persistence/ does not depend on the actor library.
 */

/** One event as the actor runtime persists and recovers it. */
export interface PersistedEvent {
  readonly data: unknown;
  readonly sequenceNumber: number;
  /** `<kind>/<id>`. */
  readonly key: string;
  readonly tags: readonly string[];
  readonly createdAt: number;
  readonly isDeleted: boolean;
}

export interface PersistedSnapshot {
  readonly data: unknown;
  readonly sequenceNumber: number;
  readonly key: string;
  readonly createdAt: number;
}

/** One committed event. `position` is global, gap-free per commit order, and never reused. */
export interface JournalRow {
  readonly position: number;
  /** nact persistence key, `<kind>/<id>`, e.g. `vehicle/v-42`, `booking/b-1`. */
  readonly persistenceKey: string;
  /** 1-based per persistence key. */
  readonly sequenceNumber: number;
  /** `data.type` of the event, e.g. `VehicleReserved`. */
  readonly eventType: string;
  readonly data: unknown;
  /** Sorted. The tag `public` marks events that leave the process (Kafka, GET /events). */
  readonly tags: readonly string[];
  /** Trace of the message that caused the event (for `traceparent`), when known. */
  readonly traceId: string | null;
  readonly spanId: string | null;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/** Extra argument that runtime passes to `ctx.persist(event, tags, meta)`: nact forwards it to the engine. */
export interface EventMeta {
  readonly traceId?: string;
  readonly spanId?: string;
}

export const PUBLIC_TAG = 'public';

/** A row's `eventType`: the event's `type` field, else `unknown` (the journal stores it; the outbox of cluster mode reads it back from the event's text). */
export function eventTypeOf(data: unknown): string {
  const typed = data as { type?: unknown } | null;
  return typed !== null && typeof typed === 'object' && typeof typed.type === 'string' ? typed.type : 'unknown';
}

/**
 * A read-model updater. It runs inside the group-commit transaction, so a read model is exactly as
 * durable as the events it derives from and is never ahead of or behind the journal.
 */
export type Projector = ((row: JournalRow) => void) & {
  /**
   * The persistence-key prefixes (`vehicle/`) of the rows it reads; every row when absent. A row that
   * no projector reads is written without the savepoint that lets a failing projector take it back.
   */
  readonly keyPrefixes?: readonly string[];
};

export type CommitListener = (rows: readonly JournalRow[]) => void;

export interface JournalReader {
  /** Committed rows with position > `after`, ascending, at most `limit`; only rows with `tag` when given. */
  readAfter(after: number, limit: number, tag?: string): JournalRow[];
  /** Highest committed position (0 when empty). */
  lastPosition(tag?: string): number;
  /** Called after every commit with the rows it made durable. Returns an unsubscribe function. */
  onCommit(listener: CommitListener): () => void;
}

export interface CheckpointStore {
  get(name: string): number;
  /** Durable when it returns. */
  set(name: string, position: number): void;
}

/**
 * One actor's own journal, read straight from a shard's file: for time travel (`npm run replay`) and
 * for reads that derive a history from events (a vehicle's device commands). Read-only: it never
 * touches what the journal engine writes, so it works on a file a running shard has open (WAL).
 */
export interface ActorJournalEntry {
  /** 1-based per actor. */
  readonly sequenceNumber: number;
  readonly eventType: string;
  readonly data: unknown;
  /** Trace of the message that caused the event, when known. */
  readonly traceId: string | null;
  /** The delivery (trace step) that persisted it, when known. */
  readonly spanId: string | null;
  /** Commit time, epoch ms (the journal's clock, the same for every event of one commit). */
  readonly createdAt: number;
}
