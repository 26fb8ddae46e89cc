import { describe, expect, it } from 'vitest';
import { evolve, type VehicleEvent } from '../../actors/vehicle/decider.js';
import { toVehicleRecord } from '../../actors/vehicle/record.js';
import { initialVehicleState } from '../../actors/vehicle/state.js';
import type { ActorJournalEntry } from '../../runtime/kernel/journal.js';
import { actorOfName, renderReplay, replayActor, replayCommand, seqOfSpan, shardOfActor } from '../../traces/replay.js';

/** The pure half of `npm run replay`: journal entries folded through the actor's own evolve. */

const T = Date.UTC(2026, 11, 4, 18, 0, 0);
const B = 'bk_s1_0123456789abcdef01234567';
const events: VehicleEvent[] = [
  { type: 'VehicleRegistered', vehicleId: 'v-1', vehicleType: 'scooter', model: null, location: { lat: 52.52, lon: 13.405 }, at: T },
  { type: 'VehicleReserved', vehicleId: 'v-1', bookingId: B, at: T + 1000 },
  { type: 'UnlockRequested', vehicleId: 'v-1', bookingId: B, commandId: 'c1', at: T + 2000, expiresAt: T + 7000 },
  { type: 'VehicleUnlocked', vehicleId: 'v-1', bookingId: B, commandId: 'c1', at: T + 2100 },
];
const entries: ActorJournalEntry[] = events.map((data, index) => ({
  sequenceNumber: index + 1,
  eventType: data.type,
  data,
  traceId: 't'.repeat(32),
  spanId: index >= 2 ? 'unlock-span' : `span-${index}`,
  createdAt: data.at,
}));

describe('replayActor', () => {
  it('ends in the state the actor recovers to: the same evolve over the same events, shown as its record', () => {
    const replay = replayActor('vehicle', 'v-1', entries);
    expect(replay.state).toEqual(toVehicleRecord(events.reduce(evolve, initialVehicleState)));
    expect(replay.steps.map((step) => [step.seq, step.type])).toEqual([
      [1, 'VehicleRegistered'],
      [2, 'VehicleReserved'],
      [3, 'UnlockRequested'],
      [4, 'VehicleUnlocked'],
    ]);
  });

  it('--until stops after that event; each step lists the fields it changed', () => {
    const replay = replayActor('vehicle', 'v-1', entries, 2);
    expect(replay.steps).toHaveLength(2);
    expect(replay.state).toMatchObject({ status: 'RESERVED', bookingId: B, inFlight: null });
    expect(replay.steps[1]!.changes).toEqual([
      { path: 'status', before: 'AVAILABLE', after: 'RESERVED' },
      { path: 'bookingId', before: null, after: B },
    ]);
  });

  it('renders changed fields by default and the whole state with --full', () => {
    const replay = replayActor('vehicle', 'v-1', entries, 2);
    expect(renderReplay(replay)).toBe(
      [
        'vehicle/v-1: 2 events',
        '',
        '#1  +0 ms  2026-12-04T18:00:00.000Z  VehicleRegistered  {"vehicleId":"v-1","vehicleType":"scooter","model":null,"location":{"lat":52.52,"lon":13.405},"at":"2026-12-04T18:00:00.000Z"}',
        '    profile: null → {"vehicleType":"scooter","model":null,"registeredAt":"2026-12-04T18:00:00.000Z","location":{"lat":52.52,"lon":13.405}}',
        '',
        `#2  +1.00 s  2026-12-04T18:00:01.000Z  VehicleReserved  {"vehicleId":"v-1","bookingId":"${B}","at":"2026-12-04T18:00:01.000Z"}`,
        '    status: "AVAILABLE" → "RESERVED"',
        `    bookingId: null → "${B}"`,
      ].join('\n'),
    );
    const full = renderReplay(replay, { full: true });
    expect(full).toContain('    {\n      "profile": {');
    expect(full).toContain('      "recentCommands": []');
    expect(full).toContain('"registeredAt": "2026-12-04T18:00:00.000Z"');
    expect(full).not.toMatch(/17964072\d{5}/);
  });
});

it('says how long after the first event, readably', async () => {
  const { formatSince } = await import('../../traces/replay.js');
  expect([0, 12.4, 999, 1000, 12_345, 125_000, 3_725_000].map(formatSince)).toEqual(['+0 ms', '+12 ms', '+999 ms', '+1.00 s', '+12.3 s', '+2 min 05 s', '+1 h 02 min']);
});

describe('an Idempotency-Key claim replays like any actor', () => {
  it('folds its KeyClaimed and AnswerStored into the claim the key holds, and names its shard', async () => {
    const { claimIdFor } = await import('../../actors/idempotency/actor.js');
    const { shardOfClaim } = await import('../../runtime/kernel/placement.js');
    const id = claimIdFor('alice', 'key-1');
    const claimEntries: ActorJournalEntry[] = [
      { sequenceNumber: 1, eventType: 'KeyClaimed', data: { type: 'KeyClaimed', requestHash: 'h1', at: T }, traceId: null, spanId: null, createdAt: T },
      { sequenceNumber: 2, eventType: 'AnswerStored', data: { type: 'AnswerStored', requestHash: 'h1', statusCode: 201, body: { id: B }, at: T + 40 }, traceId: null, spanId: null, createdAt: T + 40 },
    ];
    const replay = replayActor('idempotency', id, claimEntries);
    expect(replay.state).toEqual({ status: 'ANSWERED', requestHash: 'h1', statusCode: 201, body: { id: B }, at: T + 40 });
    // A claim journalled before leases: no holder, its lease ended when it was made (never in use).
    expect(replayActor('idempotency', id, claimEntries, 1).state).toEqual({ status: 'CLAIMED', requestHash: 'h1', at: T, holder: '', leaseUntil: T });
    expect(actorOfName(`idempotency/${id}`)).toEqual({ kind: 'idempotency', id });
    expect(shardOfActor('idempotency', id, 3)).toBe(shardOfClaim(id, 3));
  });
});

describe('helpers a trace viewer links with', () => {
  it('finds the actor of a trace participant and the shard that holds it', () => {
    expect(actorOfName('vehicle/v-1')).toEqual({ kind: 'vehicle', id: 'v-1' });
    expect(actorOfName(`payment/auth_${B}`)).toEqual({ kind: 'payment', id: `auth_${B}` });
    expect(actorOfName('http')).toBeNull();
    expect(actorOfName('device/v-1')).toBeNull();
    expect(shardOfActor('booking', B, 3)).toBe(1);
    expect(shardOfActor('payment', `auth_${B}`, 3)).toBe(1);
    expect(shardOfActor('booking', B, 1)).toBeNull();
  });

  it('a step (span) → the sequence number after its last event → the replay command', () => {
    const { steps } = replayActor('vehicle', 'v-1', entries);
    expect(seqOfSpan(steps, 'unlock-span')).toBe(4);
    expect(seqOfSpan(steps, 'span-1')).toBe(2);
    expect(seqOfSpan(steps, 'no-such-span')).toBeNull();
    expect(replayCommand('vehicle', 'v-1', 4)).toBe('npm run replay -- vehicle v-1 --until 4');
    expect(replayCommand('booking', B)).toBe(`npm run replay -- booking ${B}`);
  });
});
