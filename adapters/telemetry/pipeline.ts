import { Piscina } from 'piscina';
import type { AreaViolationRecorder } from '../../persistence/area-violations.js';
import type { Db } from '../../persistence/sqlite.js';
import type { Logger } from '../../runtime/ground/logger.js';
import { ALL_STATUS, ALL_TELEMETRY, vehicleIdOf, type VehicleChannel } from '../../actors/contract/device-topics.js';
import type { MessageHandler } from '../mqtt/topic-router.js';
import { MessageKind, type DecodeTask, type DecodedBatch } from './decode.js';

/** What the pipeline needs from MqttConnection; a fake in a test needs nothing more. */
export interface MessageSource {
  subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>>;
}

export interface TelemetryPipelineOptions {
  readonly source: MessageSource;
  readonly db: Db;
  readonly logger: Logger;
  /** A batch leaves at most this long after its first message arrived. */
  readonly batchIntervalMs?: number;
  /** ... or as soon as it holds this many messages (and no batch is in the worker). */
  readonly batchMaxMessages?: number;
  /** Beyond this many buffered messages new ones are dropped (counted): telemetry is superseded anyway. */
  readonly maxBufferedMessages?: number;
  /** Decode threads. One: the machine has two cores and the main thread needs the other. */
  readonly maxThreads?: number;
  /**
   * The vehicles whose readings this pipeline keeps (its shard's). The wildcard subscriptions bring
   * every vehicle's messages; the others' are dropped before any decoding, counted as `elsewhere`.
   */
  readonly accepts?: (vehicleId: string) => boolean;
  /**
   * Judges the readings of vehicles on a ride against the operating area, in the batch's transaction
   * (docs/gbfs.md, "During a ride"). Absent: readings are only stored.
   */
  readonly violations?: AreaViolationRecorder;
}

export interface TelemetryStats {
  /** Messages taken from MQTT (telemetry and presence). */
  readonly received: number;
  /** Not JSON, not matching the contract, or on a topic without a valid vehicle id. */
  readonly rejected: number;
  /** Valid, but a newer message of the same vehicle came in the same batch. */
  readonly superseded: number;
  /** Rows of the `vehicles` read model updated. */
  readonly applied: number;
  /** Valid and newest in the batch, but no row changed: unknown vehicle, or older than the stored reading. */
  readonly ignored: number;
  /** Lost to a full buffer or a failed batch. */
  readonly dropped: number;
  /** For a vehicle of another shard: that shard's pipeline keeps it. */
  readonly elsewhere: number;
  readonly batches: number;
}

/** online null: the presence was cleared by an operator. */
export type PresenceListener = (vehicleId: string, online: boolean | null, at: Date) => void;

interface Buffered {
  vehicleIds: string[];
  kinds: number[];
  payloads: Buffer[];
  bytes: number;
}

const emptyBuffer = (): Buffered => ({ vehicleIds: [], kinds: [], payloads: [], bytes: 0 });

/**
 * Telemetry and presence of the whole fleet into the `vehicles` read model, without waking vehicle
 * actors: two wildcard subscriptions, raw messages buffered, decoded and validated in a piscina worker
 * in batches, and written with one transaction per batch, newest reading per vehicle only.
 *
 * One batch is in the worker at a time. Messages arriving meanwhile form the next batch, so under load
 * batches grow instead of queueing, and batches are applied in arrival order.
 */
export class TelemetryPipeline {
  private buffer = emptyBuffer();
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private closed = false;
  private readonly listeners = new Set<PresenceListener>();
  private readonly counters = { received: 0, rejected: 0, superseded: 0, applied: 0, ignored: 0, dropped: 0, elsewhere: 0, batches: 0 };
  private readonly accepts: (vehicleId: string) => boolean;
  private readonly batchIntervalMs: number;
  private readonly batchMaxMessages: number;
  private readonly maxBufferedMessages: number;
  private readonly applyBatch: (batch: DecodedBatch) => { applied: number; ignored: number };
  private unsubscribes: Array<() => Promise<void>> = [];

  private constructor(
    private readonly pool: Piscina<DecodeTask, DecodedBatch>,
    db: Db,
    private readonly log: Logger,
    options: TelemetryPipelineOptions,
  ) {
    this.batchIntervalMs = options.batchIntervalMs ?? 50;
    this.batchMaxMessages = options.batchMaxMessages ?? 2000;
    this.maxBufferedMessages = options.maxBufferedMessages ?? 100_000;
    this.applyBatch = prepareWriter(db, options.violations ?? null);
    this.accepts = options.accepts ?? (() => true);
  }

  static async start(options: TelemetryPipelineOptions): Promise<TelemetryPipeline> {
    const maxThreads = options.maxThreads ?? 1;
    const pool = new Piscina<DecodeTask, DecodedBatch>({ ...decodeWorker(), minThreads: maxThreads, maxThreads });
    const pipeline = new TelemetryPipeline(pool, options.db, options.logger.child({ component: 'telemetry' }), options);
    try {
      pipeline.unsubscribes = await Promise.all([
        options.source.subscribe(ALL_TELEMETRY, pipeline.handler('telemetry', MessageKind.telemetry)),
        options.source.subscribe(ALL_STATUS, pipeline.handler('status', MessageKind.presence)),
      ]);
    } catch (error) {
      await pool.destroy();
      throw error;
    }
    return pipeline;
  }

  /** Told after each batch is committed, with the last presence of each vehicle in it. Returns a remover. */
  onPresence(listener: PresenceListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): TelemetryStats {
    return { ...this.counters };
  }

  /** Resolves once everything received so far has been applied (or counted as rejected/dropped). */
  async flush(): Promise<void> {
    while (this.inFlight || this.buffer.kinds.length > 0) {
      if (!this.inFlight) this.startBatch();
      await this.inFlight;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.unsubscribes.map((unsubscribe) => unsubscribe()));
    await this.flush();
    this.listeners.clear();
    await this.pool.destroy();
  }

  private handler(channel: VehicleChannel, kind: number): MessageHandler {
    return (topic, payload) => {
      const vehicleId = vehicleIdOf(topic, channel);
      if (vehicleId !== null && !this.accepts(vehicleId)) {
        this.counters.elsewhere += 1;
        return;
      }
      this.counters.received += 1;
      if (vehicleId === null) {
        this.counters.rejected += 1;
        return;
      }
      const buffer = this.buffer;
      if (buffer.kinds.length >= this.maxBufferedMessages) {
        this.counters.dropped += 1;
        return;
      }
      buffer.vehicleIds.push(vehicleId);
      buffer.kinds.push(kind);
      buffer.payloads.push(payload);
      buffer.bytes += payload.length;
      this.schedule();
    };
  }

  private schedule(): void {
    if (this.inFlight || this.buffer.kinds.length === 0) return;
    if (this.buffer.kinds.length >= this.batchMaxMessages) this.startBatch();
    else this.timer ??= setTimeout(() => this.startBatch(), this.batchIntervalMs);
  }

  private startBatch(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.inFlight || this.buffer.kinds.length === 0) return;
    const batch = this.buffer;
    this.buffer = emptyBuffer();
    this.inFlight = this.process(batch).finally(() => {
      this.inFlight = null;
      this.schedule();
    });
  }

  private async process(batch: Buffered): Promise<void> {
    const { task, transferList } = pack(batch);
    let decoded: DecodedBatch;
    try {
      decoded = await this.pool.run(task, { transferList });
    } catch (error) {
      this.counters.dropped += batch.kinds.length;
      this.log.error({ err: error, messages: batch.kinds.length }, 'telemetry batch could not be decoded');
      return;
    }
    const receivedAt = Date.now();
    let written: { applied: number; ignored: number };
    try {
      written = this.applyBatch(decoded);
    } catch (error) {
      this.counters.dropped += decoded.telemetry.length + decoded.presence.length;
      this.log.error({ err: error }, 'telemetry batch could not be written');
      return;
    }
    this.counters.batches += 1;
    this.counters.rejected += decoded.rejected;
    this.counters.superseded += decoded.superseded;
    this.counters.applied += written.applied;
    this.counters.ignored += written.ignored;
    if (decoded.rejected > 0) this.log.warn({ rejected: decoded.rejected, examples: decoded.rejections }, 'malformed telemetry dropped');
    for (const presence of decoded.presence) this.notify(presence.vehicleId, presence.online, new Date(presence.at ?? receivedAt));
  }

  private notify(vehicleId: string, online: boolean | null, at: Date): void {
    for (const listener of this.listeners) {
      try {
        listener(vehicleId, online, at);
      } catch (error) {
        this.log.error({ err: error, vehicleId }, 'presence listener failed');
      }
    }
  }
}

function pack(batch: Buffered): { task: DecodeTask; transferList: ArrayBuffer[] } {
  const count = batch.kinds.length;
  // Fresh ArrayBuffers, never Buffer's shared pool: they are transferred (detached) to the worker.
  const bytes = new Uint8Array(batch.bytes);
  const ends = new Uint32Array(count);
  let offset = 0;
  for (let index = 0; index < count; index += 1) {
    const payload = batch.payloads[index]!;
    bytes.set(payload, offset);
    offset += payload.length;
    ends[index] = offset;
  }
  const kinds = Uint8Array.from(batch.kinds);
  return { task: { bytes, ends, kinds, vehicleIds: batch.vehicleIds }, transferList: [bytes.buffer, ends.buffer, kinds.buffer] };
}

/**
 * The read model is written with plain UPDATEs: a vehicle's row is created when it is registered, so
 * readings of unknown vehicles change nothing. A reading older than the stored one (a late duplicate)
 * changes nothing either.
 */
function prepareWriter(db: Db, violations: AreaViolationRecorder | null): (batch: DecodedBatch) => { applied: number; ignored: number } {
  const UPDATE = `UPDATE vehicles SET lat = ?, lon = ?, battery = ?, speed_kmh = ?, last_seen_at = ?
      WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at <= ?)`;
  const updateTelemetry = db.prepare(UPDATE);
  // The same update, answering what a ride is judged by; used only while an area limits rides, so the
  // common case keeps the plain UPDATE.
  const updateJudged = db.prepare<unknown[], { type: string; status: string; bookingId: string | null }>(`${UPDATE} RETURNING type, status, booking_id AS bookingId`);
  const updatePresence = db.prepare('UPDATE vehicles SET online = ? WHERE id = ?');
  // Clearing also takes back a last_seen_at in the future (stored before readings were checked against
  // the server's clock), which would otherwise make every real reading look older forever.
  const clearPresence = db.prepare('UPDATE vehicles SET online = NULL, last_seen_at = min(last_seen_at, ?) WHERE id = ?');
  return db.transaction((batch: DecodedBatch) => {
    let applied = 0;
    let ignored = 0;
    const area = violations?.watching() ?? null;
    for (const row of batch.telemetry) {
      if (violations !== null && area !== null) {
        const vehicle = updateJudged.get(row.lat, row.lon, row.battery, row.speedKmh, row.at, row.vehicleId, row.at);
        if (vehicle === undefined) {
          ignored += 1;
          continue;
        }
        applied += 1;
        violations.judge(area, { vehicleId: row.vehicleId, ...vehicle }, row);
        continue;
      }
      const changes = updateTelemetry.run(row.lat, row.lon, row.battery, row.speedKmh, row.at, row.vehicleId, row.at).changes;
      if (changes > 0) applied += 1;
      else ignored += 1;
    }
    const now = Date.now();
    for (const row of batch.presence) {
      const changes = (row.online === null ? clearPresence.run(now, row.vehicleId) : updatePresence.run(row.online ? 1 : 0, row.vehicleId)).changes;
      if (changes > 0) applied += 1;
      else ignored += 1;
    }
    return { applied, ignored };
  });
}

/**
 * The worker file next to this one: decode-worker.js when running compiled from dist/, decode-worker.ts
 * under tsx or vitest, where the worker thread needs tsx loaded to read TypeScript (Node 20 cannot).
 */
function decodeWorker(): { filename: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  return {
    filename: new URL(fromSource ? './decode-worker.ts' : './decode-worker.js', import.meta.url).href,
    execArgv: fromSource ? ['--import', 'tsx'] : [],
  };
}
