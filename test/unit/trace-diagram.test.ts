import { describe, expect, it } from 'vitest';
import {
  describeStateChange,
  focusOnBooking,
  formatDuration,
  orderSteps,
  outcomeLabel,
  renderSequenceDiagram,
  renderStepDetail,
  shortName,
  stateChanges,
  type TraceStepView,
} from '../../traces/trace-diagram.js';

const BOOKING = 'booking/bk_0123456789abcdef01234567';
const PAYMENT = 'payment/auth_bk_0123456789abcdef01234567';
const VEHICLE = 'vehicle/v-1';
const T = 1_800_000_000_000;

const booking = (status: string, extra: Record<string, unknown> = {}) => ({ status, bookingId: 'bk_0123456789abcdef01234567', unlockedAt: null, ...extra });
const vehicle = (phase: string, inFlight: Record<string, unknown> | null = null) => ({ phase, status: phase === 'UNLOCKING' ? 'RESERVED' : phase, inFlight });
const command = { commandId: 'cmd-1', command: 'UNLOCK', bookingId: 'bk_0123456789abcdef01234567' };

function step(fields: Partial<TraceStepView> & Pick<TraceStepView, 'spanId' | 'fromActor' | 'toActor' | 'messageType' | 'startedAt'>): TraceStepView {
  return { traceId: 'a'.repeat(32), parentSpanId: null, payload: { type: fields.messageType }, durationUs: 1000, ...fields };
}

/**
 * A booking's creation and unlock, in the order the trace store records them: a step is written when
 * its handler finishes, so children come before their parents.
 */
const TRACE: TraceStepView[] = [
  step({
    id: 1,
    spanId: 'reserve',
    parentSpanId: 'create',
    fromActor: BOOKING,
    toActor: VEHICLE,
    messageType: 'ReserveVehicle',
    startedAt: T,
    durationUs: 2_000,
    stateBefore: vehicle('AVAILABLE'),
    stateAfter: vehicle('RESERVED'),
    outcome: { ok: true, value: { vehicleType: 'scooter' } },
  }),
  step({
    id: 2,
    spanId: 'authorize',
    parentSpanId: 'create',
    fromActor: BOOKING,
    toActor: PAYMENT,
    messageType: 'Authorize',
    startedAt: T + 5,
    durationUs: 20_000,
    stateBefore: { status: 'NEW' },
    stateAfter: { status: 'AUTHORIZED' },
    outcome: { ok: true, value: { authorizationId: 'auth_bk_0123456789abcdef01234567' } },
  }),
  step({
    id: 3,
    spanId: 'create',
    parentSpanId: 'http-root-1',
    fromActor: 'http',
    toActor: BOOKING,
    messageType: 'CreateBooking',
    startedAt: T,
    durationUs: 120_600,
    stateBefore: booking('NEW'),
    stateAfter: booking('CONFIRMED'),
    outcome: { ok: true, value: { status: 'CONFIRMED' } },
  }),
  step({
    id: 4,
    traceId: 'b'.repeat(32),
    spanId: 'unlock-vehicle',
    parentSpanId: 'unlock',
    fromActor: BOOKING,
    toActor: VEHICLE,
    messageType: 'UnlockVehicle',
    startedAt: T + 1000,
    durationUs: 800,
    stateBefore: vehicle('RESERVED'),
    stateAfter: vehicle('UNLOCKING', command),
  }),
  step({
    id: 5,
    traceId: 'c'.repeat(32),
    spanId: 'device-replied',
    parentSpanId: 'activation',
    fromActor: VEHICLE,
    toActor: VEHICLE,
    messageType: 'DeviceReplied',
    payload: { type: 'DeviceReplied', commandId: 'cmd-1', reply: 'UNLOCKED', reason: null, at: T + 1030 },
    startedAt: T + 1030,
    durationUs: 34,
    stateBefore: vehicle('UNLOCKING', command),
    stateAfter: vehicle('IN_USE'),
  }),
  step({
    id: 6,
    traceId: 'b'.repeat(32),
    spanId: 'unlock',
    parentSpanId: 'http-root-2',
    fromActor: 'http',
    toActor: BOOKING,
    messageType: 'UnlockBooking',
    startedAt: T + 1000,
    durationUs: 45_000,
    stateBefore: booking('CONFIRMED'),
    stateAfter: booking('ACTIVE', { unlockedAt: T + 1030 }),
    outcome: { ok: true, value: { unlockedAt: T + 1030 } },
  }),
  step({
    id: 7,
    traceId: 'c'.repeat(32),
    spanId: 'was-unlocked',
    parentSpanId: 'device-replied',
    fromActor: VEHICLE,
    toActor: BOOKING,
    messageType: 'VehicleWasUnlocked',
    startedAt: T + 1050,
    durationUs: 20,
    stateBefore: booking('ACTIVE', { unlockedAt: T + 1030 }),
    stateAfter: booking('ACTIVE', { unlockedAt: T + 1030 }),
  }),
  step({
    id: 8,
    traceId: 'd'.repeat(32),
    spanId: 'rebook',
    parentSpanId: 'http-root-3',
    fromActor: 'http',
    toActor: VEHICLE,
    messageType: 'ReserveVehicle',
    startedAt: T + 2000,
    durationUs: 300,
    stateBefore: vehicle('IN_USE'),
    stateAfter: vehicle('IN_USE'),
    outcome: { ok: false, rejection: { type: 'VehicleUnavailable', vehicleId: 'v-1', status: 'IN_USE' } },
  }),
  step({
    id: 9,
    traceId: 'e'.repeat(32),
    spanId: 'deadline',
    parentSpanId: 'device-replied',
    fromActor: VEHICLE,
    toActor: VEHICLE,
    messageType: 'CommandDeadline',
    startedAt: T + 6000,
    durationUs: 15,
    stateBefore: vehicle('IN_USE'),
    stateAfter: vehicle('IN_USE'),
  }),
];

const lines = (text: string) => text.split('\n');
/** Columns of the lifelines, read from the first row under the header. */
const lifelineColumns = (diagram: string): number[] => [...lines(diagram)[1]!].flatMap((char, index) => (char === '|' ? [index] : []));
/** The arrow row that follows the label row holding `label`. */
function arrowRow(diagram: string, label: string, occurrence = 0): { labelRow: string; arrow: string } {
  const all = lines(diagram);
  const found = all.flatMap((line, index) => (line.includes(label) ? [index] : []));
  const index = found[occurrence];
  if (index === undefined) throw new Error(`no row with ${label} (occurrence ${occurrence}) in\n${diagram}`);
  return { labelRow: all[index]!, arrow: all[index + 1]! };
}

describe('orderSteps', () => {
  it('orders by start time, a parent before the child it sent in the same millisecond, whatever the recording order', () => {
    expect(orderSteps(TRACE).map((s) => s.id)).toEqual([3, 1, 2, 6, 4, 5, 7, 8, 9]);
  });

  it('keeps recording order for unrelated steps that started in the same millisecond', () => {
    const a = step({ id: 2, spanId: 'a', fromActor: 'http', toActor: VEHICLE, messageType: 'A', startedAt: T });
    const b = step({ id: 1, spanId: 'b', fromActor: 'http', toActor: VEHICLE, messageType: 'B', startedAt: T });
    expect(orderSteps([a, b]).map((s) => s.messageType)).toEqual(['B', 'A']);
  });
});

describe('renderSequenceDiagram', () => {
  const diagram = renderSequenceDiagram(TRACE);

  it('has one column per actor, in order of appearance, with the device inferred from DeviceReplied', () => {
    const header = lines(diagram)[0]!;
    const names = ['http', shortName(BOOKING), VEHICLE, shortName(PAYMENT), 'device'];
    const positions = names.map((name) => header.indexOf(name));
    expect(positions.every((position) => position >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(lifelineColumns(diagram)).toHaveLength(5);
  });

  it('draws one numbered arrow per delivery, each with its state change and duration', () => {
    for (let number = 1; number <= TRACE.length; number += 1) expect(diagram.match(new RegExp(`\\[${number}\\] `, 'g'))).toHaveLength(1);
    expect(arrowRow(diagram, 'CreateBooking').arrow).toContain('[1] booking: NEW → CONFIRMED · 120.6 ms');
    expect(arrowRow(diagram, 'Authorize').arrow).toContain('[3] payment: NEW → AUTHORIZED · 20.0 ms');
    expect(arrowRow(diagram, 'VehicleWasUnlocked').arrow).toContain('[7] booking: ACTIVE · 20 µs');
  });

  it('points each arrow from its sender to its receiver, exactly between their lifelines', () => {
    const [http, bookingColumn, vehicleColumn] = lifelineColumns(diagram);
    const create = arrowRow(diagram, 'CreateBooking').arrow;
    expect(create.slice(http!, bookingColumn! + 1)).toBe(`|${'-'.repeat(bookingColumn! - http! - 2)}>|`);
    const reserve = arrowRow(diagram, 'ReserveVehicle').arrow;
    expect(reserve.slice(bookingColumn!, vehicleColumn! + 1)).toBe(`|${'-'.repeat(vehicleColumn! - bookingColumn! - 2)}>|`);
  });

  it('answers asks with a reply arrow carrying the outcome, after the children the asker waited for', () => {
    const [http, bookingColumn] = lifelineColumns(diagram);
    const confirmed = arrowRow(diagram, '{ CONFIRMED }');
    expect(confirmed.arrow.slice(http!, bookingColumn! + 1)).toBe(`|<${'-'.repeat(bookingColumn! - http! - 2)}|`);
    const order = ['CreateBooking', 'ReserveVehicle', 'Authorize', '{ CONFIRMED }', 'UnlockBooking'].map((label) => diagram.indexOf(label));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('infers the MQTT command from the vehicle state and shows the device answering it', () => {
    const device = lifelineColumns(diagram)[4]!;
    const vehicleColumn = lifelineColumns(diagram)[2]!;
    const unlock = arrowRow(diagram, 'MQTT UNLOCK ');
    expect(unlock.arrow.slice(Math.min(vehicleColumn, device), Math.max(vehicleColumn, device) + 1)).toMatch(/^\|-+>\|$|^\|<-+\|$/);
    const order = ['UnlockVehicle', 'MQTT UNLOCK ', 'MQTT UNLOCKED', 'VehicleWasUnlocked'].map((label) => diagram.indexOf(label));
    expect(order.every((position) => position >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(arrowRow(diagram, 'MQTT UNLOCKED').arrow).toContain('[6] vehicle: UNLOCKING → IN_USE · 34 µs');
  });

  it('marks a rejected command on its arrow and in its reply', () => {
    expect(arrowRow(diagram, 'ReserveVehicle', 1).arrow).toContain('[8] vehicle: IN_USE · ✗ VehicleUnavailable · 300 µs');
    expect(diagram).toContain('{ ✗ VehicleUnavailable }');
  });

  it('draws a message an actor sends itself as a loop', () => {
    const { labelRow, arrow } = arrowRow(diagram, 'CommandDeadline');
    const vehicleColumn = lifelineColumns(diagram)[2]!;
    expect(labelRow.slice(vehicleColumn)).toMatch(/^\|--\. CommandDeadline/);
    expect(arrow.slice(vehicleColumn)).toMatch(/^\|<-'/);
  });

  it('never lets a label run over the lifeline it points to', () => {
    const columns = lifelineColumns(diagram);
    const rows = lines(diagram);
    for (let index = 2; index < rows.length - 1; index += 1) {
      const arrow = rows[index + 1]!;
      if (!/[<>]/.test(arrow) || arrow.includes("<-'")) continue;
      const ends = columns.filter((column) => arrow[column] === '|' && (arrow[column - 1] === '>' || arrow[column + 1] === '<' || arrow[column + 1] === '-' || arrow[column - 1] === '-'));
      const right = Math.max(...ends);
      expect(rows[index]![right], `label row above ${arrow}`).toBe('|');
    }
  });

  it('lists the full names of shortened actors and renders an empty trace', () => {
    expect(diagram).toContain(`${shortName(BOOKING)}`);
    expect(diagram).toMatch(new RegExp(`= ${BOOKING}$`, 'm'));
    expect(renderSequenceDiagram([])).toBe('(no steps recorded)');
  });

  it('leaves reply arrows out on request', () => {
    expect(renderSequenceDiagram(TRACE, { replies: false })).not.toContain('{ CONFIRMED }');
  });
});

describe('focusOnBooking', () => {
  const OTHER = 'booking/bk_other';
  const foreign = [
    step({
      id: 20,
      traceId: 'c'.repeat(32),
      spanId: 'other-replied',
      parentSpanId: 'activation',
      fromActor: VEHICLE,
      toActor: VEHICLE,
      messageType: 'DeviceReplied',
      startedAt: T + 9000,
      stateBefore: { phase: 'UNLOCKING', bookingId: 'bk_other' },
      stateAfter: { phase: 'IN_USE', bookingId: 'bk_other' },
    }),
    step({ id: 21, traceId: 'c'.repeat(32), spanId: 'other-unlocked', parentSpanId: 'other-replied', fromActor: VEHICLE, toActor: OTHER, messageType: 'VehicleWasUnlocked', startedAt: T + 9001 }),
  ];
  const activation = step({
    id: 0,
    traceId: 'c'.repeat(32),
    spanId: 'activation',
    fromActor: 'http',
    toActor: VEHICLE,
    messageType: 'RegisterVehicle',
    startedAt: T - 1000,
    stateBefore: { phase: 'UNREGISTERED', bookingId: null },
    stateAfter: { phase: 'AVAILABLE', bookingId: null },
  });
  const withVehicleSteps = TRACE.map((s) => (s.toActor === VEHICLE && s.stateBefore ? { ...s, stateBefore: { ...(s.stateBefore as object), bookingId: 'bk_0123456789abcdef01234567' } } : s));

  it("drops other bookings' steps that share a trace, and keeps the causes of this booking's steps", () => {
    const focused = focusOnBooking([activation, ...withVehicleSteps, ...foreign], 'bk_0123456789abcdef01234567');
    const ids = focused.map((s) => s.id);
    expect(ids).not.toContain(20);
    expect(ids).not.toContain(21);
    // The vehicle's registration activated the actor whose trace carries the device's answer.
    expect(ids).toContain(0);
    expect(ids).toEqual(expect.arrayContaining([1, 2, 3, 4, 5, 6, 7]));
  });
});

describe('state changes', () => {
  it('summarises the headline field, or what else changed', () => {
    expect(describeStateChange(booking('CONFIRMED'), booking('ACTIVE'))).toBe('CONFIRMED → ACTIVE');
    expect(describeStateChange(vehicle('RESERVED'), vehicle('UNLOCKING', command))).toBe('RESERVED → UNLOCKING');
    expect(describeStateChange(booking('ACTIVE'), booking('ACTIVE', { unlockedAt: 5 }))).toBe('ACTIVE (unlockedAt)');
    expect(describeStateChange(booking('ACTIVE'), booking('ACTIVE'))).toBe('ACTIVE');
    expect(describeStateChange(undefined, undefined)).toBe('');
  });

  it('lists changed leaves with their paths', () => {
    expect(stateChanges(vehicle('UNLOCKING', command), vehicle('UNLOCKING', { ...command, commandId: 'cmd-2' }))).toEqual([
      { path: 'inFlight.commandId', before: 'cmd-1', after: 'cmd-2' },
    ]);
    expect(stateChanges({ a: 1 }, { a: 1 })).toEqual([]);
  });

  it('formats outcomes and durations compactly', () => {
    expect(outcomeLabel({ ok: true, value: { status: 'COMPLETED' } })).toBe('COMPLETED');
    expect(outcomeLabel({ ok: true, value: null })).toBe('ok');
    expect(outcomeLabel({ ok: false, rejection: { type: 'UnlockTimedOut' } })).toBe('✗ UnlockTimedOut');
    expect(outcomeLabel({ error: 'journal closed' })).toBe('✗ error: journal closed');
    expect([formatDuration(34), formatDuration(120_600), formatDuration(2_500_000)]).toEqual(['34 µs', '120.6 ms', '2.50 s']);
  });
});

describe('renderStepDetail', () => {
  it('shows who sent what, the field-level change, the full payload and both states', () => {
    const detail = renderStepDetail(TRACE[5]!, 4, 9);
    expect(detail).toContain('step 4/9: UnlockBooking');
    expect(detail).toContain(`http → ${BOOKING}`);
    expect(detail).toContain('state: CONFIRMED → ACTIVE');
    expect(detail).toContain(`unlockedAt: null → ${T + 1030}`);
    const before = detail.indexOf('state before:');
    const after = detail.indexOf('state after:');
    expect(before).toBeGreaterThan(0);
    expect(detail.slice(before, after)).toContain('"status": "CONFIRMED"');
    expect(detail.slice(after)).toContain('"status": "ACTIVE"');
    expect(detail).toContain('"type": "UnlockBooking"');
  });

  it('says when a step had no synchronous answer', () => {
    expect(renderStepDetail(TRACE[3]!, 5, 9)).toContain('outcome: (none: told, or answered later)');
  });
});
