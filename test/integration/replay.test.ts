import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BookingState } from '../../actors/booking/decider.js';
import { toBookingRecord } from '../../actors/booking/record.js';
import { rootContext } from '../../runtime/ground/trace-context.js';
import { shardOfVehicle } from '../../runtime/kernel/placement.js';
import { replayFromFleetDb } from '../../server/replay-source.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Time travel (npm run replay): a real fleet of two shards and a device answering over MQTT; after
 * book → unlock → end, the state rebuilt from the journal file equals what the live actors hold.
 */

const SHARDS = 2;
const REPLAY_SCRIPT = fileURLToPath(new URL('../../scripts/replay.ts', import.meta.url));
const run = promisify(execFile);

let t: TestFleet;
let device: VirtualVehicle | undefined;
// On shard 1, so that placement (not "everything is on shard 0") is what finds the file.
const vehicleId = Array.from({ length: 50 }, (_, index) => `replay-${index}`).find((id) => shardOfVehicle(id, SHARDS) === 1)!;
let bookingId: string;

beforeAll(async () => {
  t = await startTestFleet({ FLEET_SHARDS: String(SHARDS) });
  expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
  device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: 4, credentials: t.credentials(vehicleId) });
  await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}` })).json().online === true, { what: `${vehicleId} online` });
  const booked = await t.book('alice', vehicleId);
  expect(booked.statusCode, booked.body).toBe(201);
  bookingId = booked.json<{ id: string }>().id;
  expect((await t.request({ method: 'POST', url: '/unlock', body: { bookingId } })).statusCode).toBe(200);
  const ended = await t.request({ method: 'POST', url: `/bookings/${bookingId}/end` });
  expect(ended.statusCode, ended.body).toBe(200);
}, 30_000);

afterAll(async () => {
  await device?.stop();
  await t?.close();
});

/** What the live actor holds now, asked through its shard's directory. */
async function liveState(kind: 'vehicle' | 'booking' | 'payment', id: string): Promise<unknown> {
  const shard = t.fleet.shards.local(1)!;
  const message = kind === 'vehicle' ? { type: 'GetVehicle' } : kind === 'payment' ? { type: 'GetAuthorization' } : { type: 'GetBooking', caller: { id: 'ops', role: 'operator' } };
  const answer = await shard.directory.ask<unknown>({ kind, id }, message, 'test', rootContext());
  // The booking answers an Outcome of its state, shown here as its record (as replay shows it: the record
  // holds the whole state, booking-lifecycle.test.ts); the vehicle and the payment answer their record.
  return kind === 'booking' ? toBookingRecord((answer as { value: BookingState }).value) : answer;
}

describe('replay of one actor from its shard journal', () => {
  it('rebuilds the vehicle, the booking and the payment exactly as the live actors hold them', async () => {
    for (const [kind, id] of [['vehicle', vehicleId], ['booking', bookingId], ['payment', `auth_${bookingId}`]] as const) {
      const { source, replay } = replayFromFleetDb(t.dbFile, kind, id);
      expect(source.shard).toBe(1);
      expect(replay.steps.length).toBeGreaterThan(1);
      expect(replay.state, `${kind} ${id}`).toEqual(await liveState(kind, id));
    }
  });

  it('stops at --until: the vehicle just after its UNLOCK went out', () => {
    const { replay: whole } = replayFromFleetDb(t.dbFile, 'vehicle', vehicleId);
    expect(whole.steps.map((step) => step.type)).toEqual(['VehicleRegistered', 'VehicleReserved', 'UnlockRequested', 'VehicleUnlocked', 'LockRequested', 'VehicleLocked']);
    const requested = whole.steps.find((step) => step.type === 'UnlockRequested')!;
    const { replay } = replayFromFleetDb(t.dbFile, 'vehicle', vehicleId, requested.seq);
    expect(replay.steps.at(-1)!.seq).toBe(requested.seq);
    expect(replay.state).toMatchObject({ status: 'RESERVED', bookingId, inFlight: { command: 'UNLOCK', bookingId } });
    expect(requested.changes.map((change) => change.path).sort()).toEqual(['inFlight', 'recentCommands']);
  });

  it('npm run replay prints every event with the fields it changed, found by FLEET_DB alone', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', REPLAY_SCRIPT, 'booking', bookingId, '--until', '4'], {
      env: { ...process.env, FLEET_DB: t.dbFile, LOG_LEVEL: 'silent' },
    });
    expect(stdout).toContain(`(shard 1 of 2: ${t.fleet.shardFiles[1]})`);
    expect(stdout).toContain(`booking/${bookingId}: 4 events`);
    expect(stdout).toMatch(/#1 {2}\+0 ms {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}BookingRequested {2}\{"bookingId":/);
    // Times inside the events are readable too, not epoch milliseconds.
    expect(stdout).not.toMatch(/"(at|createdAt|expiresAt)":\d{13}/);
    expect(stdout).toContain('    status: "NEW" → "REQUESTED"');
    expect(stdout).not.toContain('#5 ');
  }, 20_000);
});
