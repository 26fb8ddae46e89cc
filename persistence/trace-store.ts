import type { Statement } from 'better-sqlite3';
import { createLogger, type Logger } from '../runtime/ground/logger.js';
import type { Db } from './sqlite.js';
import type { StoredTraceStep, TraceStep } from '../runtime/kernel/trace-step.js';

export interface TraceStoreOptions {
  /** Longest time a recorded step waits in memory. Each write is a transaction (an fsync under FULL). */
  readonly flushIntervalMs?: number;
  /** Write at the end of the turn once this many steps are waiting, without waiting for the timer. */
  readonly maxBuffered?: number;
  /**
   * Steps one trace may hold (TRACE_MAX_STEPS): later ones are dropped. A client picks its trace id
   * (`traceparent`), so without it one id reused for every request grows one trace without end.
   */
  readonly maxStepsPerTrace?: number;
  readonly logger?: Logger;
}

/** Trace ids whose step count is remembered between flushes; a forgotten one is counted again from the table. */
const COUNTED_TRACES = 10_000;

interface TraceRecord {
  id: number;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  from_actor: string;
  to_actor: string;
  message_type: string;
  payload: string | null;
  state_before: string | null;
  state_after: string | null;
  outcome: string | null;
  started_at: number;
  duration_us: number;
}

type InsertParams = [string, string, string | null, string, string, string, string | null, string | null, string | null, string | null, number, number];

/**
 * Traces are diagnostics: record() only buffers, and the buffer is written in one transaction every
 * `flushIntervalMs` (default 100 ms, so at most ~10 extra fsyncs a second next to the journal's) or
 * sooner when it grows. Reads write the buffer first, so they never miss a recorded step.
 */
export class TraceStore {
  private readonly flushIntervalMs: number;
  private readonly maxBuffered: number;
  private readonly log: Logger;
  private readonly maxStepsPerTrace: number;
  private buffer: TraceStep[] = [];
  /** Steps each recently written trace holds (LRU order: the oldest key first). */
  private readonly stepCounts = new Map<string, number>();
  private droppedSteps = 0;
  private readonly countSteps: Statement<[string], { n: number }>;
  private readonly countStepsOf: Statement<[string], { trace_id: string; n: number }>;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  private readonly insert: Statement<InsertParams>;
  private readonly selectByTrace: Statement<[string], TraceRecord>;
  private readonly selectTracesOfActor: Statement<[string], { trace_id: string; first_id: number; last_id: number; changed: number }>;
  private readonly writeAll: (steps: readonly TraceStep[]) => void;
  private readonly deleteBefore: Statement<[number, number]>;

  constructor(db: Db, options: TraceStoreOptions = {}) {
    this.deleteBefore = db.prepare('DELETE FROM trace_steps WHERE id IN (SELECT id FROM trace_steps WHERE started_at < ? LIMIT ?)');
    this.flushIntervalMs = options.flushIntervalMs ?? 100;
    this.maxBuffered = options.maxBuffered ?? 1000;
    this.maxStepsPerTrace = options.maxStepsPerTrace ?? Number.MAX_SAFE_INTEGER;
    this.countSteps = db.prepare('SELECT count(*) AS n FROM trace_steps WHERE trace_id = ?');
    this.countStepsOf = db.prepare(
      'SELECT ids.value AS trace_id, (SELECT count(*) FROM trace_steps WHERE trace_id = ids.value) AS n FROM json_each(?) AS ids',
    );
    this.log = (options.logger ?? createLogger('silent')).child({ component: 'trace-store' });
    this.insert = db.prepare(
      `INSERT INTO trace_steps (trace_id, span_id, parent_span_id, from_actor, to_actor, message_type, payload, state_before, state_after, outcome, started_at, duration_us)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.selectByTrace = db.prepare('SELECT * FROM trace_steps WHERE trace_id = ? ORDER BY id');
    // Uses trace_steps_to_actor (to_actor, id): every step that reached the actor, grouped by trace;
    // `changed` when one of them moved the actor's state (a step without a recorded state before, not sampled, says nothing).
    this.selectTracesOfActor = db.prepare(
      `SELECT trace_id, MIN(id) AS first_id, MAX(id) AS last_id,
              MAX(state_before IS NOT NULL AND state_after IS NOT NULL AND state_before <> state_after) AS changed
       FROM trace_steps WHERE to_actor = ? GROUP BY trace_id`,
    );
    const writeSteps = db.transaction((steps: readonly TraceStep[]) => {
      // A state object is often one step's state after and the next step's state before (the
      // recorder describes each state once): serialised once per write.
      const states = new Map<unknown, string | null>();
      const stateJson = (state: unknown): string | null => {
        if (typeof state !== 'object' || state === null) return toJson(state);
        let json = states.get(state);
        if (json === undefined) {
          json = toJson(state);
          states.set(state, json);
        }
        return json;
      };
      for (const step of steps) {
        this.insert.run(
          step.traceId,
          step.spanId,
          step.parentSpanId,
          step.fromActor,
          step.toActor,
          step.messageType,
          toJson(step.payload),
          stateJson(step.stateBefore),
          stateJson(step.stateAfter),
          toJson(step.outcome),
          step.startedAt,
          Math.round(step.durationUs),
        );
      }
    });
    // Steps are diagnostics, buffered up to flushIntervalMs anyway: their transaction skips the fsync
    // (synchronous NORMAL for it alone). A shard gives the store a file of its own at NORMAL
    // (persistence/trace-file.ts); on a connection shared with a FULL journal, the journal's next
    // commit syncs the WAL with them in it. Under the booking load these were ten extra fsyncs a
    // second, each holding the shard's thread.
    const journalSync = db.pragma('synchronous', { simple: true }) as number;
    this.writeAll = (steps) => {
      if (journalSync <= 1) return writeSteps(steps);
      db.pragma('synchronous = NORMAL');
      try {
        writeSteps(steps);
      } finally {
        db.pragma(`synchronous = ${journalSync}`);
      }
    };
  }

  /** Buffers the step; never throws and never touches the database on the caller's turn. */
  record(step: TraceStep): void {
    if (this.closed) return;
    this.buffer.push(step);
    if (this.buffer.length >= this.maxBuffered) {
      this.immediate ??= setImmediate(this.flushFromTimer);
    } else if (this.timer === undefined) {
      this.timer = setTimeout(this.flushFromTimer, this.flushIntervalMs);
      // Buffered diagnostics alone must not keep the process alive; close() writes them on shutdown.
      this.timer.unref();
    }
  }

  /** Writes every buffered step now, in one transaction. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    if (this.buffer.length === 0) return;
    const steps = this.withinTraceCap(this.buffer);
    this.buffer = [];
    if (steps.length > 0) this.writeAll(steps);
  }

  /** Steps dropped because their trace was full (since this store opened). */
  get dropped(): number {
    return this.droppedSteps;
  }

  /** The steps whose trace still has room, in order; the counts move on as if they were written. */
  private withinTraceCap(steps: readonly TraceStep[]): TraceStep[] {
    if (this.maxStepsPerTrace === Number.MAX_SAFE_INTEGER) return [...steps];
    // The traces not counted yet are counted in one statement per flush, not one per trace: under
    // the booking load nearly every trace is new (one a request), so this was a statement per request.
    const unknown = new Set<string>();
    for (const step of steps) if (!this.stepCounts.has(step.traceId)) unknown.add(step.traceId);
    const counted = new Map<string, number>();
    if (unknown.size > 0) for (const row of this.countStepsOf.all(JSON.stringify([...unknown]))) counted.set(row.trace_id, row.n);
    const kept: TraceStep[] = [];
    for (const step of steps) {
      const held = this.stepCounts.get(step.traceId) ?? counted.get(step.traceId) ?? this.countSteps.get(step.traceId)!.n;
      this.stepCounts.delete(step.traceId);
      if (held >= this.maxStepsPerTrace) {
        this.droppedSteps += 1;
        this.stepCounts.set(step.traceId, held);
      } else {
        kept.push(step);
        this.stepCounts.set(step.traceId, held + 1);
      }
      if (this.stepCounts.size > COUNTED_TRACES) this.stepCounts.delete(this.stepCounts.keys().next().value!);
    }
    return kept;
  }

  /** Every step of the trace, in recording order. */
  byTraceId(traceId: string): StoredTraceStep[] {
    this.flush();
    return this.selectByTrace.all(traceId).map(toStep);
  }

  /**
   * Distinct traces that delivered a message to `actor` (e.g. `booking/b-1`), in the order they began:
   * every one that changed the actor's state, and the most recent others up to `limit` in all. Old
   * or refused requests can therefore never push the saga's own steps (created, unlocked, ended)
   * out of view, and the latest activity is always in it.
   */
  traceIdsForActor(actor: string, limit: number): string[] {
    this.flush();
    const traces = this.selectTracesOfActor.all(actor);
    const changed = traces.filter((trace) => trace.changed === 1);
    const others = traces.filter((trace) => trace.changed !== 1).sort((a, b) => b.last_id - a.last_id).slice(0, Math.max(0, limit - changed.length));
    return [...changed, ...others].sort((a, b) => a.first_id - b.first_id).map((trace) => trace.trace_id);
  }

  /** Writes what is buffered and ignores later records. */
  /**
   * Deletes at most `limit` steps recorded before `epochMs` and returns how many; the caller repeats
   * while the count equals `limit`, yielding in between, so that a large purge never holds the event
   * loop and the writer for long. Traces are diagnostics with a retention.
   */
  purgeOlderThan(epochMs: number, limit = Number.MAX_SAFE_INTEGER): number {
    this.flush();
    return this.deleteBefore.run(epochMs, limit).changes;
  }

  close(): void {
    this.flush();
    this.closed = true;
  }

  private readonly flushFromTimer = (): void => {
    try {
      this.flush();
    } catch (error) {
      // Losing diagnostics is better than crashing the process from a timer.
      this.log.error({ err: error }, 'writing trace steps failed; steps dropped');
    }
  };
}

function toJson(value: unknown): string | null {
  if (value === undefined) return null;
  try {
    return JSON.stringify(value) ?? null;
  } catch (error) {
    return JSON.stringify({ unserialisable: String(error) });
  }
}

const fromJson = (text: string | null): unknown => (text === null ? undefined : JSON.parse(text));

function toStep(record: TraceRecord): StoredTraceStep {
  return {
    id: record.id,
    traceId: record.trace_id,
    spanId: record.span_id,
    parentSpanId: record.parent_span_id,
    fromActor: record.from_actor,
    toActor: record.to_actor,
    messageType: record.message_type,
    payload: fromJson(record.payload),
    stateBefore: fromJson(record.state_before),
    stateAfter: fromJson(record.state_after),
    outcome: fromJson(record.outcome),
    startedAt: record.started_at,
    durationUs: record.duration_us,
  };
}
