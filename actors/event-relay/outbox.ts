import { eventTypeOf, PUBLIC_TAG } from '../../runtime/kernel/journal.js';
import type { Logger } from '../../runtime/ground/logger.js';
import type { KafkaRecord } from '../contract/event-record.js';
import { toKafkaRecordFromText } from './records.js';

/**
 * The event relay's part in cluster mode (docs/cluster.md, "The public events: an exactly-once
 * outbox"): there, a shard's public events go to Kafka in the same transaction as the group-commit
 * batch that journals them, not after it. The shard's journal of record (adapters/kafka/
 * journal-of-record.ts) owns that transaction; what goes out in it is decided here, by the relay's own
 * record builder (records.ts), so the records are the ones the relay publishes in a single process:
 * same topics, keys, values and CloudEvents headers, `ce_id` included.
 */

/** A row of a batch as the journal of record carries it (persistence's ReplicatedRow has this shape). */
export interface OutboxRow {
  /** The persistence key, `<kind>/<id>`. */
  readonly key: string;
  readonly seq: number;
  /** The event's JSON text, exactly as the journal stores it. */
  readonly data: string;
  readonly tags: readonly string[];
  readonly traceId: string | null;
  readonly spanId: string | null;
  readonly createdAt: number;
}

export interface EventOutboxStats {
  /** Public rows that cannot become a record (type missing from the catalog, malformed key): skipped, logged, as the relay does. */
  readonly unpublishable: number;
}

export class EventOutbox {
  private readonly log: Logger;
  private unpublishable = 0;

  /** @param topicPrefix prepended to every topic name, as the relay's (`<cluster>.` in cluster mode). */
  constructor(
    private readonly topicPrefix: string,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'event-outbox' });
  }

  /** The records of the batch's public events, in batch order (so per aggregate, in sequence order). */
  recordsOf(rows: readonly OutboxRow[]): KafkaRecord[] {
    const records: KafkaRecord[] = [];
    for (const row of rows) {
      if (!row.tags.includes(PUBLIC_TAG)) continue;
      const result = toKafkaRecordFromText(
        { persistenceKey: row.key, sequenceNumber: row.seq, eventType: eventTypeOfText(row.data), traceId: row.traceId, spanId: row.spanId, createdAt: row.createdAt },
        row.data,
        this.topicPrefix,
      );
      if (result.ok) {
        records.push(result.record);
      } else {
        // As the relay: skipped rather than failing the batch; it stays in the journal (and in GET /events).
        this.unpublishable += 1;
        this.log.error({ persistenceKey: row.key, sequenceNumber: row.seq, reason: result.reason }, 'public event cannot be published to Kafka; skipped');
      }
    }
    return records;
  }

  stats(): EventOutboxStats {
    return { unpublishable: this.unpublishable };
  }
}

/** The journal's own rule (eventTypeOf), from the event's text: text that is not JSON has no type. */
function eventTypeOfText(json: string): string {
  try {
    return eventTypeOf(JSON.parse(json));
  } catch {
    return 'unknown';
  }
}
