import type { Statement } from 'better-sqlite3';
import { topicOf } from '../actors/contract/event-catalog.js';
import type { Db } from './sqlite.js';
import type { TraceJournal, TraceJournalQuery, TracedEvent } from '../actors/contract/trace-views.js';

/**
 * The journal events that recorded trace steps caused, for the trace viewer (GET /traces/:id/view).
 * A trace step does not carry the events it persisted; the journal does: every row keeps the trace and
 * span of the message that caused it, so a step's events are the rows with its span id.
 */

interface EventRecord {
  position: number;
  persistence_key: string;
  sequence_number: number;
  event_type: string;
  data: string;
  trace_id: string | null;
  span_id: string | null;
  created_at: number;
}

/** Keys and trace ids per read: a booking's traces touch a handful of actors; more is not a viewer's query. */
const MAX_KEYS = 64;
const MAX_TRACE_IDS = 64;
const MAX_POINTS = 2000;

export class TraceJournalReads {
  private readonly selectByKeyAndTraces: Statement<[string, string], EventRecord>;
  private readonly selectSeqAt: Statement<[string, number], { seq: number | null }>;

  constructor(db: Db) {
    // UNIQUE (persistence_key, sequence_number) is the index; the trace filter runs on that key's rows only.
    this.selectByKeyAndTraces = db.prepare(
      `SELECT position, persistence_key, sequence_number, event_type, data, trace_id, span_id, created_at FROM journal
       WHERE persistence_key = ? AND trace_id IN (SELECT value FROM json_each(?)) AND is_deleted = 0 ORDER BY sequence_number`,
    );
    this.selectSeqAt = db.prepare('SELECT MAX(sequence_number) AS seq FROM journal WHERE persistence_key = ? AND created_at <= ?');
  }

  read(query: TraceJournalQuery): TraceJournal {
    const traceIds = JSON.stringify(query.traceIds.slice(0, MAX_TRACE_IDS));
    const events: TracedEvent[] = [];
    for (const key of new Set(query.keys.slice(0, MAX_KEYS))) {
      for (const record of this.selectByKeyAndTraces.all(key, traceIds)) events.push(toEvent(record));
    }
    const seqAt = query.points.slice(0, MAX_POINTS).map((point) => this.selectSeqAt.get(point.key, point.at)?.seq ?? 0);
    return { events, seqAt };
  }
}

function toEvent(record: EventRecord): TracedEvent {
  return {
    position: record.position,
    key: record.persistence_key,
    sequenceNumber: record.sequence_number,
    eventType: record.event_type,
    data: JSON.parse(record.data) as unknown,
    topic: topicOf(record.event_type) ?? null,
    traceId: record.trace_id,
    spanId: record.span_id,
    createdAt: record.created_at,
  };
}
