import { randomUUID } from 'node:crypto';
import { AssignerProtocol, Partitioners, type Kafka, type PartitionAssigner, type Producer, type Transaction } from 'kafkajs';
import type { Logger } from '../../runtime/ground/logger.js';
import { encodeOwnerRecord, shardOwnersTopic } from './shard-owners.js';
import { encodeBatch, MAX_RECORD_BYTES, type BatchReplicator, type ReplicatedBatch, type ReplicatedRecord } from '../../persistence/journal-replication.js';
import type { EventOutbox } from '../../actors/event-relay/outbox.js';
import type { KafkaRecord } from '../../actors/contract/event-record.js';
import { byTopic } from './producer.js';

/**
 * A shard's journal of record in cluster mode (docs/cluster.md): partition `s` of `<cluster>.journal`,
 * written by one transactional producer whose `transactional.id` is the shard's. Opening it
 * initialises that producer, which fences any earlier producer of the same id (kafkajs 2.2.4 on Kafka
 * 4.1, checked: "A second producer with the same id fenced the first (INVALID_PRODUCER_EPOCH on its
 * next send), and a read_committed consumer saw none of the fenced producer's records"), and writes an
 * owner mark whose offset says where a restore ends.
 *
 * With an outbox, each batch's public events go out in the batch's own transaction (docs/cluster.md,
 * "The public events: an exactly-once outbox"): a `read_committed` consumer sees them exactly when the
 * batch is committed, never twice, and never those of a batch that was not.
 */

export const journalTopic = (clusterName: string): string => `${clusterName}.journal`;
/**
 * The journal topic's own configs: it is the journal of record, so nothing in it may expire (the
 * broker's retention, 7 days by default, would silently drop the oldest batches an empty disk needs).
 */
export function journalTopicConfigs(minInsyncReplicas: number | null): Record<string, string> {
  return { 'retention.ms': '-1', 'retention.bytes': '-1', ...(minInsyncReplicas !== null && { 'min.insync.replicas': String(minInsyncReplicas) }) };
}

export const shardTransactionalId = (clusterName: string, shard: number): string => `${clusterName}.shard-${shard}`;

export interface JournalOfRecordOptions {
  readonly kafka: Kafka;
  readonly clusterName: string;
  readonly shard: number;
  /** Written into the owner mark. */
  readonly nodeId: string;
  /** How the other nodes reach this one: with it, the owner record goes out with the owner mark (shard-owners.ts). */
  readonly nodeUrl?: string;
  readonly logger: Logger;
  /** How long an unfinished transaction of a dead owner may hold back read_committed readers. */
  readonly transactionTimeoutMs?: number;
  /** What of each batch goes out as public events, in the batch's transaction; without it, only the journal. */
  readonly outbox?: EventOutbox;
  /**
   * Tests only: runs after a batch's records were sent and before its commit, where another owner's
   * fence aborts the transaction with its records already in the log.
   */
  readonly beforeCommit?: () => Promise<void>;
}

/**
 * The pause before a shard's next transaction, by the size of the batch just committed: two
 * milliseconds per journal row, from `MIN_PAUSE_AFTER_COMMIT_MS` to `MAX_PAUSE_AFTER_COMMIT_MS`.
 *
 * - The floor: after a commit, the broker writes the transaction's markers before it accepts the
 *   producer's next transaction; one begun earlier is refused (CONCURRENT_TRANSACTIONS) and kafkajs
 *   retries it after a metadata refresh and a 5 ms back-off: two more requests and a longer wait than
 *   the markers take. Measured on this box (kafkajs 2.2.4, Kafka 4.1, back-to-back transactions,
 *   coordinator kept, coordinator-cache.ts): without a pause 0.9 refusals per transaction, p50 8.9 ms;
 *   with 2 ms, none, p50 2.1 ms, and a third less CPU on both sides.
 * - The growth: a transaction costs both sides about the same CPU whatever it carries, so a busy shard
 *   should make fewer, larger ones, as Kafka Streams does with its commit interval. An idle shard's
 *   one-row batches keep the floor, so a lone booking's commits do not wait for a load that is not
 *   there. Cluster bench, 3 nodes, 50 connections (bench/RESULTS.md, "Longer pauses on a busy shard"):
 *   at 3 shards a fixed 2 ms gave 367 confirmed/s (0.70 transactions per booking, p99 323 ms), fixed
 *   6 / 10 / 15 / 20 / 30 / 50 ms 543 / 569 / 522 / 501 / 381 / 262/s; at 6 shards, whose batches are
 *   half as big, 1 ms per row up to 10 ms gave 266/s and longer pauses more. Two per row up to 20 ms
 *   was the best of those tried at both counts: 575/s at 3 shards (0.20 transactions per booking,
 *   p99 157 ms) and 400/s at 6 (0.51, p99 281 ms).
 */
export const MIN_PAUSE_AFTER_COMMIT_MS = 2;
export const MAX_PAUSE_AFTER_COMMIT_MS = 20;
const PAUSE_MS_PER_ROW = 2;
export const pauseAfterCommit = (committedRows: number): number => Math.min(MAX_PAUSE_AFTER_COMMIT_MS, Math.max(MIN_PAUSE_AFTER_COMMIT_MS, committedRows * PAUSE_MS_PER_ROW));

export class JournalOfRecord implements BatchReplicator {
  private readonly log: Logger;
  private readonly topic: string;
  private transactions = 0;
  private commitMsTotal = 0;
  private events = 0;
  private lastOffset: number;
  /** The pause before the next batch's transaction (BatchReplicator). */
  pauseAfterCommitMs(committedRows: number): number {
    return pauseAfterCommit(committedRows);
  }

  private constructor(
    private readonly producer: Producer,
    private readonly options: JournalOfRecordOptions,
    /** The offset of this owner's mark: every record before it was committed by an earlier owner (or this one before a restart). */
    readonly ownerMarkOffset: number,
  ) {
    this.log = options.logger.child({ component: 'journal-of-record' });
    this.topic = journalTopic(options.clusterName);
    this.lastOffset = ownerMarkOffset;
  }

  /** Initialises the shard's producer (fencing the previous owner) and writes the owner mark in a first transaction. */
  static async open(options: JournalOfRecordOptions): Promise<JournalOfRecord> {
    const producer = options.kafka.producer({
      transactionalId: shardTransactionalId(options.clusterName, options.shard),
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Every record names its partition; this only keeps kafkajs from warning about its v2 default.
      createPartitioner: Partitioners.DefaultPartitioner,
      transactionTimeout: options.transactionTimeoutMs ?? 10_000,
      // Checked with kafkajs 2.2.4 on Kafka 4.1: with the default back-off, back-to-back transactions
      // take p50 283 ms (the next one waits out the broker's marker write in 100 ms retry steps); with
      // initialRetryTime 5 ms, p50 12 ms, p99 27 ms.
      retry: { retries: 8, initialRetryTime: 5, maxRetryTime: 1000 },
    });
    await producer.connect();
    try {
      const mark: ReplicatedRecord = { v: 1, type: 'owner', node: options.nodeId, at: Date.now() };
      const offset = await commitMark(producer, options, JSON.stringify(mark));
      return new JournalOfRecord(producer, options, offset);
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      throw error;
    }
  }

  /**
   * One Kafka transaction for the whole batch (several records when it is big) and its public events;
   * the offset of the batch's last record.
   */
  async replicate(batch: ReplicatedBatch): Promise<number> {
    const started = performance.now();
    const events = this.options.outbox?.recordsOf(batch.rows) ?? [];
    const offset = await commitValues(this.producer, this.topic, this.options.shard, encodeBatch(batch), events, this.options.beforeCommit);
    this.commitMsTotal += performance.now() - started;
    this.transactions += 1;
    this.events += events.length;
    this.lastOffset = offset;
    return offset;
  }

  /**
   * Transactions committed by this owner, their total time (send + commit), the offset of the last
   * record written, and the public events committed with them.
   */
  stats(): { readonly transactions: number; readonly commitMsTotal: number; readonly offset: number; readonly events: number } {
    return { transactions: this.transactions, commitMsTotal: this.commitMsTotal, offset: this.lastOffset, events: this.events };
  }

  async close(): Promise<void> {
    await Promise.race([this.producer.disconnect().catch((error: unknown) => this.log.warn({ err: error }, 'journal producer did not disconnect cleanly')), delay(2000)]);
  }
}

/**
 * The owner's first transaction: its mark in the journal partition and, in the same transaction, its
 * owner record, whose epoch is the mark's offset. The offset of the mark.
 */
async function commitMark(producer: Producer, options: JournalOfRecordOptions, mark: string): Promise<number> {
  const { clusterName, shard, nodeId, nodeUrl } = options;
  const transaction: Transaction = await producer.transaction();
  try {
    const [metadata] = await transaction.send({ topic: journalTopic(clusterName), acks: -1, messages: [{ partition: shard, value: mark }] });
    if (metadata === undefined || metadata.baseOffset === undefined) throw new Error(`Kafka returned no offset for ${journalTopic(clusterName)}/${shard}`);
    const offset = Number(metadata.baseOffset);
    if (nodeUrl !== undefined) await transaction.send({ topic: shardOwnersTopic(clusterName), acks: -1, messages: [{ partition: 0, ...encodeOwnerRecord({ shard, owner: nodeId, url: nodeUrl, epoch: offset }) }] });
    await transaction.commit();
    return offset;
  } catch (error) {
    if (transaction.isActive()) await transaction.abort().catch(() => undefined);
    throw error;
  }
}

/**
 * Sends the values to the partition and the events to their topics in one transaction and commits it;
 * aborts (best effort) and rethrows on failure. The events ride in the journal's own request. A big
 * batch (a seed) sends the rest of its values and events in further requests of the same transaction:
 * all of one request's records for a partition form one record batch, which the broker refuses above
 * `message.max.bytes` (1 MiB by default), so no request carries more than `MAX_REQUEST_BYTES` for one.
 */
async function commitValues(producer: Producer, topic: string, partition: number, values: readonly string[], events: readonly KafkaRecord[], beforeCommit?: () => Promise<void>): Promise<number> {
  const transaction: Transaction = await producer.transaction();
  try {
    const [firstEvents = [], ...restEvents] = chunksOf(events, MAX_RECORD_BYTES);
    const valueChunks = valueChunksOf(values, MAX_REQUEST_BYTES);
    let offset = -1;
    for (const [index, chunk] of valueChunks.entries()) {
      const sent = await transaction.sendBatch({ acks: -1, topicMessages: [{ topic, messages: chunk.map((value) => ({ partition, value })) }, ...(index === 0 ? byTopic(firstEvents) : [])] });
      const metadata = sent.find((each) => each.topicName === topic && each.partition === partition);
      if (metadata === undefined || metadata.baseOffset === undefined) throw new Error(`Kafka returned no offset for ${topic}/${partition}`);
      // One produce request per partition: its records got consecutive offsets from baseOffset.
      offset = Number(metadata.baseOffset) + chunk.length - 1;
    }
    for (const chunk of restEvents) await transaction.sendBatch({ acks: -1, topicMessages: byTopic(chunk) });
    await beforeCommit?.();
    await transaction.commit();
    return offset;
  } catch (error) {
    // A fenced producer cannot abort either; the error that counts is the first one.
    if (transaction.isActive()) await transaction.abort().catch(() => undefined);
    throw error;
  }
}

/** At most this many bytes of one partition's records in one produce request: under the broker's 1 MiB `message.max.bytes`, with room for record overhead. */
const MAX_REQUEST_BYTES = 3 * MAX_RECORD_BYTES;

/** The journal's values in order, cut into runs of at most `maxBytes` (never no run: the first request carries the batch's offset). */
export function valueChunksOf(values: readonly string[], maxBytes: number): string[][] {
  const chunks = runsUnder(values, (value) => Buffer.byteLength(value) + 100, maxBytes);
  return chunks.length > 0 ? chunks : [[]];
}

/** The records in order, cut into runs of at most `maxBytes` of keys and values (a bigger record goes alone). */
export function chunksOf(records: readonly KafkaRecord[], maxBytes: number): KafkaRecord[][] {
  // Headers: about 300 bytes a record.
  return runsUnder(records, (record) => record.key.length + record.value.length + 400, maxBytes);
}

/** The items in order, cut into runs whose sizes add up to at most `maxBytes`; an item bigger than that goes alone. */
function runsUnder<T>(items: readonly T[], sizeOf: (item: T) => number, maxBytes: number): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let size = 0;
  for (const item of items) {
    const itemSize = sizeOf(item);
    if (run.length > 0 && size + itemSize > maxBytes) {
      runs.push(run);
      run = [];
      size = 0;
    }
    run.push(item);
    size += itemSize;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** The error types a fenced transactional producer meets (kafkajs knows no PRODUCER_FENCED, code 90: it reports it as unknown). */
/** kafkajs' state machine (transactionStateMachine.js): "Invalid transition ABORTING --> …" or "Cannot call "…" in state "ABORTING"". */
const STUCK_ABORTING = /^Transaction state exception: (Invalid transition ABORTING\b|Cannot call .* in state "ABORTING")/;

const FENCED_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'INVALID_PRODUCER_ID_MAPPING']);

/**
 * Whether a failed transaction means another producer took the shard's transactional id. kafkajs
 * wraps protocol errors (retries exhausted, aggregate errors), so the whole chain is searched. kafkajs
 * issue #1355: after a failed abort a producer can stay in ABORTING, and every later call fails with an
 * invalid state transition: that counts as fenced too (the producer is unusable, and the likely cause
 * is the fence).
 */
export function isFencedError(error: unknown): boolean {
  const seen = new Set<unknown>();
  const visit = (value: unknown): boolean => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return false;
    seen.add(value);
    const candidate = value as { type?: unknown; message?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown };
    if (typeof candidate.type === 'string' && FENCED_TYPES.has(candidate.type)) return true;
    if (typeof candidate.message === 'string' && (/Unknown error code 90\b/.test(candidate.message) || STUCK_ABORTING.test(candidate.message))) return true;
    if (visit(candidate.cause) || visit(candidate.originalError)) return true;
    return Array.isArray(candidate.errors) && candidate.errors.some(visit);
  };
  return visit(error);
}

export interface PartitionReadOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly partition: number;
  /** First offset to apply. */
  readonly fromOffset: number;
  /** The read ends when it reaches this offset (not applied): the owner mark. */
  readonly untilOffset: number;
  readonly groupIdPrefix: string;
  readonly logger: Logger;
  /** Called in offset order for each committed record before `untilOffset`; a throw ends the read with that error. */
  readonly apply: (value: string, offset: number) => void;
  readonly timeoutMs?: number;
}

/**
 * Reads one partition, read_committed, from `fromOffset` up to `untilOffset`. kafkajs has no manual
 * assign (issue #373); as its maintainers suggest (#294), a throw-away group whose only member gets
 * just that partition from its own assigner, and a seek to `fromOffset` each time the member joins
 * (a seek right after `run` races the join: a consumer that restarts after "coordinator is loading"
 * on a fresh broker refuses it; the admin's setOffsets joins the group itself and the real member then
 * waited 5 s for it to go). Records before `fromOffset` are skipped all the same. Resolves with the
 * number of records applied.
 */
export async function readPartition(options: PartitionReadOptions): Promise<number> {
  const { kafka, topic, partition, fromOffset, untilOffset } = options;
  if (fromOffset >= untilOffset) return 0;
  const groupId = `${options.groupIdPrefix}.${randomUUID()}`;
  const consumer = kafka.consumer({
    groupId,
    partitionAssigners: [onlyPartition(topic, partition)],
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    allowAutoTopicCreation: false,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
  });
  let applied = 0;
  let settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  const timer = setTimeout(() => settle?.reject(new Error(`restore of ${topic}/${partition} did not reach offset ${untilOffset} within ${timeoutMs} ms`)), timeoutMs);
  try {
    consumer.on(consumer.events.GROUP_JOIN, () => {
      try {
        consumer.seek({ topic, partition, offset: String(fromOffset) });
      } catch (error) {
        options.logger.debug({ err: error, topic, partition }, 'restore seek refused; reading from the start instead');
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let finished = false;
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, resolveOffset }) => {
        if (finished || batch.partition !== partition) return;
        for (const message of batch.messages) {
          const offset = Number(message.offset);
          resolveOffset(message.offset);
          if (offset < fromOffset) continue;
          if (offset >= untilOffset) {
            finished = true;
            settle?.resolve();
            return;
          }
          try {
            options.apply(message.value?.toString('utf8') ?? '', offset);
          } catch (error) {
            finished = true;
            settle?.reject(error);
            return;
          }
          applied += 1;
        }
      },
    });
    await done;
    return applied;
  } finally {
    clearTimeout(timer);
    await Promise.race([consumer.disconnect().catch(() => undefined), delay(5000)]);
    await deleteGroup(kafka, groupId, options.logger);
  }
}

/** The throw-away group's assigner: its one member gets the one partition. */
function onlyPartition(topic: string, partition: number): PartitionAssigner {
  const name = 'OnePartition';
  return () => ({
    name,
    version: 1,
    assign: async ({ members }) =>
      members.map((member, index) => ({
        memberId: member.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: index === 0 ? { [topic]: [partition] } : {}, userData: Buffer.alloc(0) }),
      })),
    protocol: ({ topics }) => ({ name, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) }),
  });
}

/** A group with no committed offsets would expire on its own; deleting it keeps `kafka-consumer-groups --list` readable. */
async function deleteGroup(kafka: Kafka, groupId: string, logger: Logger): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.deleteGroups([groupId]);
  } catch (error) {
    logger.debug({ err: error, groupId }, 'throw-away restore group not deleted');
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

const delay = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
