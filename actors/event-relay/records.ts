import type { JournalRow } from '../../runtime/kernel/journal.js';
import { traceparent } from '../../runtime/ground/trace-context.js';
import type { KafkaRecord } from '../contract/event-record.js';
import { topicOf } from '../contract/event-catalog.js';

/**
 * Journal row → Kafka record (docs/contract.md, "Kafka"): CloudEvents 1.0 in binary mode, i.e. the event
 * data is the record value and the CloudEvents attributes travel as `ce_*` headers. Pure.
 */

export type RecordResult =
  | { readonly ok: true; readonly record: KafkaRecord }
  /** The row cannot be published; it stays in the journal (and in `GET /events`). */
  | { readonly ok: false; readonly reason: string };

export interface Aggregate {
  /** `booking`, `vehicle`. */
  readonly kind: string;
  readonly id: string;
}

/** `booking/b-1` → `{ kind: 'booking', id: 'b-1' }`; ids may themselves contain `/`. */
export function aggregateOf(persistenceKey: string): Aggregate | undefined {
  const slash = persistenceKey.indexOf('/');
  if (slash <= 0 || slash === persistenceKey.length - 1) return undefined;
  return { kind: persistenceKey.slice(0, slash), id: persistenceKey.slice(slash + 1) };
}

/**
 * The CloudEvents id. (persistence key, sequence number) identifies an event for ever, so a record
 * that is published again after a crash carries the same id and consumers can drop the duplicate.
 */
export const cloudEventId = (row: Pick<JournalRow, 'persistenceKey' | 'sequenceNumber'>): string =>
  `${row.persistenceKey}:${row.sequenceNumber}`;

/** What a record is made of: a journal row, its position aside (a record does not depend on it). */
export type PublishableRow = Pick<JournalRow, 'persistenceKey' | 'sequenceNumber' | 'eventType' | 'data' | 'traceId' | 'spanId' | 'createdAt'>;

/**
 * @param topicPrefix prepended to the catalog's topic name (tests isolate themselves with it); the
 *   CloudEvents type always names the catalog topic, so consumers see the same `ce_type` everywhere.
 */
export function toKafkaRecord(row: PublishableRow, topicPrefix = ''): RecordResult {
  return recordOf(row, JSON.stringify(row.data), topicPrefix);
}

/**
 * The same record from the event's JSON text as the journal stores it (the outbox of cluster mode has
 * the text at hand, not the object): `value` is that text, which is what `JSON.stringify(data)` gave.
 */
export function toKafkaRecordFromText(row: Omit<PublishableRow, 'data'>, value: string, topicPrefix = ''): RecordResult {
  return recordOf(row, value, topicPrefix);
}

function recordOf(row: Omit<PublishableRow, 'data'>, value: string | undefined, topicPrefix: string): RecordResult {
  const topic = topicOf(row.eventType);
  if (topic === undefined) return { ok: false, reason: `event type ${row.eventType} has no topic in the catalog` };
  const aggregate = aggregateOf(row.persistenceKey);
  if (aggregate === undefined) return { ok: false, reason: `persistence key ${JSON.stringify(row.persistenceKey)} is not <kind>/<id>` };
  if (value === undefined) return { ok: false, reason: 'event data has no JSON form' };

  const headers: Record<string, string> = {
    ce_specversion: '1.0',
    ce_id: cloudEventId(row),
    ce_type: `dev.fleetactors.${topic}`,
    ce_source: `/fleetactors/${aggregate.kind}s/${aggregate.id}`,
    ce_time: new Date(row.createdAt).toISOString(),
    ce_subject: aggregate.id,
    'content-type': 'application/json',
  };
  if (row.traceId !== null && row.spanId !== null) headers.traceparent = traceparent({ traceId: row.traceId, spanId: row.spanId });

  return {
    ok: true,
    record: {
      topic: `${topicPrefix}${topic}`,
      // Key = aggregate id: Kafka hashes it to one partition, which keeps each aggregate's events in order.
      key: aggregate.id,
      value,
      headers,
      timestamp: String(row.createdAt),
    },
  };
}
