import type { ActorJournalEntry } from '../runtime/kernel/journal.js';
import type { Db } from './sqlite.js';


export interface ActorJournalQuery {
  /** Only events up to this sequence number (inclusive). */
  readonly untilSeq?: number;
  /** Only the newest `last` events (still returned oldest first). */
  readonly last?: number;
}

interface Row {
  sequence_number: number;
  event_type: string;
  data: string;
  trace_id: string | null;
  span_id: string | null;
  created_at: number;
}

/** `persistenceKey` is `<kind>/<id>` (runtime/kernel/directory.ts `actorName`). Oldest first. */
export function readActorJournal(db: Db, persistenceKey: string, query: ActorJournalQuery = {}): ActorJournalEntry[] {
  const until = query.untilSeq ?? Number.MAX_SAFE_INTEGER;
  // The (persistence_key, sequence_number) unique index serves both orders.
  const rows =
    query.last === undefined
      ? db
          .prepare<[string, number], Row>(
            'SELECT sequence_number, event_type, data, trace_id, span_id, created_at FROM journal WHERE persistence_key = ? AND sequence_number <= ? AND is_deleted = 0 ORDER BY sequence_number',
          )
          .all(persistenceKey, until)
      : db
          .prepare<[string, number, number], Row>(
            'SELECT sequence_number, event_type, data, trace_id, span_id, created_at FROM journal WHERE persistence_key = ? AND sequence_number <= ? AND is_deleted = 0 ORDER BY sequence_number DESC LIMIT ?',
          )
          .all(persistenceKey, until, query.last)
          .reverse();
  return rows.map((row) => ({
    sequenceNumber: row.sequence_number,
    eventType: row.event_type,
    data: JSON.parse(row.data) as unknown,
    traceId: row.trace_id,
    spanId: row.span_id,
    createdAt: row.created_at,
  }));
}
