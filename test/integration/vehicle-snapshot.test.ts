import { afterEach, describe, expect, it, vi } from 'vitest';
import { VEHICLE, vehicleBehaviour, type DeviceLink } from '../../actors/vehicle/actor.js';
import type { VehicleEvent } from '../../actors/vehicle/decider.js';
import type { VehicleRecord } from '../../actors/vehicle/record.js';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { rootContext } from '../../runtime/ground/trace-context.js';
import { startActorSystem, type ActorSystem } from '../../runtime/kernel/actor-system.js';
import { ActorDirectory } from '../../runtime/kernel/directory.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A vehicle's snapshots on disk: the state is a union in memory, but a snapshot stores its flat record
 * (actors/vehicle/record.ts), the shape the state had before. A snapshot an older version wrote, with
 * a command still waiting for the device, must recover with that command pending; new snapshots keep
 * that shape.
 */

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const location = { lat: 52.52, lon: 13.405 };
const profile = { vehicleType: 'car', model: 'Zoe', registeredAt: T0, location } as const;
const unlock = { commandId: 'u-1', command: 'UNLOCK', bookingId: 'b-1', issuedAt: T0 + 2_000, expiresAt: T0 + 3_600_000, confirmedAt: null } as const;

describe('vehicle snapshots', () => {
  let temp: TempDbFile;
  let db: Db;
  let system: ActorSystem;
  let journal: SqliteJournalEngine;
  const unlocked = vi.fn();

  const device: DeviceLink = { send: () => Promise.resolve(), watch: () => {}, unwatch: () => {} };
  const start = (snapshotEvery: number) => {
    db = openDatabase(temp.file);
    journal = new SqliteJournalEngine(db);
    const logger = createLogger('silent');
    system = startActorSystem(journal, logger);
    const directory = new ActorDirectory({ system, logger, passivateAfterMs: 60_000, askTimeoutMs: 2_000, snapshotEvery });
    directory.register(
      VEHICLE,
      vehicleBehaviour({
        device,
        conditionsOf: () => ({ online: null, battery: null }),
        // A device plays the vehicle here (it answers, though it never reports presence).
        everSeen: () => true,
        notifyUnlocked: (_ctx, bookingId, at) => unlocked(bookingId, at),
        notifyLocked: () => {},
        unlockTimeoutMs: 5_000,
      }),
    );
    return directory;
  };
  const stop = async (directory: ActorDirectory) => {
    directory.stopAll();
    system.stop();
    await journal.close();
    db.close();
  };
  const persist = (id: string, events: VehicleEvent[]) =>
    Promise.all(events.map((data, index) => journal.persist({ data, sequenceNumber: index + 1, key: `${VEHICLE}/${id}`, tags: [], createdAt: data.at, isDeleted: false })));

  afterEach(() => {
    temp?.cleanup();
    unlocked.mockReset();
  });

  it('recovers a snapshot written before the state was a union, with its UNLOCK still waiting for the device', async () => {
    temp = tempDbFile();
    const directory = start(100);
    await persist('v-1', [
      { type: 'VehicleRegistered', vehicleId: 'v-1', vehicleType: 'car', model: 'Zoe', location, at: T0 },
      { type: 'VehicleReserved', vehicleId: 'v-1', bookingId: 'b-1', at: T0 + 1_000 },
      { type: 'UnlockRequested', vehicleId: 'v-1', bookingId: 'b-1', commandId: 'u-1', at: T0 + 2_000, expiresAt: T0 + 3_600_000 },
    ]);
    // Exactly what the old actor stored: its state record, nulls and all.
    const legacy: VehicleRecord = { profile, status: 'RESERVED', bookingId: 'b-1', inFlight: unlock, recentCommands: [unlock], unlockedAt: null, lockedAt: null };
    await journal.takeSnapshot({ key: `${VEHICLE}/v-1`, sequenceNumber: 3, data: legacy, createdAt: T0 + 2_000 });
    const eventsRead = vi.spyOn(journal, 'events');

    const address = { kind: VEHICLE, id: 'v-1' };
    expect(await directory.ask(address, { type: 'GetVehicle' }, 'test', rootContext())).toEqual(legacy);
    // Recovered from the snapshot: only the events after it were read.
    expect(eventsRead).toHaveBeenCalledWith(`${VEHICLE}/v-1`, 3);

    // The device's late answer to that UNLOCK opens the vehicle for its booking.
    directory.tell(address, { type: 'DeviceReplied', commandId: 'u-1', reply: 'UNLOCKED', reason: null, at: T0 + 4_000 }, 'device/v-1', rootContext());
    await waitFor(() => unlocked.mock.calls.length > 0, { what: 'the booking told of the unlock' });
    expect(unlocked).toHaveBeenCalledWith('b-1', T0 + 4_000);
    expect(await directory.ask(address, { type: 'GetVehicle' }, 'test', rootContext())).toMatchObject({ status: 'IN_USE', bookingId: 'b-1', inFlight: null, unlockedAt: T0 + 4_000 });
    await stop(directory);
  });

  it('writes snapshots as the flat record, and recovers from them', async () => {
    temp = tempDbFile();
    let directory = start(2);
    const address = { kind: VEHICLE, id: 'v-2' };
    const trace = rootContext();
    await directory.ask(address, { type: 'RegisterVehicle', vehicleType: 'car', model: 'Zoe', location }, 'test', trace);
    await directory.ask(address, { type: 'ReserveVehicle', bookingId: 'b-2' }, 'test', trace);
    await waitFor(() => journal.readSnapshot(`${VEHICLE}/v-2`) !== undefined, { what: 'a snapshot after two events' });
    const record = { profile: { ...profile, registeredAt: expect.any(Number) as number }, status: 'RESERVED', bookingId: 'b-2', inFlight: null, recentCommands: [], unlockedAt: null, lockedAt: null };
    expect(journal.readSnapshot(`${VEHICLE}/v-2`)).toMatchObject({ sequenceNumber: 2, data: record });
    await stop(directory);

    directory = start(2);
    expect(await directory.ask(address, { type: 'GetVehicle' }, 'test', trace)).toEqual(record);
    // Still the reserved vehicle it was: the holder's retried reserve is accepted, another booking is refused.
    expect(await directory.ask(address, { type: 'ReserveVehicle', bookingId: 'b-2' }, 'test', trace)).toEqual({ ok: true, value: { vehicleType: 'car' } });
    expect(await directory.ask(address, { type: 'ReserveVehicle', bookingId: 'b-3' }, 'test', trace)).toEqual({
      ok: false,
      rejection: { type: 'VehicleUnavailable', vehicleId: 'v-2', status: 'RESERVED' },
    });
    await stop(directory);
  });
});
