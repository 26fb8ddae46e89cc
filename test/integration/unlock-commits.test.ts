import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { markJournal } from '../helpers/journal-mark.js';
import { waitFor } from '../helpers/wait.js';

/**
 * How many sequential durable steps (journal commits) one unlock waits for, counted from the journal
 * engine's commits and read back from the journal's rows (issue 18: "take out what is not the device's
 * own time"). One unlock of a confirmed booking on an otherwise idle shard, a virtual device answering
 * over MQTT (embedded broker). Before: 3 (UnlockRequested; VehicleUnlocked; BookingActivated). Now 2:
 * the command is durable before it is sent, and the device's answer is recorded by the vehicle and the
 * booking in one commit (docs/architecture.md, "Crash points of an unlock").
 */

const VEHICLE = 'unlock-commits-v1';
let t: TestFleet;
let device: VirtualVehicle;

beforeAll(async () => {
  t = await startTestFleet();
  expect((await t.registerVehicle(VEHICLE, 'car')).statusCode).toBe(201);
  device = await VirtualVehicle.start({ id: VEHICLE, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(VEHICLE) });
  await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${VEHICLE}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, { what: `${VEHICLE} online` });
});
afterAll(async () => {
  await device?.stop();
  await t?.close();
});

describe('the commits of one unlock', () => {
  it('is 2 sequential commits: the command before it is sent, then the device\'s answer for the vehicle and the booking together', async () => {
    const booked = await t.book('alice', VEHICLE);
    expect(booked.statusCode, booked.body).toBe(201);
    const bookingId = booked.json<{ id: string }>().id;
    const since = await markJournal(t);

    const unlocked = await t.request({ method: 'POST', url: `/bookings/${bookingId}/unlock` });
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    // The vehicle's tell that it opened (VehicleWasUnlocked) finds the booking ACTIVE already: nothing to persist.
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${VEHICLE}`, as: 'ops', role: 'operator' })).json<{ status: string }>().status === 'IN_USE', { what: 'the vehicle in use' });
    const { commits, rows } = await since();

    expect(rows.map((row) => `${row.persistence_key.split('/')[0]}: ${row.event_type}`)).toEqual(['vehicle: UnlockRequested', 'vehicle: VehicleUnlocked', 'booking: BookingActivated']);
    // The device's answer, recorded by both actors, is one commit: adjacent rows, nothing between.
    expect((rows[2]?.position ?? 0) - (rows[1]?.position ?? 0)).toBe(1);
    expect(commits).toBe(2);
    expect((await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json<{ status: string }>().status).toBe('ACTIVE');
  });
});
