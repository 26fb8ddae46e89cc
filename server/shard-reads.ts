import { topicOf } from '../actors/contract/event-catalog.js';
import { aggregateOf, cloudEventId } from '../actors/event-relay/records.js';
import { VEHICLE } from '../actors/vehicle/actor.js';
import { readActorJournal } from '../persistence/actor-journal.js';
import type { JournalReader, JournalRow } from '../runtime/kernel/journal.js';
import type { Db } from '../persistence/sqlite.js';
import type { StoredTraceStep } from '../runtime/kernel/trace-step.js';
import type { TraceStore } from '../persistence/trace-store.js';
import type { ShardEvent } from './shard-calls.js';
import { COMMAND_EVENT_TYPES, CommandOutcomeCounter, commandHistory, eventsForCommands, type CommandRecord, type CommandState } from '../actors/vehicle/command-history.js';

/**
 * A shard's side of the reads that span the fleet (server/fleet-reads.ts gathers them): public
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

/** A vehicle's recent device commands, newest first, from its journal; null when it has none (no such vehicle). */
export function vehicleCommands(db: Db, vehicleId: string, limit: number, now: number): CommandRecord[] | null {
  const entries = readActorJournal(db, `${VEHICLE}/${vehicleId}`, { last: eventsForCommands(limit) });
  return entries.length === 0 ? null : commandHistory(entries, now, limit);
}

/** Counts the shard's device commands by state as their events commit (ShardStats `commands`). */
export function watchCommandOutcomes(db: Db, journal: Pick<JournalReader, 'onCommit'>): { counts(): Record<CommandState, number>; stop(): void } {
  // An answer to a command issued before this shard started: its request is in the vehicle's recent journal.
  const counter = new CommandOutcomeCounter((vehicleId, beforeSeq) => readActorJournal(db, `${VEHICLE}/${vehicleId}`, { untilSeq: beforeSeq - 1, last: 64 }));
  const stop = journal.onCommit((rows) => {
    for (const row of rows) {
      if (row.persistenceKey.startsWith(VEHICLE_PREFIX) && COMMAND_EVENT_TYPES.has(row.eventType)) counter.onEvent(row);
    }
  });
  return { counts: () => counter.counts(), stop };
}

const VEHICLE_PREFIX = `${VEHICLE}/`;
