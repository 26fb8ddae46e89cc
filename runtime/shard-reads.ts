import { topicOf } from '../actors/event-relay/catalog.js';
import { aggregateOf, cloudEventId } from '../actors/event-relay/records.js';
import type { JournalRow } from '../persistence/journal-types.js';
import type { StoredTraceStep, TraceStore } from '../persistence/trace-store.js';
import type { ShardEvent } from './kernel/shard-protocol.js';

/**
 * A shard's side of the reads that span the fleet (runtime/fleet-reads.ts gathers them): public
 * events shaped like the Kafka records (same type, key and id), and recorded traces.
 */
export function toShardEvents(shard: number, rows: readonly JournalRow[]): ShardEvent[] {
  const events: ShardEvent[] = [];
  for (const row of rows) {
    const type = topicOf(row.eventType);
    const aggregate = aggregateOf(row.persistenceKey);
    if (!type || !aggregate) continue;
    events.push({ shard, position: row.position, type, key: aggregate.id, data: row.data, time: new Date(row.createdAt).toISOString(), id: cloudEventId(row) });
  }
  return events;
}

export const traceSteps = (traces: TraceStore, traceId: string): StoredTraceStep[] => traces.byTraceId(traceId);

/** Every trace that touched a booking (creation, unlock, end, cancel, timers, retries), in delivery order. */
export function bookingTraceSteps(traces: TraceStore, bookingId: string, limit: number): { traceIds: string[]; steps: StoredTraceStep[] } | null {
  const traceIds = traces.traceIdsForActor(`booking/${bookingId}`, limit);
  if (traceIds.length === 0) return null;
  return { traceIds, steps: traceIds.flatMap((traceId) => traces.byTraceId(traceId)) };
}
