/**
 * Renders recorded trace steps (GET /traces/:id, persistence/trace-store.ts) as a text sequence diagram
 * in the style of the seed's, and one step at a time for step-through. Pure: no I/O, no clock, so the
 * same steps always give the same text.
 */

import type { StoredTraceStep } from '../runtime/kernel/trace-step.js';

/** One recorded delivery as GET /traces/:id serves it: JSON drops the fields that were undefined. */
export type TraceStepView = Pick<StoredTraceStep, 'traceId' | 'spanId' | 'parentSpanId' | 'fromActor' | 'toActor' | 'messageType' | 'startedAt' | 'durationUs'> &
  Partial<Pick<StoredTraceStep, 'payload' | 'stateBefore' | 'stateAfter' | 'outcome' | 'id'>>;

export interface DiagramOptions {
  /** Draw the answer of every asked actor as an arrow back (default true). */
  readonly replies?: boolean;
  /** List the full actor names under the diagram (default true). */
  readonly legend?: boolean;
}

/** The device is no actor: its messages reach the vehicle actor through MQTT, sent `from: device/<id>`. */
const DEVICE_MESSAGES = new Set(['DeviceReplied', 'DevicePresence']);
const MIN_GAP = 6;
const LABEL_PADDING = 4;

/**
 * Steps in the order they happened. The store records a step when its handler finishes (children
 * before their parent), and its clock has millisecond precision, so a parent and the child it sent in
 * the same millisecond are ordered by their depth in the span tree.
 */
export function orderSteps<S extends TraceStepView>(steps: readonly S[]): S[] {
  const bySpan = new Map(steps.map((step) => [step.spanId, step]));
  const depth = new Map<S, number>();
  const depthOf = (step: S): number => {
    const known = depth.get(step);
    if (known !== undefined) return known;
    let level = 0;
    const seen = new Set<string>([step.spanId]);
    for (let parent = step.parentSpanId; parent !== null && bySpan.has(parent) && !seen.has(parent); parent = bySpan.get(parent)!.parentSpanId) {
      seen.add(parent);
      level += 1;
    }
    depth.set(step, level);
    return level;
  };
  return steps
    .map((step, index) => ({ step, index }))
    .sort((a, b) => a.step.startedAt - b.step.startedAt || depthOf(a.step) - depthOf(b.step) || (a.step.id ?? a.index) - (b.step.id ?? b.index))
    .map(({ step }) => step);
}

/**
 * The steps that concern one booking: sent to or by it or its payment, carrying its id, or handled by
 * a vehicle while the vehicle was held for it (presence changes arrive in traces of their own, and a
 * vehicle's trace can touch other bookings). Steps in between
 * (ancestors of a kept step) stay, so every arrow still has its cause.
 */
export function focusOnBooking<S extends TraceStepView>(steps: readonly S[], bookingId: string): S[] {
  const concerns = (step: S): boolean =>
    step.fromActor.endsWith(bookingId) ||
    step.toActor.endsWith(bookingId) ||
    asRecord(step.payload)?.bookingId === bookingId ||
    asRecord(step.stateBefore)?.bookingId === bookingId ||
    asRecord(step.stateAfter)?.bookingId === bookingId;
  const bySpan = new Map(steps.map((step) => [step.spanId, step]));
  const kept = new Set<S>();
  for (const step of steps) {
    if (!concerns(step)) continue;
    const seen = new Set<string>();
    for (let current: S | undefined = step; current && !seen.has(current.spanId); current = current.parentSpanId === null ? undefined : bySpan.get(current.parentSpanId)) {
      seen.add(current.spanId);
      kept.add(current);
    }
  }
  return steps.filter((step) => kept.has(step));
}

/** One arrow of the diagram, on the one time axis both the CLI and the browser viewer draw. */
export interface Arrow {
  readonly from: string;
  readonly to: string;
  readonly label: string;
  /** Over MQTT (a command to the device, or the device's answer or presence) or between actors. */
  readonly channel: 'actor' | 'mqtt';
  /** Right-margin annotation: step number, state change, duration. */
  readonly note: string;
  /** Microseconds since epoch, for ordering. */
  readonly atUs: number;
  readonly kind: 'send' | 'reply';
  /** The step this arrow belongs to (index in the ordered steps). */
  readonly step: number;
  /** Index in creation order: a stable tie-break. */
  readonly seq: number;
  /** Sender of the step whose reply this is (for reordering replies against the sender's next send). */
  readonly replyTo?: string;
  /** A root request (from http or a timer): a blank row goes before it. */
  readonly root: boolean;
}

/** The whole diagram as text (lines joined with `\n`, no trailing newline). */
export function renderSequenceDiagram(steps: readonly TraceStepView[], options: DiagramOptions = {}): string {
  return layoutSequenceDiagram(steps, options).lines.join('\n');
}

/** The diagram's lines, and for each line the step (index in `orderSteps` order) whose arrow it draws. */
export interface DiagramLayout {
  readonly lines: readonly string[];
  /** null: a header, lifeline, blank or legend line. */
  readonly stepOfLine: readonly (number | null)[];
}

/** The diagram line by line, so that a step-through can scroll it to the current step. */
export function layoutSequenceDiagram(steps: readonly TraceStepView[], options: DiagramOptions = {}): DiagramLayout {
  if (steps.length === 0) return { lines: ['(no steps recorded)'], stepOfLine: [null] };
  const ordered = orderSteps(steps);
  const arrows = arrowsOf(ordered, options.replies ?? true);
  const participants = participantsOf(arrows);
  const labels = participants.map(shortName);
  const column = new Map(participants.map((name, index) => [name, index]));
  const x = layout(labels, arrows, column);
  const width = x[x.length - 1]! + Math.ceil(labels[labels.length - 1]!.length / 2) + selfLoopExtra(arrows, column, x);
  const noteColumn = width + 3;

  const lifelines = (): string[] => {
    const row = new Array<string>(width).fill(' ');
    for (const position of x) row[position] = '|';
    return row;
  };
  const emit = (row: string[], note = ''): string => (note ? `${row.join('').padEnd(noteColumn)}${note}` : row.join('')).trimEnd();
  const lines: string[] = [];
  const stepOfLine: (number | null)[] = [];
  const push = (step: number | null, ...rows: string[]) => {
    for (const row of rows) {
      lines.push(row);
      stepOfLine.push(step);
    }
  };

  const header = new Array<string>(width).fill(' ');
  labels.forEach((label, index) => writeAt(header, x[index]! - Math.floor(label.length / 2), label));
  push(null, header.join('').trimEnd(), emit(lifelines()));

  for (const arrow of arrows) {
    if (arrow.root && lines.length > 2) push(null, emit(lifelines()));
    const from = column.get(arrow.from)!;
    const to = column.get(arrow.to)!;
    if (from === to) {
      const labelRow = lifelines();
      writeAt(labelRow, x[from]! + 1, `--. ${arrow.label}`);
      const back = lifelines();
      writeAt(back, x[from]! + 1, "<-'");
      push(arrow.step, emit(labelRow), emit(back, arrow.note));
      continue;
    }
    const left = Math.min(x[from]!, x[to]!);
    const right = Math.max(x[from]!, x[to]!);
    const labelRow = lifelines();
    writeAt(labelRow, left + 2, arrow.label);
    const line = lifelines();
    for (let position = left + 1; position < right; position += 1) line[position] = '-';
    if (to > from) line[right - 1] = '>';
    else line[left + 1] = '<';
    push(arrow.step, emit(labelRow), emit(line, arrow.note));
  }
  push(null, emit(lifelines()));

  if (options.legend ?? true) {
    const renamed = participants.filter((name, index) => labels[index] !== name);
    if (renamed.length > 0) {
      push(null, '');
      for (const name of renamed) push(null, `  ${shortName(name).padEnd(18)} = ${name}`);
    }
  }
  return { lines, stepOfLine };
}

export interface TimelineOptions {
  readonly replies?: boolean;
  /** The device's column for a vehicle actor; default `device` (or `device/<id>` when several vehicles take part). */
  readonly deviceOf?: (vehicle: string) => string;
}

/**
 * The arrows in the order things happened, on one time axis: each message when it arrived, its MQTT
 * command when its handler ended, its reply when it was sent (never before the replies of the children it
 * waited for). The CLI diagram and the browser viewer (api/viewer/model.ts) both draw this order.
 */
export function timelineArrows(ordered: readonly TraceStepView[], options: TimelineOptions = {}): Arrow[] {
  return arrowsOf(ordered, options.replies ?? true, options.deviceOf);
}

function arrowsOf(ordered: readonly TraceStepView[], replies: boolean, deviceNaming?: (vehicle: string) => string): Arrow[] {
  const vehicles = new Set(ordered.flatMap((step) => [step.fromActor, step.toActor]).filter((actor) => actor.startsWith('vehicle/')));
  const deviceOf = deviceNaming ?? ((vehicle: string): string => (vehicles.size > 1 ? `device/${vehicle.slice('vehicle/'.length)}` : 'device'));
  const bySpan = new Map(ordered.map((step) => [step.spanId, step]));
  const arrows: Arrow[] = [];
  let seq = 0;
  // Reply times, clamped below: a parent that asked a child cannot answer before the child did.
  const replyAt = ordered.map((step) => startUs(step) + step.durationUs);
  const index = new Map(ordered.map((step, position) => [step, position]));
  for (let position = ordered.length - 1; position >= 0; position -= 1) {
    const step = ordered[position]!;
    const parent = step.parentSpanId === null ? undefined : bySpan.get(step.parentSpanId);
    if (!parent || parent.outcome === undefined || step.outcome === undefined) continue;
    const parentAt = index.get(parent)!;
    const gap = replyAt[position]! - replyAt[parentAt]!;
    // Within the clock's millisecond resolution, the child answered first.
    if (startUs(step) < replyAt[parentAt]! && gap >= 0 && gap < 1000) replyAt[parentAt] = replyAt[position]! + 1;
  }

  ordered.forEach((step, stepIndex) => {
    const number = stepIndex + 1;
    // Device messages come `from: device/<id>` (older traces: from the vehicle itself).
    const fromDevice =
      DEVICE_MESSAGES.has(step.messageType) && (step.fromActor === step.toActor || step.fromActor.startsWith('device/')) && step.toActor.startsWith('vehicle/');
    const from = fromDevice ? deviceOf(step.toActor) : step.fromActor;
    const note = [`[${number}]`, stepNote(step)].filter(Boolean).join(' ');
    arrows.push({
      from,
      to: step.toActor,
      label: fromDevice ? deviceLabel(step) : step.messageType,
      channel: fromDevice ? 'mqtt' : 'actor',
      note,
      atUs: startUs(step),
      kind: 'send',
      step: stepIndex,
      seq: seq++,
      root: !fromDevice && !step.fromActor.includes('/') && (step.parentSpanId === null || !bySpan.has(step.parentSpanId)),
    });
    const command = issuedCommand(step);
    if (command) {
      arrows.push({
        from: step.toActor,
        to: deviceOf(step.toActor),
        label: `MQTT ${command}`,
        channel: 'mqtt',
        note: '',
        atUs: startUs(step) + step.durationUs,
        kind: 'send',
        step: stepIndex,
        seq: seq++,
        root: false,
      });
    }
    if (replies && step.outcome !== undefined && !fromDevice && step.fromActor !== step.toActor) {
      arrows.push({
        from: step.toActor,
        to: step.fromActor,
        label: `{ ${outcomeLabel(step.outcome)} }`,
        channel: 'actor',
        note: '',
        atUs: replyAt[stepIndex]!,
        kind: 'reply',
        step: stepIndex,
        seq: seq++,
        replyTo: step.fromActor,
        root: false,
      });
    }
  });

  arrows.sort((a, b) => a.atUs - b.atUs || a.seq - b.seq);
  // An actor that asked one actor and then another: a reply and the next send within a millisecond
  // are ambiguous on this clock, and the reply is the likelier first.
  for (let position = 1; position < arrows.length; position += 1) {
    const previous = arrows[position - 1]!;
    const current = arrows[position]!;
    if (
      current.kind === 'reply' &&
      previous.kind === 'send' &&
      previous.from === current.replyTo &&
      previous.step !== current.step &&
      !isAncestor(ordered[current.step]!, ordered[previous.step]!, bySpan) &&
      current.atUs - previous.atUs < 1000
    ) {
      arrows[position - 1] = current;
      arrows[position] = previous;
    }
  }
  return arrows;
}

function isAncestor(candidate: TraceStepView, step: TraceStepView, bySpan: ReadonlyMap<string, TraceStepView>): boolean {
  const seen = new Set<string>();
  for (let parent = step.parentSpanId; parent !== null && !seen.has(parent); parent = bySpan.get(parent)?.parentSpanId ?? null) {
    if (parent === candidate.spanId) return true;
    seen.add(parent);
  }
  return false;
}

const startUs = (step: TraceStepView): number => step.startedAt * 1000;

function participantsOf(arrows: readonly Arrow[]): string[] {
  const seen: string[] = [];
  for (const arrow of arrows) {
    if (!seen.includes(arrow.from)) seen.push(arrow.from);
    if (!seen.includes(arrow.to)) seen.push(arrow.to);
  }
  return seen;
}

/** `booking/bk_08d7dd81ebc04561ab1deb9d` → `booking …1deb9d`: columns stay narrow; the legend has the full name. */
export function shortName(actor: string): string {
  const slash = actor.indexOf('/');
  if (slash < 0) return actor;
  const id = actor.slice(slash + 1);
  return id.length <= 16 ? actor : `${actor.slice(0, slash)} …${id.slice(-6)}`;
}

/** Lifeline columns: wide enough for the headers and for every label between two lifelines. */
function layout(labels: readonly string[], arrows: readonly Arrow[], column: ReadonlyMap<string, number>): number[] {
  const x: number[] = [Math.floor(labels[0]!.length / 2)];
  for (let index = 1; index < labels.length; index += 1) {
    let position = x[index - 1]! + Math.max(MIN_GAP, Math.ceil(labels[index - 1]!.length / 2) + Math.ceil(labels[index]!.length / 2) + 2);
    for (const arrow of arrows) {
      const a = column.get(arrow.from)!;
      const b = column.get(arrow.to)!;
      const left = Math.min(a, b);
      const right = Math.max(a, b);
      if (right === index && left < index) position = Math.max(position, x[left]! + arrow.label.length + LABEL_PADDING);
      // A self loop's label runs towards the next lifeline.
      if (a === b && a === index - 1) position = Math.max(position, x[a]! + arrow.label.length + LABEL_PADDING + 4);
    }
    x.push(position);
  }
  return x;
}

function selfLoopExtra(arrows: readonly Arrow[], column: ReadonlyMap<string, number>, x: readonly number[]): number {
  const last = x.length - 1;
  let extra = 0;
  for (const arrow of arrows) if (column.get(arrow.from) === last && arrow.from === arrow.to) extra = Math.max(extra, arrow.label.length + 6);
  return extra;
}

function writeAt(row: string[], start: number, text: string): void {
  for (let offset = 0; offset < text.length; offset += 1) {
    const position = start + offset;
    if (position < 0) continue;
    if (position >= row.length) row.push(...new Array<string>(position - row.length + 1).fill(' '));
    row[position] = text[offset]!;
  }
}

/** `MQTT UNLOCKED`, `MQTT status offline`: the label of a device's arrow (also the browser viewer's). */
export function deviceLabel(step: TraceStepView): string {
  const payload = asRecord(step.payload);
  if (step.messageType === 'DeviceReplied') return `MQTT ${typeof payload?.reply === 'string' ? payload.reply : 'reply'}`;
  return `MQTT status ${payload?.online === true ? 'online' : payload?.online === false ? 'offline' : ''}`.trimEnd();
}

/** The device command a vehicle step published: a new `inFlight` command appeared in its state. */
export function issuedCommand(step: TraceStepView): string | null {
  if (!step.toActor.startsWith('vehicle/')) return null;
  const before = asRecord(asRecord(step.stateBefore)?.inFlight);
  const after = asRecord(asRecord(step.stateAfter)?.inFlight);
  if (!after || typeof after.command !== 'string' || after.commandId === before?.commandId) return null;
  return after.command;
}

/** `booking: CONFIRMED → ACTIVE · 113.8 ms`, with a rejection when the step refused its command. */
function stepNote(step: TraceStepView): string {
  const change = describeStateChange(step.stateBefore, step.stateAfter);
  const kind = step.toActor.split('/')[0]!;
  const rejected = rejectionOf(step.outcome);
  return [change ? `${kind}: ${change}` : kind, rejected ? `✗ ${rejected}` : '', formatDuration(step.durationUs)].filter(Boolean).join(' · ');
}

/** The field that names where an actor is: `phase` (the vehicle's finer view) or `status`. */
function headline(state: Record<string, unknown> | null): string | null {
  if (!state) return null;
  for (const key of ['phase', 'status']) if (typeof state[key] === 'string') return state[key];
  return null;
}

/**
 * `CONFIRMED → ACTIVE`; `ACTIVE (unlockedAt)` when the headline stayed and other fields changed;
 * `ACTIVE` when nothing changed; '' without state.
 */
export function describeStateChange(before: unknown, after: unknown): string {
  const a = asRecord(before);
  const b = asRecord(after);
  const from = headline(a);
  const to = headline(b);
  if (from === null && to === null) return '';
  if (from !== to) return `${from ?? '∅'} → ${to ?? '∅'}`;
  const changed = Object.keys({ ...a, ...b }).filter((key) => key !== 'phase' && key !== 'status' && !sameJson(a?.[key], b?.[key]));
  if (changed.length === 0) return `${to}`;
  const shown = changed.slice(0, 3).join(', ');
  return `${to} (${shown}${changed.length > 3 ? ', …' : ''})`;
}

function rejectionOf(outcome: unknown): string | null {
  const record = asRecord(outcome);
  if (!record) return null;
  if (record.ok === false) return typeof asRecord(record.rejection)?.type === 'string' ? String(asRecord(record.rejection)!.type) : 'rejected';
  if (typeof record.error === 'string') return `error: ${truncate(record.error, 40)}`;
  return null;
}

/** What goes between the braces of a reply arrow: `CONFIRMED`, `ok`, `✗ VehicleUnavailable`. */
export function outcomeLabel(outcome: unknown): string {
  const rejected = rejectionOf(outcome);
  if (rejected) return `✗ ${rejected}`;
  const record = asRecord(outcome);
  if (record?.ok === true) {
    const value = asRecord(record.value);
    return typeof value?.status === 'string' ? value.status : 'ok';
  }
  return truncate(JSON.stringify(outcome) ?? String(outcome), 24);
}

export function formatDuration(durationUs: number): string {
  if (durationUs < 1000) return `${Math.round(durationUs)} µs`;
  if (durationUs < 1_000_000) return `${(durationUs / 1000).toFixed(1)} ms`;
  return `${(durationUs / 1_000_000).toFixed(2)} s`;
}

export interface FieldChange {
  /** Dotted path from the state root: `inFlight.commandId`. */
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
}

/** Leaf-level differences between two JSON states (arrays compared whole). */
export function stateChanges(before: unknown, after: unknown, prefix = ''): FieldChange[] {
  const a = asRecord(before);
  const b = asRecord(after);
  if (!a || !b) return sameJson(before, after) ? [] : [{ path: prefix || '(state)', before, after }];
  const changes: FieldChange[] = [];
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (sameJson(a[key], b[key])) continue;
    if (asRecord(a[key]) && asRecord(b[key])) changes.push(...stateChanges(a[key], b[key], path));
    else changes.push({ path, before: a[key], after: b[key] });
  }
  return changes;
}

/** One step in full, for step-through: who, what, when, the state change field by field, then the JSON. */
export function renderStepDetail(step: TraceStepView, position: number, total: number): string {
  const lines: string[] = [];
  const title = `step ${position}/${total}: ${step.messageType}`;
  lines.push(`── ${title} ${'─'.repeat(Math.max(3, 72 - title.length))}`);
  lines.push(`${step.fromActor} → ${step.toActor}`);
  lines.push(
    `trace ${step.traceId}  span ${step.spanId}${step.parentSpanId ? ` (parent ${step.parentSpanId})` : ''}`,
    `started ${new Date(step.startedAt).toISOString()}  took ${formatDuration(step.durationUs)}`,
  );
  const change = describeStateChange(step.stateBefore, step.stateAfter);
  if (change) lines.push(`state: ${change}`);
  const changes = stateChanges(step.stateBefore, step.stateAfter);
  if (changes.length > 0) {
    lines.push('changed:');
    for (const field of changes) lines.push(`  ${field.path}: ${compact(field.before)} → ${compact(field.after)}`);
  }
  lines.push('payload:', indent(pretty(step.payload)));
  lines.push(`outcome: ${step.outcome === undefined ? '(none: told, or answered later)' : ''}`);
  if (step.outcome !== undefined) lines.push(indent(pretty(step.outcome)));
  lines.push('state before:', indent(pretty(step.stateBefore)), 'state after:', indent(pretty(step.stateAfter)));
  return lines.join('\n');
}

const pretty = (value: unknown): string => (value === undefined ? '(none)' : JSON.stringify(value, null, 2));
const compact = (value: unknown): string => (value === undefined ? '(absent)' : truncate(JSON.stringify(value), 60));
const indent = (text: string): string =>
  text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
const truncate = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);
const sameJson = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}
