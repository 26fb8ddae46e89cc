import { describe, expect, it } from 'vitest';
import { evolve, type VehicleEvent } from '../../actors/vehicle/decider.js';
import { describeVehicle, fromVehicleRecord, toVehicleRecord, type VehicleRecord } from '../../actors/vehicle/record.js';
import { initialVehicleState, type VehicleState } from '../../actors/vehicle/state.js';

/**
 * The vehicle's flat record: what snapshots store and traces show. Snapshots written before the state
 * became a union are such records; they must recover into the state the journal would fold to.
 */

const V = 'v-1';
const T0 = Date.UTC(2025, 0, 2, 8, 0, 0);
const location = { lat: 52.52, lon: 13.405 };
const profile = { vehicleType: 'car', model: 'Zoe', registeredAt: T0, location } as const;
const unlock = { commandId: 'u-1', command: 'UNLOCK', bookingId: 'b-1', issuedAt: T0 + 3_000, expiresAt: T0 + 8_000, confirmedAt: null } as const;
const lock = { commandId: 'l-1', command: 'LOCK', bookingId: 'b-1', issuedAt: T0 + 60_000, expiresAt: T0 + 65_000, confirmedAt: null } as const;

const events: VehicleEvent[] = [
  { type: 'VehicleRegistered', vehicleId: V, vehicleType: 'car', model: 'Zoe', location, at: T0 },
  { type: 'VehicleReserved', vehicleId: V, bookingId: 'b-1', at: T0 + 1_000 },
  { type: 'UnlockRequested', vehicleId: V, bookingId: 'b-1', commandId: 'u-1', at: T0 + 3_000, expiresAt: T0 + 8_000 },
  { type: 'VehicleUnlocked', vehicleId: V, bookingId: 'b-1', commandId: 'u-1', at: T0 + 4_000 },
  { type: 'LockRequested', vehicleId: V, bookingId: 'b-1', commandId: 'l-1', at: T0 + 60_000, expiresAt: T0 + 65_000 },
  { type: 'VehicleLocked', vehicleId: V, bookingId: 'b-1', commandId: 'l-1', at: T0 + 61_000 },
];
const after = (count: number): VehicleState => events.slice(0, count).reduce(evolve, initialVehicleState);

/** The records the state flattens to after each event: the state's shape before the union, as the old `evolve` built it. */
const records: [string, VehicleRecord][] = [
  ['unregistered', { profile: null, status: 'AVAILABLE', bookingId: null, inFlight: null, recentCommands: [], unlockedAt: null, lockedAt: null }],
  ['registered', { profile, status: 'AVAILABLE', bookingId: null, inFlight: null, recentCommands: [], unlockedAt: null, lockedAt: null }],
  ['reserved', { profile, status: 'RESERVED', bookingId: 'b-1', inFlight: null, recentCommands: [], unlockedAt: null, lockedAt: null }],
  ['unlocking', { profile, status: 'RESERVED', bookingId: 'b-1', inFlight: unlock, recentCommands: [unlock], unlockedAt: null, lockedAt: null }],
  ['in use', { profile, status: 'IN_USE', bookingId: 'b-1', inFlight: null, recentCommands: [{ ...unlock, confirmedAt: T0 + 4_000 }], unlockedAt: T0 + 4_000, lockedAt: null }],
  ['locking', { profile, status: 'IN_USE', bookingId: 'b-1', inFlight: lock, recentCommands: [{ ...unlock, confirmedAt: T0 + 4_000 }, lock], unlockedAt: T0 + 4_000, lockedAt: null }],
  [
    'locked',
    { profile, status: 'AVAILABLE', bookingId: null, inFlight: null, recentCommands: [{ ...unlock, confirmedAt: T0 + 4_000 }, { ...lock, confirmedAt: T0 + 61_000 }], unlockedAt: T0 + 4_000, lockedAt: T0 + 61_000 },
  ],
];

describe('vehicle record', () => {
  it.each(records.map(([name, record], count) => [name, count, record] as const))('%s: the state flattens to the record the state was before the union, and reads back from it', (_name, count, record) => {
    expect(toVehicleRecord(after(count))).toEqual(record);
    expect(fromVehicleRecord(record)).toEqual(after(count));
  });

  it('a trace shows the phase first, then the record, field by field in the order traces always had', () => {
    const shown = describeVehicle(after(5));
    expect(Object.keys(shown)).toEqual(['phase', 'profile', 'status', 'bookingId', 'inFlight', 'recentCommands', 'unlockedAt', 'lockedAt']);
    expect(shown).toEqual({ phase: 'LOCKING', ...records[5]![1] });
    expect(describeVehicle(initialVehicleState).phase).toBe('UNREGISTERED');
  });

  it('refuses a record that no state flattens to: a corrupt snapshot fails its recovery instead of becoming a wrong state', () => {
    const reserved = records[2]![1];
    expect(() => fromVehicleRecord({ ...reserved, bookingId: null })).toThrow(/no vehicle state is the record/);
    expect(() => fromVehicleRecord({ ...records[4]![1], unlockedAt: null })).toThrow(/no vehicle state is the record/);
    expect(() => fromVehicleRecord({ ...reserved, status: 'MAINTENANCE' } as unknown as VehicleRecord)).toThrow(/no vehicle state is the record/);
  });
});
