import { evolve as evolveClaim, initialClaimState, type ClaimEvent, type ClaimState } from '../actors/idempotency/decider.js';
import { evolve as evolveBooking, initialBookingState, type BookingEvent, type BookingState } from '../actors/booking/decider.js';
import { evolve as evolvePayment, initialPaymentState, type PaymentEvent, type PaymentState } from '../actors/payment/decider.js';
import { toBookingRecord } from '../actors/booking/record.js';
import { toPaymentRecord } from '../actors/payment/record.js';
import { evolve as evolveVehicle, type VehicleEvent } from '../actors/vehicle/decider.js';
import { toVehicleRecord } from '../actors/vehicle/record.js';
import { initialVehicleState, type VehicleState } from '../actors/vehicle/state.js';
import type { ActorJournalEntry } from '../runtime/kernel/journal.js';
import { shardOfAuthorization, shardOfBooking, shardOfClaim, shardOfVehicle } from '../runtime/kernel/placement.js';
import { stateChanges, type FieldChange } from './trace-diagram.js';

/**
 * Time travel for one actor: its journal folded through the same `evolve` the actor recovers with
 * (actors/<kind>/decider.ts), one step per event. Pure: entries in, steps out; reading the journal is
 * the caller's job (scripts/replay.ts from a shard file, or an HTTP read through the shard protocol).
 */

export const REPLAY_KINDS = ['vehicle', 'booking', 'payment', 'idempotency'] as const;
export type ReplayKind = (typeof REPLAY_KINDS)[number];

export const isReplayKind = (kind: string): kind is ReplayKind => (REPLAY_KINDS as readonly string[]).includes(kind);

interface Fold<State, Event> {
  readonly initialState: State;
  readonly evolve: (state: State, event: Event) => State;
  /** The state as a replay shows it (the flat record its snapshots store); the state itself when absent. */
  readonly show?: (state: State) => unknown;
}

const FOLDS: {
  readonly vehicle: Fold<VehicleState, VehicleEvent>;
  readonly booking: Fold<BookingState, BookingEvent>;
  readonly payment: Fold<PaymentState, PaymentEvent>;
  readonly idempotency: Fold<ClaimState, ClaimEvent>;
} = {
  vehicle: { initialState: initialVehicleState, evolve: evolveVehicle, show: toVehicleRecord },
  booking: { initialState: initialBookingState, evolve: evolveBooking, show: toBookingRecord },
  payment: { initialState: initialPaymentState, evolve: evolvePayment, show: toPaymentRecord },
  // An Idempotency-Key claim (actors/idempotency/): its id is `idem_…`, as its journal key shows.
  idempotency: { initialState: initialClaimState, evolve: evolveClaim },
};

/** The journal's persistence key of an actor (`vehicle/v-1`), as the directory names it. */
export const persistenceKeyOf = (kind: ReplayKind, id: string): string => `${kind}/${id}`;

/** The shard that holds an actor (runtime/kernel/placement.ts), or null when its id names none of `shardCount`. */
export function shardOfActor(kind: ReplayKind, id: string, shardCount: number): number | null {
  switch (kind) {
    case 'vehicle':
      return shardOfVehicle(id, shardCount);
    case 'booking':
      return shardOfBooking(id, shardCount);
    case 'payment':
      return shardOfAuthorization(id, shardCount);
    case 'idempotency':
      return shardOfClaim(id, shardCount);
  }
}

export interface ReplayStep {
  readonly seq: number;
  /** Commit time, epoch ms. */
  readonly at: number;
  readonly type: string;
  /** The event as journaled. */
  readonly event: unknown;
  readonly traceId: string | null;
  /** The delivery (trace step) that persisted it. */
  readonly spanId: string | null;
  /** The state after this event, as shown (Fold.show). */
  readonly state: unknown;
  /** Leaf fields this event changed (arrays compared whole). */
  readonly changes: readonly FieldChange[];
}

export interface Replay {
  readonly kind: ReplayKind;
  readonly id: string;
  readonly steps: readonly ReplayStep[];
  /** The state after the last step, as shown (the initial state when there was none). */
  readonly state: unknown;
}

/** Folds `entries` (oldest first) through the kind's `evolve`; with `untilSeq`, only events up to it. */
export function replayActor(kind: ReplayKind, id: string, entries: readonly ActorJournalEntry[], untilSeq?: number): Replay {
  // The folds differ only in their types: the journal says which events belong to which actor.
  const fold = FOLDS[kind] as unknown as Fold<unknown, unknown>;
  const show = fold.show ?? ((state: unknown) => state);
  let state = fold.initialState;
  let shown = show(state);
  const steps: ReplayStep[] = [];
  for (const entry of entries) {
    if (untilSeq !== undefined && entry.sequenceNumber > untilSeq) break;
    state = fold.evolve(state, entry.data);
    const next = show(state);
    steps.push({ seq: entry.sequenceNumber, at: entry.createdAt, type: entry.eventType, event: entry.data, traceId: entry.traceId, spanId: entry.spanId, state: next, changes: stateChanges(shown, next) });
    shown = next;
  }
  return { kind, id, steps, state: shown };
}

/** `vehicle/v-1` (a trace step's `toActor`, a persistence key) → its kind and id; null for what is no replayable actor (`http`, `device/…`). */
export function actorOfName(name: string): { readonly kind: ReplayKind; readonly id: string } | null {
  const slash = name.indexOf('/');
  const kind = name.slice(0, slash);
  return slash > 0 && isReplayKind(kind) && slash < name.length - 1 ? { kind, id: name.slice(slash + 1) } : null;
}

/** The sequence number of the last event a delivery (trace step `spanId`) persisted: its `--until`. Null when it persisted none. */
export function seqOfSpan(steps: readonly Pick<ReplayStep, 'seq' | 'spanId'>[], spanId: string): number | null {
  let seq: number | null = null;
  for (const step of steps) if (step.spanId === spanId) seq = step.seq;
  return seq;
}

/** The command that shows an actor's state at `untilSeq`, as a trace viewer links it. */
export function replayCommand(kind: ReplayKind, id: string, untilSeq?: number): string {
  const quoted = /^[A-Za-z0-9._-]+$/.test(id) ? id : `'${id.replaceAll("'", "'\\''")}'`;
  return `npm run replay -- ${kind} ${quoted}${untilSeq === undefined ? '' : ` --until ${untilSeq}`}`;
}

export interface RenderReplayOptions {
  /** The whole state after every event instead of the fields it changed. */
  readonly full?: boolean;
}

/**
 * The replay as text, one block per event:
 *
 *     #3  +2.10 s  2026-12-04T18:40:00.123Z  UnlockRequested  {"bookingId":"bk_…","at":"2026-12-04T18:40:00.123Z",…}
 *         inFlight: null → {"commandId":"…",…}
 *
 * Each event's time relative to the first (readable), then absolute; times inside events and states
 * (`at`, `…At`: epoch milliseconds in the journal) are shown as ISO 8601.
 */
export function renderReplay(replay: Replay, options: RenderReplayOptions = {}): string {
  const lines: string[] = [`${replay.kind}/${replay.id}: ${replay.steps.length} event${replay.steps.length === 1 ? '' : 's'}`];
  const first = replay.steps[0]?.at ?? 0;
  for (const step of replay.steps) {
    lines.push('', `#${step.seq}  ${formatSince(step.at - first)}  ${new Date(step.at).toISOString()}  ${step.type}  ${json(payloadOf(step.event))}`);
    if (options.full) {
      lines.push(...JSON.stringify(step.state, readableTimes, 2).split('\n').map((line) => `    ${line}`));
    } else if (step.changes.length === 0) {
      lines.push('    (no field changed)');
    } else {
      for (const change of step.changes) lines.push(`    ${change.path}: ${json(change.before)} → ${json(change.after)}`);
    }
  }
  return lines.join('\n');
}

/** The event without its `type` (already in the line). */
function payloadOf(event: unknown): unknown {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return event;
  const { type: _type, ...rest } = event as Record<string, unknown>;
  return rest;
}

const json = (value: unknown): string => (value === undefined ? '(absent)' : JSON.stringify(value, readableTimes));

/** Epoch milliseconds (from 2001 on) under a time-like key, as ISO 8601. */
function readableTimes(key: string, value: unknown): unknown {
  return (key === 'at' || key.endsWith('At')) && typeof value === 'number' && value > 1e12 ? new Date(value).toISOString() : value;
}

/** `+12 ms`, `+1.24 s`, `+2 min 05 s`: how long after the first event. */
export function formatSince(ms: number): string {
  if (ms < 1000) return `+${Math.round(ms)} ms`;
  if (ms < 60_000) return `+${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `+${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
  return `+${Math.floor(seconds / 3600)} h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')} min`;
}
