import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A newcomer who books demo-0001 and forgets `npm run sim -- vehicle demo-0001`: the unlock must say
 * at once that no device was ever there, and how to bring one up, instead of waiting for the unlock
 * timeout and answering "retry". The unlock timeout here (20 s) is longer than these tests may take, so
 * an answer that waited for it fails them; 504 stays for a vehicle that was online and kept silent.
 */
const UNLOCK_TIMEOUT_MS = 20_000;

let t: TestFleet;
const devices: VirtualVehicle[] = [];

beforeAll(async () => {
  t = await startTestFleet({ FLEET_SHARDS: '2', UNLOCK_TIMEOUT_MS: String(UNLOCK_TIMEOUT_MS) });
}, 30_000);
afterAll(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await t?.close();
});

async function bookAndUnlock(vehicleId: string): Promise<{ status: number; problem: Record<string, unknown> }> {
  const booked = await t.book(`customer-${vehicleId}`, vehicleId);
  expect(booked.statusCode, booked.body).toBe(201);
  const unlocked = await t.request({ method: 'POST', url: '/unlock', as: `customer-${vehicleId}`, body: { bookingId: booked.json<{ id: string }>().id } });
  return { status: unlocked.statusCode, problem: unlocked.json() };
}

async function online(vehicleId: string, mode: 'answer' | 'silent' = 'answer'): Promise<VirtualVehicle> {
  const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: 4, credentials: t.credentials(vehicleId), behaviour: { mode } });
  devices.push(device);
  await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().online === true, { what: `${vehicleId} online` });
  return device;
}

describe('POST /unlock and the vehicle\'s presence', () => {
  it('never seen online: still bookable (online null), and the unlock answers at once that no device ever connected, naming npm run sim', async () => {
    expect((await t.registerVehicle('never-seen-1')).statusCode).toBe(201);
    expect((await t.request({ method: 'GET', url: '/vehicles/never-seen-1' })).json().online).toBeNull();
    const { status, problem } = await bookAndUnlock('never-seen-1');
    expect(status).toBe(503);
    expect(problem).toMatchObject({ type: 'https://fleetactors.dev/problems/vehicle-offline', vehicleId: 'never-seen-1', presence: 'never-seen' });
    expect(problem.detail).toContain('never been online');
    expect(problem.detail).toContain('npm run sim -- vehicle never-seen-1');
  }, 15_000);

  it('known offline (its device went away after the booking): answers at once, saying so', async () => {
    expect((await t.registerVehicle('gone-1')).statusCode).toBe(201);
    const device = await online('gone-1');
    const booked = await t.book('customer-gone-1', 'gone-1');
    expect(booked.statusCode, booked.body).toBe(201);
    await device.goOffline();
    await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/gone-1', as: 'ops', role: 'operator' })).json().online === false, { what: 'gone-1 offline' });
    const unlocked = await t.request({ method: 'POST', url: '/unlock', as: 'customer-gone-1', body: { bookingId: booked.json<{ id: string }>().id } });
    expect(unlocked.statusCode).toBe(503);
    expect(unlocked.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/vehicle-offline', presence: 'offline' });
    expect(unlocked.json().detail).toContain('is offline');
  }, 15_000);

  it('online, then silent: 504 unlock-timed-out, as before', async () => {
    expect((await t.registerVehicle('silent-1')).statusCode).toBe(201);
    await online('silent-1', 'silent');
    const { status, problem } = await bookAndUnlock('silent-1');
    expect(status).toBe(504);
    expect(problem.type).toBe('https://fleetactors.dev/problems/unlock-timed-out');
  }, 60_000);
});
