import type { Envelope } from './envelope.js';
import type { TraceStep } from './trace-step.js';

/**
 * Tracing as an observer of deliveries (undici's diagnostics style): the delivery tells it when a
 * message starts and how it ended; whether and what to record is decided here, not in the hot path.
 */

/** Where every recorded delivery goes (persistence/trace-store.ts). */
export interface TraceSink {
  record(step: TraceStep): void;
}

/** How one delivery ended, as its observer hears it. */
export interface DeliveryEnd {
  /** `<kind>/<id>` of the actor that handled it. */
  readonly actor: string;
  /** The reply, `{ error }` for a handler that threw, undefined for none. */
  readonly outcome: unknown;
  /** The state after (described only if the step is recorded). */
  readonly state: unknown;
  readonly failed: boolean;
}

/** Hears every delivery that is handled (not one handed on to another activation: see NotNewAfterAll). */
export interface DeliveryObserver<Watch = unknown> {
  /** Before the handler runs; the state is described (`describeState`) only if it is wanted. */
  started(envelope: Envelope, describer: StateDescriber, state: unknown): Watch;
  finished(watch: Watch, end: DeliveryEnd): void;
}

/** What shows an actor's state in traces: its behaviour (ActorBehaviour.describe), called as a method. */
export interface StateDescriber {
  describe?(state: unknown): unknown;
  /** ActorBehaviour.traceOnlyExceptions: never counts as sampled. */
  readonly traceOnlyExceptions?: boolean;
}

/** The state as traces show it: the behaviour's view, or the state itself. */
export const describeState = (describer: StateDescriber, state: unknown): unknown => (describer.describe ? describer.describe(state) : state);

/** Recent states kept described (TraceRecorder.describeOnce): a few times the deliveries in flight on a busy shard. */
const DESCRIBED_STATES_KEPT = 1024;

/** A delivery slower than this is always recorded: the trace of a slow request is the one wanted. */
const SLOW_DELIVERY_US = 250_000;

/** Deterministic in the trace id (its first 8 hex digits as a fraction), so every shard draws alike. */
export function isSampled(traceId: string, sample: number): boolean {
  if (sample >= 1) return true;
  if (sample <= 0) return false;
  return Number.parseInt(traceId.slice(0, 8), 16) / 0x1_0000_0000 < sample;
}

interface TraceWatch {
  readonly envelope: Envelope;
  readonly describer: StateDescriber;
  readonly startedAt: number;
  readonly started: bigint;
  readonly sampled: boolean;
  readonly stateBefore: unknown;
}

/**
 * Records deliveries as trace steps: a share of traces (`sample`, 0..1, drawn by trace id so one
 * request is recorded at every hop or at none), and whatever the draw, a delivery that failed, was
 * slow or was refused.
 */
export class TraceRecorder implements DeliveryObserver<TraceWatch> {
  constructor(
    private readonly sink: TraceSink,
    private readonly sample: number,
    /** A refusal recorded by no draw (DirectoryOptions.untracedRefusal). */
    private readonly untracedRefusal: (outcome: unknown) => boolean = () => false,
  ) {}

  /**
   * The described form of recent states, by the state object: a delivery's state after is the next
   * delivery's state before (an actor's state object lives until it changes), and a read leaves the
   * state as it was, so each state is described once and the trace store serialises that one object
   * once (persistence/trace-store.ts). States are immutable (deciders' evolve returns new ones).
   */
  private readonly described = new Map<unknown, unknown>();

  started(envelope: Envelope, describer: StateDescriber, state: unknown): TraceWatch {
    const startedAt = Date.now();
    const started = process.hrtime.bigint();
    const sampled = describer.traceOnlyExceptions !== true && isSampled(envelope.traceId, this.sample);
    return { envelope, describer, startedAt, started, sampled, stateBefore: sampled ? this.describeOnce(describer, state) : undefined };
  }

  private describeOnce(describer: StateDescriber, state: unknown): unknown {
    if (typeof state !== 'object' || state === null) return describeState(describer, state);
    const known = this.described.get(state);
    if (known !== undefined) return known;
    const described = describeState(describer, state);
    this.described.set(state, described);
    // Bounded: the states of the sagas in flight, not of every actor that ever ran.
    if (this.described.size > DESCRIBED_STATES_KEPT) this.described.delete(this.described.keys().next().value);
    return described;
  }

  finished(watch: TraceWatch, end: DeliveryEnd): void {
    const durationUs = Number((process.hrtime.bigint() - watch.started) / 1000n);
    if (isRejection(end.outcome) && this.untracedRefusal(end.outcome)) return;
    if (!(watch.sampled || end.failed || durationUs >= SLOW_DELIVERY_US || isRejection(end.outcome))) return;
    const { envelope } = watch;
    this.sink.record({
      traceId: envelope.traceId,
      spanId: envelope.spanId,
      parentSpanId: envelope.parentSpanId,
      fromActor: envelope.from,
      toActor: end.actor,
      messageType: envelope.type,
      payload: envelope.payload,
      stateBefore: watch.stateBefore,
      stateAfter: this.describeOnce(watch.describer, end.state),
      outcome: end.outcome,
      startedAt: watch.startedAt,
      durationUs,
    });
  }
}

/** A reply that refuses (an Outcome with `ok: false`): the traces of refused requests are always kept. */
const isRejection = (outcome: unknown): boolean => typeof outcome === 'object' && outcome !== null && (outcome as { ok?: unknown }).ok === false;
