/**
 * What the trace viewer page draws (GET /traces/:id/view): participants, arrows and steps, computed
 * here on the server from the recorded steps and the journal so that the page's script only draws.
 * Pure: the same steps and events always give the same model.
 */

import type { TraceJournalQuery, TracedEvent } from '../../actors/contract/trace-views.js';
import {
  describeStateChange,
  focusOnBooking,
  formatDuration,
  orderSteps,
  outcomeLabel,
  shortName,
  stateChanges,
  timelineArrows,
  type FieldChange,
  type TraceStepView,
} from '../../traces/trace-diagram.js';

export interface ViewerParticipant {
  /** `http`, `booking/bk_…`, `device/<vehicle id>`, `kafka`. */
  readonly name: string;
  /** What the column header shows. */
  readonly label: string;
}

export type ArrowKind = 'send' | 'reply' | 'mqtt' | 'kafka';

export interface ViewerArrow {
  readonly from: string;
  readonly to: string;
  readonly label: string;
  readonly kind: ArrowKind;
  /** The step (index into `steps`) this arrow belongs to. */
  readonly step: number;
}

export interface ReplayLink {
  readonly kind: string;
  readonly id: string;
  /** The receiving actor's sequence number after this step. */
  readonly until: number;
  readonly command: string;
}

export interface ViewerStep {
  readonly index: number;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  /** Columns of the arrow: the device instead of the vehicle for messages that came over MQTT. */
  readonly from: string;
  readonly to: string;
  /** The message came from the device over MQTT (a reply or a presence change). */
  readonly viaMqtt: boolean;
  readonly messageType: string;
  readonly payload: unknown;
  readonly outcome: unknown;
  /** `CONFIRMED`, `ok`, `✗ VehicleUnavailable`; null when the step did not answer (told, or answered later). */
  readonly outcomeLabel: string | null;
  readonly stateBefore: unknown;
  readonly stateAfter: unknown;
  /** `CONFIRMED → ACTIVE`, '' without state. */
  readonly stateChange: string;
  readonly changes: readonly FieldChange[];
  /** Epoch ms; `offsetMs` from the first step. */
  readonly startedAt: number;
  readonly offsetMs: number;
  readonly durationUs: number;
  readonly duration: string;
  /** The journal events this step persisted (same trace and span), in sequence order. */
  readonly events: readonly TracedEvent[];
  readonly replay: ReplayLink | null;
}

export interface ViewerModel {
  /** What was asked for: a booking id or a trace id. */
  readonly id: string;
  readonly kind: 'booking' | 'trace';
  readonly traceIds: readonly string[];
  readonly participants: readonly ViewerParticipant[];
  readonly arrows: readonly ViewerArrow[];
  readonly steps: readonly ViewerStep[];
  /** Where public events go: `kafka` (KAFKA_BROKERS set) or `journal` (kept for GET /events). */
  readonly publicEvents: 'kafka' | 'journal';
  /** Steps of the same traces that concern other bookings or the vehicle's set-up (left out for a booking id). */
  readonly hidden: number;
}

export interface ViewerModelOptions {
  /** KAFKA_BROKERS is set: public events are drawn going to a Kafka lane (otherwise no such lane). */
  readonly kafka: boolean;
}

const TRACE_ID = /^[0-9a-f]{32}$/;
/** The device is no actor: its messages reach the vehicle actor through MQTT (traces/trace-diagram.ts). */
const DEVICE_MESSAGES = new Set(['DeviceReplied', 'DevicePresence']);
export const KAFKA = 'kafka';

/** The steps to show for an id, in the order they happened: a booking id keeps only the steps that concern it. */
export function selectSteps<S extends TraceStepView>(id: string, steps: readonly S[]): { kind: 'booking' | 'trace'; steps: S[]; hidden: number } {
  const kind = TRACE_ID.test(id) ? 'trace' : 'booking';
  const kept = kind === 'trace' ? [...steps] : focusOnBooking(steps, id);
  return { kind, steps: orderSteps(kept), hidden: steps.length - kept.length };
}

const isActor = (name: string): boolean => /^[a-z]+\/.+/.test(name) && !name.startsWith('device/');
const endMs = (step: TraceStepView): number => step.startedAt + Math.ceil(step.durationUs / 1000);

/** The journal read the model needs for these (ordered) steps: their events, and each receiving actor's sequence number when the step ended. */
export function journalQueryFor(ordered: readonly TraceStepView[]): TraceJournalQuery {
  const receivers = ordered.filter((step) => isActor(step.toActor));
  return {
    traceIds: [...new Set(ordered.map((step) => step.traceId))],
    keys: [...new Set(receivers.map((step) => step.toActor))],
    points: receivers.map((step) => ({ key: step.toActor, at: endMs(step) })),
  };
}

/**
 * The model for `ordered` steps (selectSteps) and what the journal answered to journalQueryFor(ordered).
 * `seqAt` is only a fallback for the replay link of a step that persisted nothing: the clock has
 * millisecond precision, so it is capped below the first event a later step of the same actor persisted.
 */
export function buildViewerModel(
  id: string,
  selection: { kind: 'booking' | 'trace'; steps: readonly TraceStepView[]; hidden: number },
  journal: { events: readonly TracedEvent[]; seqAt: readonly number[] } = { events: [], seqAt: [] },
  options: ViewerModelOptions = { kafka: false },
): ViewerModel {
  const ordered = selection.steps;
  const eventsBySpan = new Map<string, TracedEvent[]>();
  for (const event of journal.events) {
    if (event.spanId === null || event.traceId === null) continue;
    const span = `${event.traceId}/${event.spanId}`;
    const list = eventsBySpan.get(span) ?? [];
    list.push(event);
    eventsBySpan.set(span, list);
  }
  for (const list of eventsBySpan.values()) list.sort((a, b) => a.sequenceNumber - b.sequenceNumber);

  const first = ordered[0]?.startedAt ?? 0;
  let point = 0;
  const steps: ViewerStep[] = ordered.map((step, index) => {
    const fromDevice = DEVICE_MESSAGES.has(step.messageType) && (step.fromActor === step.toActor || step.fromActor.startsWith('device/')) && step.toActor.startsWith('vehicle/');
    const events = eventsBySpan.get(`${step.traceId}/${step.spanId}`) ?? [];
    const seqAt = isActor(step.toActor) ? (journal.seqAt[point++] ?? 0) : 0;
    return {
      index,
      traceId: step.traceId,
      spanId: step.spanId,
      parentSpanId: step.parentSpanId,
      from: fromDevice ? deviceOf(step.toActor) : step.fromActor,
      to: step.toActor,
      viaMqtt: fromDevice,
      messageType: step.messageType,
      payload: step.payload,
      outcome: step.outcome,
      outcomeLabel: step.outcome === undefined ? null : outcomeLabel(step.outcome),
      stateBefore: step.stateBefore,
      stateAfter: step.stateAfter,
      stateChange: describeStateChange(step.stateBefore, step.stateAfter),
      changes: stateChanges(step.stateBefore, step.stateAfter),
      startedAt: step.startedAt,
      offsetMs: step.startedAt - first,
      durationUs: step.durationUs,
      duration: formatDuration(step.durationUs),
      events,
      replay: replayOf(step, events, seqAt, ordered.slice(index + 1), eventsBySpan),
    };
  });

  const arrows = arrowsOf(ordered, steps, options.kafka);
  const names: string[] = [];
  for (const arrow of arrows) for (const name of [arrow.from, arrow.to]) if (!names.includes(name)) names.push(name);
  // Columns in the saga's order whatever came first: callers, booking, vehicle, its device, payment, Kafka.
  names.sort((a, b) => columnRank(a) - columnRank(b));
  return {
    id,
    kind: selection.kind,
    traceIds: [...new Set(ordered.map((step) => step.traceId))],
    participants: names.map((name) => ({ name, label: labelOf(name) })),
    arrows,
    steps,
    publicEvents: options.kafka ? 'kafka' : 'journal',
    hidden: selection.hidden,
  };
}

function replayOf(step: TraceStepView, own: readonly TracedEvent[], seqAt: number, later: readonly TraceStepView[], eventsBySpan: ReadonlyMap<string, TracedEvent[]>): ReplayLink | null {
  if (!isActor(step.toActor)) return null;
  const slash = step.toActor.indexOf('/');
  const kind = step.toActor.slice(0, slash);
  const id = step.toActor.slice(slash + 1);
  let until = own.at(-1)?.sequenceNumber;
  if (until === undefined) {
    until = seqAt;
    for (const next of later) {
      const persisted = next.toActor === step.toActor ? eventsBySpan.get(`${next.traceId}/${next.spanId}`)?.[0] : undefined;
      if (persisted) {
        until = Math.min(until, persisted.sequenceNumber - 1);
        break;
      }
    }
  }
  return { kind, id, until, command: `npm run replay -- ${kind} ${id} --until ${until}` };
}

/**
 * Arrows in the order they happened: traces/trace-diagram.ts's timeline, the one the CLI draws (a
 * step's reply after everything it waited for, e.g. UnlockBooking's `ok` after `MQTT UNLOCKED`). With
 * Kafka configured, a step's public events go out to the Kafka lane just before its reply (they were
 * committed with the step; the relay publishes them); without Kafka there is no such lane: the events
 * stay in the journal (GET /events) and the step's detail lists them.
 */
function arrowsOf(ordered: readonly TraceStepView[], steps: readonly ViewerStep[], kafka: boolean): ViewerArrow[] {
  const arrows: ViewerArrow[] = [];
  const published = new Set<number>();
  const publish = (index: number): void => {
    if (!kafka || published.has(index)) return;
    published.add(index);
    const step = steps[index]!;
    for (const event of step.events) if (event.topic) arrows.push({ from: step.to, to: KAFKA, label: `Kafka ${event.topic}`, kind: 'kafka', step: index });
  };
  const timeline = timelineArrows(ordered, { deviceOf });
  const lastOfStep = new Map<number, number>();
  timeline.forEach((arrow, position) => lastOfStep.set(arrow.step, position));
  timeline.forEach((arrow, position) => {
    const step = steps[arrow.step]!;
    if (arrow.kind === 'reply') {
      publish(arrow.step);
      arrows.push({ from: arrow.from, to: arrow.to, label: step.outcomeLabel ?? arrow.label, kind: 'reply', step: arrow.step });
      return;
    }
    arrows.push({ from: arrow.from, to: arrow.to, label: arrow.label, kind: arrow.channel === 'mqtt' ? 'mqtt' : 'send', step: arrow.step });
    // A step without a reply (told, or a device message) publishes after its last arrow.
    if (lastOfStep.get(arrow.step) === position) publish(arrow.step);
  });
  return arrows;
}

const COLUMN_RANK: Readonly<Record<string, number>> = { booking: 1, vehicle: 2, device: 3, payment: 4 };
function columnRank(name: string): number {
  if (name === KAFKA) return 9;
  if (!name.includes('/')) return 0;
  return COLUMN_RANK[name.slice(0, name.indexOf('/'))] ?? 5;
}

const deviceOf = (vehicle: string): string => `device/${vehicle.slice(vehicle.indexOf('/') + 1)}`;

function labelOf(name: string): string {
  if (name === KAFKA) return 'Kafka (relay)';
  return shortName(name);
}
