import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildViewerModel, journalQueryFor, selectSteps } from '../../api/viewer/model.js';
import type { TracedEvent } from '../../actors/contract/trace-views.js';
import { focusOnBooking, orderSteps, timelineArrows, type TraceStepView } from '../../traces/trace-diagram.js';

const T = 'a'.repeat(32);
const BOOKING = 'booking/bk_s0_1';
const VEHICLE = 'vehicle/v-1';

function step(spanId: string, parentSpanId: string | null, fromActor: string, toActor: string, messageType: string, startedAt: number, durationUs: number, extra: Partial<TraceStepView> = {}): TraceStepView {
  return { traceId: T, spanId, parentSpanId, fromActor, toActor, messageType, startedAt, durationUs, ...extra };
}

function event(key: string, sequenceNumber: number, eventType: string, spanId: string, topic: string | null = null): TracedEvent {
  return { position: sequenceNumber, key, sequenceNumber, eventType, data: { type: eventType }, topic, traceId: T, spanId, createdAt: 0 };
}

/** An unlock: http asks the booking, the booking asks the vehicle, which sends UNLOCK; later the device answers over MQTT. */
const steps: TraceStepView[] = [
  step('s1', null, 'http', BOOKING, 'UnlockBooking', 1000, 5000, { stateBefore: { status: 'CONFIRMED' }, stateAfter: { status: 'CONFIRMED' }, outcome: { ok: true, value: { status: 'CONFIRMED' } } }),
  step('s2', 's1', BOOKING, VEHICLE, 'UnlockVehicle', 1002, 1000, {
    stateBefore: { phase: 'RESERVED', bookingId: 'bk_s0_1', inFlight: null },
    stateAfter: { phase: 'UNLOCKING', bookingId: 'bk_s0_1', inFlight: { commandId: 'c1', command: 'UNLOCK' } },
    outcome: { ok: true },
  }),
  step('s3', 's2', 'device/v-1', VEHICLE, 'DeviceReplied', 1100, 800, { payload: { reply: 'UNLOCKED' }, stateBefore: { phase: 'UNLOCKING', bookingId: 'bk_s0_1' }, stateAfter: { phase: 'IN_USE', bookingId: 'bk_s0_1' } }),
];

describe('trace viewer model', () => {
  const selection = selectSteps('bk_s0_1', steps);
  const journal = { events: [event(VEHICLE, 7, 'VehicleUnlocked', 's3', 'vehicle.unlocked'), event(VEHICLE, 6, 'VehicleUnlockRequested', 's2')], seqAt: [3, 9, 9] };
  const model = buildViewerModel('bk_s0_1', selection, journal, { kafka: true });

  it('draws asks, replies, the MQTT hops and the Kafka hop in the order they happened', () => {
    expect(model.arrows.map((arrow) => `${arrow.kind} ${arrow.from} → ${arrow.to}: ${arrow.label}`)).toEqual([
      `send http → ${BOOKING}: UnlockBooking`,
      `send ${BOOKING} → ${VEHICLE}: UnlockVehicle`,
      `mqtt ${VEHICLE} → device/v-1: MQTT UNLOCK`,
      `reply ${VEHICLE} → ${BOOKING}: ok`,
      `reply ${BOOKING} → http: CONFIRMED`,
      `mqtt device/v-1 → ${VEHICLE}: MQTT UNLOCKED`,
      `kafka ${VEHICLE} → kafka: Kafka vehicle.unlocked`,
    ]);
    expect(model.participants.map((participant) => participant.name)).toEqual(['http', BOOKING, VEHICLE, 'device/v-1', 'kafka']);
    expect(model.publicEvents).toBe('kafka');
  });

  it('without Kafka configured: no Kafka lane and no Kafka arrow (the events stay with their step)', () => {
    const local = buildViewerModel('bk_s0_1', selection, journal);
    expect(local.publicEvents).toBe('journal');
    expect(local.participants.map((participant) => participant.name)).toEqual(['http', BOOKING, VEHICLE, 'device/v-1']);
    expect(local.arrows.some((arrow) => arrow.kind === 'kafka')).toBe(false);
    expect(local.steps[2]!.events.map((e) => e.topic)).toEqual(['vehicle.unlocked']);
  });

  it('gives each step its changed fields, its own journal events, and the replay command up to its last event', () => {
    const [ask, unlock, reply] = model.steps;
    expect(unlock!.changes.map((change) => change.path)).toEqual(['phase', 'inFlight']);
    expect(unlock!.events.map((e) => e.sequenceNumber)).toEqual([6]);
    expect(unlock!.replay?.command).toBe('npm run replay -- vehicle v-1 --until 6');
    expect(reply!.viaMqtt).toBe(true);
    expect(reply!.replay?.until).toBe(7);
    // Persisted nothing: the journal's sequence number when it ended.
    expect(ask!.events).toEqual([]);
    expect(ask!.replay?.command).toBe('npm run replay -- booking bk_s0_1 --until 3');
    expect(model.steps.map((s) => s.offsetMs)).toEqual([0, 2, 100]);
  });

  it('caps the time-based sequence number below the next event of the same actor (millisecond clock)', () => {
    const early = buildViewerModel('bk_s0_1', selection, { events: [event(VEHICLE, 6, 'VehicleUnlockRequested', 's3')], seqAt: [3, 6, 6] });
    expect(early.steps[1]!.replay?.until).toBe(5);
  });

  it('asks the journal for the traces, the receiving actors, and one point per actor step', () => {
    expect(journalQueryFor(selection.steps)).toEqual({
      traceIds: [T],
      keys: [BOOKING, VEHICLE],
      points: [
        { key: BOOKING, at: 1005 },
        { key: VEHICLE, at: 1003 },
        { key: VEHICLE, at: 1101 },
      ],
    });
  });
});

describe('the viewer draws the order the CLI draws, on a real booking (test/golden/booking-trace.json)', () => {
  const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../golden/booking-trace.json', import.meta.url)), 'utf8')) as { bookingId: string; steps: TraceStepView[] };
  const model = buildViewerModel(fixture.bookingId, selectSteps(fixture.bookingId, fixture.steps));
  const labels = model.arrows.map((arrow) => `${arrow.kind} ${arrow.label}`);
  const at = (label: string) => {
    const index = labels.indexOf(label);
    expect(index, label).toBeGreaterThanOrEqual(0);
    return index;
  };

  it("a step's reply comes after everything that happened before it", () => {
    // UnlockBooking answers ok only once the device said UNLOCKED.
    const unlockReply = model.arrows.findIndex((arrow) => arrow.kind === 'reply' && model.steps[arrow.step]!.messageType === 'UnlockBooking');
    expect(unlockReply).toBeGreaterThan(at('mqtt MQTT UNLOCKED'));
    // COMPLETED after the lock and the capture; the capture starts after the lock.
    expect(at('reply COMPLETED')).toBeGreaterThan(at('mqtt MQTT LOCKED'));
    expect(at('reply COMPLETED')).toBeGreaterThan(at('send Capture'));
    expect(at('send Capture')).toBeGreaterThan(at('mqtt MQTT LOCKED'));
  });

  it('is the CLI diagram\'s sequence of arrows, label for label', () => {
    const cli = timelineArrows(orderSteps(focusOnBooking(fixture.steps, fixture.bookingId)), { deviceOf: (vehicle) => `device/${vehicle.slice('vehicle/'.length)}` });
    expect(model.arrows.map((arrow) => [arrow.from, arrow.to, arrow.step])).toEqual(cli.map((arrow) => [arrow.from, arrow.to, arrow.step]));
  });
});
