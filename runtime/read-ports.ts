import { topicOf } from '../actors/event-relay/catalog.js';
import { aggregateOf, cloudEventId } from '../actors/event-relay/records.js';
import type { EventsPort, PublicEvent, TracesPort, TraceView } from '../api/ports.js';
import { PUBLIC_TAG, type JournalReader, type JournalRow } from '../persistence/journal-types.js';
import type { TraceStore } from '../persistence/trace-store.js';

/**
 * GET /events: the public journal events, shaped like the Kafka records (same type, key and id), so
 * that a consumer can move between the two without a mapping. Without Kafka this is the event feed.
 */
export class JournalEvents implements EventsPort {
  constructor(private readonly journal: JournalReader) {}

  read(after: number, limit: number): readonly PublicEvent[] {
    return toPublicEvents(this.journal.readAfter(after, limit, PUBLIC_TAG));
  }

  subscribe(listener: (events: readonly PublicEvent[]) => void): () => void {
    return this.journal.onCommit((rows) => {
      const events = toPublicEvents(rows.filter((row) => row.tags.includes(PUBLIC_TAG)));
      if (events.length > 0) listener(events);
    });
  }
}

function toPublicEvents(rows: readonly JournalRow[]): PublicEvent[] {
  const events: PublicEvent[] = [];
  for (const row of rows) {
    const type = topicOf(row.eventType);
    const aggregate = aggregateOf(row.persistenceKey);
    if (!type || !aggregate) continue;
    events.push({ position: row.position, type, key: aggregate.id, data: row.data, time: new Date(row.createdAt).toISOString(), id: cloudEventId(row) });
  }
  return events;
}

const TRACE_ID = /^[0-9a-f]{32}$/;
/** Traces followed per booking: creation, unlock, end, cancel, timers, retries. */
const TRACES_PER_BOOKING = 50;

/** GET /traces/:id — one trace by id, or every trace that touched a booking, in delivery order. */
export class JournalTraces implements TracesPort {
  constructor(private readonly store: TraceStore) {}

  find(bookingIdOrTraceId: string): TraceView | undefined {
    if (TRACE_ID.test(bookingIdOrTraceId)) {
      const steps = this.store.byTraceId(bookingIdOrTraceId).map((step) => ({ ...step }));
      return steps.length > 0 ? { traceId: bookingIdOrTraceId, steps } : undefined;
    }
    const traceIds = this.store.traceIdsForActor(`booking/${bookingIdOrTraceId}`, TRACES_PER_BOOKING);
    if (traceIds.length === 0) return undefined;
    const steps = traceIds.flatMap((traceId) => this.store.byTraceId(traceId).map((step) => ({ ...step })));
    return { traceId: traceIds[0]!, steps };
  }
}
