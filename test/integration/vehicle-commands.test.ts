import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualVehicle, type VehicleBehaviour } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * "Why did the car not open?": GET /vehicles/:id/commands on a real fleet of two shards, with devices
 * answering over MQTT (promptly, late, or with REJECTED), and the command counts in /metrics.
 */

let t: TestFleet;
const devices: VirtualVehicle[] = [];

beforeAll(async () => {
  // Inline shards talk over a MessageChannel: answers and figures are structured-cloned as across a worker.
  t = await startTestFleet({ FLEET_SHARDS: '2', UNLOCK_TIMEOUT_MS: '400' });
}, 30_000);
afterAll(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await t?.close();
});

/** A registered vehicle, its device online with `behaviour`, a CONFIRMED booking on it and one POST /unlock. */
async function unlockOnce(vehicleId: string, behaviour: Partial<VehicleBehaviour>): Promise<{ bookingId: string; status: number }> {
  expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
  devices.push(await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: 4, credentials: t.credentials(vehicleId), behaviour }));
  await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().online === true, { what: `${vehicleId} online` });
  const booked = await t.book(`customer-${vehicleId}`, vehicleId);
  expect(booked.statusCode, booked.body).toBe(201);
  const bookingId = booked.json<{ id: string }>().id;
  const unlocked = await t.request({ method: 'POST', url: '/unlock', as: `customer-${vehicleId}`, body: { bookingId } });
  return { bookingId, status: unlocked.statusCode };
}

const commandsOf = async (vehicleId: string) => {
  const response = await t.request({ method: 'GET', url: `/vehicles/${vehicleId}/commands`, as: 'ops', role: 'operator' });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<{ vehicleId: string; items: Array<Record<string, unknown>> }>().items;
};

describe('GET /vehicles/:id/commands', () => {
  it('an UNLOCK the device confirmed: SUCCEEDED, with the booking, the trace and the round trip', async () => {
    const { bookingId, status } = await unlockOnce('cmd-ok', {});
    expect(status).toBe(200);
    const [command, ...rest] = await commandsOf('cmd-ok');
    expect(rest).toEqual([]);
    expect(command).toMatchObject({ command: 'UNLOCK', state: 'SUCCEEDED', bookingId, reason: null });
    expect(command!.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(command!.roundTripMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(command!.settledAt as string)).toBeGreaterThanOrEqual(Date.parse(command!.requestedAt as string));
    // The trace it names is the unlock request's.
    const trace = await t.request({ method: 'GET', url: `/traces/${command!.traceId as string}`, as: 'ops', role: 'operator' });
    expect(trace.statusCode).toBe(200);
    expect(trace.json<{ steps: Array<{ messageType: string }> }>().steps.map((step) => step.messageType)).toContain('UnlockBooking');
  });

  it('too slow: TIMED_OUT at the deadline, LATE_SUCCESS when the answer comes after all', async () => {
    const { bookingId, status } = await unlockOnce('cmd-late', { replyDelayMs: 900 });
    expect(status).toBe(504);
    const [timedOut] = await commandsOf('cmd-late');
    expect(timedOut).toMatchObject({ state: 'TIMED_OUT', reason: 'timeout', roundTripMs: null, bookingId });
    const late = await waitFor(async () => (await commandsOf('cmd-late')).find((command) => command.state === 'LATE_SUCCESS'), { what: 'LATE_SUCCESS' });
    expect(late.roundTripMs).toBeGreaterThanOrEqual(900);
  });

  it('refused by the device: REJECTED with its reason', async () => {
    const { status } = await unlockOnce('cmd-refused', { mode: 'reject', rejectReason: 'door blocked' });
    expect(status).toBeGreaterThanOrEqual(400);
    expect(await commandsOf('cmd-refused')).toMatchObject([{ state: 'REJECTED', reason: 'door blocked' }]);
  });

  it('is for operators: a customer gets 403; an unknown vehicle is 404; a bad limit 400', async () => {
    const customer = await t.request({ method: 'GET', url: '/vehicles/cmd-ok/commands' });
    expect(customer.statusCode).toBe(403);
    expect(customer.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/forbidden' });
    const unknown = await t.request({ method: 'GET', url: '/vehicles/no-such-vehicle/commands', as: 'ops', role: 'operator' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/vehicle-not-found' });
    expect((await t.request({ method: 'GET', url: '/vehicles/cmd-ok/commands?limit=0', as: 'ops', role: 'operator' })).statusCode).toBe(400);
  });

  it('/metrics counts the commands by state, summed over the shards', async () => {
    const total = (text: string, state: string) =>
      [...text.matchAll(new RegExp(`^fleet_vehicle_commands_total\\{[^}]*state="${state}"[^}]*\\} (\\d+)$`, 'gm'))].reduce((sum, match) => sum + Number(match[1]), 0);
    // Shards push their figures every second.
    const metrics = await waitFor(
      async () => {
        const text = (await t.request({ method: 'GET', url: '/metrics', as: 'ops', role: 'operator' })).body;
        return total(text, 'LATE_SUCCESS') === 1 && total(text, 'REJECTED') === 1 ? text : null;
      },
      { what: 'command counts in /metrics' },
    );
    expect(total(metrics, 'SENT')).toBe(3);
    expect(total(metrics, 'SUCCEEDED')).toBe(1);
    expect(total(metrics, 'TIMED_OUT')).toBe(1);
    expect(total(metrics, 'EXPIRED')).toBe(0);
  });
});
