import { PUBLIC_TAG, type CheckpointStore, type JournalReader, type JournalRow } from '../../runtime/kernel/journal.js';
import { spawnSingleton, type ActorHandle, type ActorSystem } from '../../runtime/kernel/actor-system.js';
import type { RecordPublisher } from './publisher.js';
import type { KafkaRecord } from '../contract/event-record.js';
import type { Logger } from '../../runtime/ground/logger.js';
import { toKafkaRecord } from './records.js';

/**
 * EventRelayActor (docs/architecture.md): the only Kafka publisher. The journal is the outbox: the relay reads
 * committed public events after its checkpoint, in journal order, publishes them, and moves the
 * checkpoint only after Kafka acknowledged them. A crash between the acknowledgement and the checkpoint
 * write publishes those events again (same `ce_id`): at-least-once, never lost, never skipped.
 *
 * It is an actor like the others: driven by messages — `Wake` when the journal committed public events
 * (no polling), `Retry` when the backoff after a failure ran out, `Stop` — and its state (checkpoint,
 * backoff, counters) changes only while it handles one of them. One message at a time, so batches
 * never overlap and Kafka receives them in journal order.
 */
export type RelayMessage = { readonly type: 'Wake' } | { readonly type: 'Retry' } | { readonly type: 'Stop' };

export const RELAY_CHECKPOINT = 'event-relay';

export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

export interface EventRelayOptions {
  readonly system: ActorSystem;
  readonly journal: JournalReader;
  readonly checkpoints: CheckpointStore;
  readonly producer: RecordPublisher;
  readonly logger: Logger;
  /** Journal rows per Kafka request. 500 rows of ~400 bytes stay well under the broker's 1 MB batch limit. */
  readonly batchSize?: number;
  /** Prepended to every topic name (tests isolate themselves with it). */
  readonly topicPrefix?: string;
  readonly backoff?: Backoff;
  /** Name of the actor and of its checkpoint; one relay per name. */
  readonly name?: string;
}

export interface EventRelayStats {
  /** Records acknowledged by Kafka since start (re-publishes after a crash count again). */
  readonly published: number;
  /** Failed attempts (send or checkpoint write) since start. */
  readonly failures: number;
  /** Failures since the last success; 0 when healthy. */
  readonly consecutiveFailures: number;
  readonly lastError: string | null;
  /** Epoch milliseconds. */
  readonly lastErrorAt: number | null;
  readonly lastPublishedAt: number | null;
  /** Public rows that cannot become a record (type missing from the catalog, malformed key): skipped, logged. */
  readonly unpublishable: number;
  /** Journal position up to which everything public is in Kafka. */
  readonly checkpoint: number;
  /** The producer's view of the Kafka connection. */
  readonly connected: boolean;
}

export interface EventRelay {
  /** Lets a batch in flight finish (its checkpoint included), then stops. No new batch starts. */
  stop(): Promise<void>;
  /** Journal positions between the newest public event and the checkpoint: 0 = Kafka has everything. */
  lag(): number;
  stats(): EventRelayStats;
}

const DEFAULT_BACKOFF: Backoff = { initialMs: 100, maxMs: 10_000 };

/** 100, 200, 400, … ms, capped: the broker gets room to come back, and the relay notices soon after it did. */
export function backoffDelay(consecutiveFailures: number, backoff: Backoff = DEFAULT_BACKOFF): number {
  const exponent = Math.min(Math.max(consecutiveFailures - 1, 0), 30);
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** exponent);
}

export function startEventRelay(options: EventRelayOptions): EventRelay {
  const name = options.name ?? RELAY_CHECKPOINT;
  const relay = new Relay(options, name);
  const actor: ActorHandle<RelayMessage> = spawnSingleton(options.system, name, (message: RelayMessage) => relay.handle(message));
  relay.attach(actor);
  return {
    stop: async () => {
      // Behind whatever is in the mailbox: a batch in flight finishes (its checkpoint included) first.
      actor.tell({ type: 'Stop' });
      await relay.stopped;
      actor.stop();
    },
    lag: () => relay.lag(),
    stats: () => relay.stats(),
  };
}

/** The actor's state and behaviour; only the actor calls `handle`, so nothing here runs concurrently. */
class Relay {
  private readonly journal: JournalReader;
  private readonly checkpoints: CheckpointStore;
  private readonly producer: RecordPublisher;
  private readonly log: Logger;
  private readonly batchSize: number;
  private readonly topicPrefix: string;
  private readonly backoff: Backoff;

  private actor: ActorHandle<RelayMessage> | null = null;
  private unsubscribe: (() => void) | null = null;
  private checkpoint: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private halted = false;
  private markStopped: () => void = () => undefined;
  /** Resolves once the actor handled `Stop`. */
  readonly stopped = new Promise<void>((resolve) => {
    this.markStopped = resolve;
  });

  private published = 0;
  private failures = 0;
  private consecutiveFailures = 0;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  private lastPublishedAt: number | null = null;
  private unpublishable = 0;

  constructor(
    options: EventRelayOptions,
    private readonly name: string,
  ) {
    this.journal = options.journal;
    this.checkpoints = options.checkpoints;
    this.producer = options.producer;
    this.log = options.logger.child({ component: 'event-relay', actor: name });
    this.batchSize = options.batchSize ?? 500;
    this.topicPrefix = options.topicPrefix ?? '';
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new RangeError(`batchSize must be a positive integer (got ${this.batchSize})`);
    this.checkpoint = this.checkpoints.get(name);
  }

  attach(actor: ActorHandle<RelayMessage>): void {
    this.actor = actor;
    // Only a message: the listener runs inside the journal's commit, not in this actor's mailbox.
    this.unsubscribe = this.journal.onCommit((rows) => {
      if (rows.some(isPublic)) actor.tell({ type: 'Wake' });
    });
    // Whatever was committed before the relay started (or while the process was down).
    actor.tell({ type: 'Wake' });
  }

  async handle(message: RelayMessage): Promise<void> {
    if (this.halted) return;
    switch (message.type) {
      case 'Wake':
        // While backing off, the pending Retry will publish these rows too; trying now would hammer a
        // broker that is down with one attempt per commit. Wakes queued behind a drain find nothing
        // new and cost one indexed read each.
        if (this.retryTimer !== null) return;
        break;
      case 'Retry':
        this.retryTimer = null;
        break;
      case 'Stop':
        this.halted = true;
        this.unsubscribe?.();
        if (this.retryTimer !== null) clearTimeout(this.retryTimer);
        this.retryTimer = null;
        this.markStopped();
        return;
    }
    await this.attempt();
  }

  lag(): number {
    return Math.max(0, this.journal.lastPosition(PUBLIC_TAG) - this.checkpoint);
  }

  stats(): EventRelayStats {
    return {
      published: this.published,
      failures: this.failures,
      consecutiveFailures: this.consecutiveFailures,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      lastPublishedAt: this.lastPublishedAt,
      unpublishable: this.unpublishable,
      checkpoint: this.checkpoint,
      connected: this.producer.connectionState().connected,
    };
  }

  private async attempt(): Promise<void> {
    try {
      await this.drain();
      if (this.consecutiveFailures > 0) this.log.info({ failures: this.consecutiveFailures, checkpoint: this.checkpoint }, 'publishing to Kafka again');
      this.consecutiveFailures = 0;
    } catch (error) {
      this.failures += 1;
      this.consecutiveFailures += 1;
      this.lastError = error instanceof Error ? error.message : String(error);
      this.lastErrorAt = Date.now();
      const delayMs = backoffDelay(this.consecutiveFailures, this.backoff);
      // The first failure is an error; the retries of one outage are warnings, or an outage floods the log.
      const level = this.consecutiveFailures === 1 ? 'error' : 'warn';
      this.log[level]({ err: error, checkpoint: this.checkpoint, attempt: this.consecutiveFailures, retryInMs: delayMs }, 'publishing to Kafka failed; will retry');
      if (!this.halted) {
        this.retryTimer = setTimeout(() => this.actor?.tell({ type: 'Retry' }), delayMs);
      }
    }
  }

  /**
   * Publishes one batch; a full one sends the actor another Wake for the next, so that a Stop waits for
   * the batch in flight only, not for a whole backlog.
   */
  private async drain(): Promise<void> {
    const rows = this.journal.readAfter(this.checkpoint, this.batchSize, PUBLIC_TAG);
    const last = rows.at(-1);
    if (!last) return;
    const records = this.toRecords(rows);
    if (records.length > 0) await this.producer.sendBatch(records);
    const position = last.position;
    // Only now: Kafka has every record up to `position`. Durable when set() returns.
    this.checkpoints.set(this.name, position);
    this.checkpoint = position;
    this.published += records.length;
    this.lastPublishedAt = Date.now();
    this.log.debug({ records: records.length, checkpoint: position }, 'published to Kafka');
    if (rows.length === this.batchSize) this.actor?.tell({ type: 'Wake' });
  }

  private toRecords(rows: readonly JournalRow[]): KafkaRecord[] {
    const records: KafkaRecord[] = [];
    for (const row of rows) {
      const result = toKafkaRecord(row, this.topicPrefix);
      if (result.ok) {
        records.push(result.record);
      } else {
        // Skipped rather than retried for ever: one bad row would otherwise hold back every event
        // after it. It stays in the journal (and in GET /events); the catalog or the key needs a fix.
        this.unpublishable += 1;
        this.log.error({ position: row.position, persistenceKey: row.persistenceKey, eventType: row.eventType, reason: result.reason }, 'public event cannot be published to Kafka; skipped');
      }
    }
    return records;
  }
}

const isPublic = (row: JournalRow): boolean => row.tags.includes(PUBLIC_TAG);
