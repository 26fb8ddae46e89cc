/** The journal events of traced steps as the trace viewer shows them (read by persistence/trace-journal.ts). */

/** One journal event as the viewer shows it. */
export interface TracedEvent {
  readonly position: number;
  /** `<kind>/<id>`. */
  readonly key: string;
  readonly sequenceNumber: number;
  readonly eventType: string;
  readonly data: unknown;
  /** The Kafka topic when the event is public (it leaves through the relay), else null. */
  readonly topic: string | null;
  readonly traceId: string | null;
  readonly spanId: string | null;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

export interface TraceJournalQuery {
  readonly traceIds: readonly string[];
  /** Persistence keys to look in (the actors the steps reached): the read uses the key index, never a scan of the journal. */
  readonly keys: readonly string[];
  /** For each point: the highest sequence number of `key` persisted at or before `at` (epoch ms), 0 when none. */
  readonly points: readonly { readonly key: string; readonly at: number }[];
}

export interface TraceJournal {
  readonly events: TracedEvent[];
  /** One per query point, in order. */
  readonly seqAt: number[];
}
