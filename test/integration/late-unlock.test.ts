import { afterEach, describe, expect, it } from 'vitest';
import { COMPENSATION_RETRY_MS } from '../../actors/booking/decider.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { testClock } from '../helpers/clock.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Issue 12, the second hole: an UNLOCKED that arrives after the booking ended. The customer's unlock
 * timed out, the booking then expired (or was cancelled) and released the vehicle, and only then does
 * the device say it opened. The car stands open, so the vehicle is IN_USE under that booking again,
 * the booking hears VehicleWasUnlocked and sends LOCK, and the car ends locked and AVAILABLE. Real
 * vehicle actor, a virtual device over MQTT (embedded broker), real journal; booking time is a test
 * clock, so the expiry happens when the test says.
 */

interface Booking {
  readonly id: string;
  readonly status: string;
  readonly expiresAt: string;
  readonly authorization: { readonly id: string };
}

const running: Array<{ fleet: TestFleet; device: VirtualVehicle }> = [];
afterEach(async () => {
  for (const { fleet, device } of running.splice(0)) {
    await device.stop();
    await fleet.close();
  }
});

const events = (t: TestFleet, key: string): string[] =>
  t.rows<{ event_type: string }>('SELECT event_type FROM journal WHERE persistence_key = ? ORDER BY sequence_number', key).map((row) => row.event_type);
const count = (t: TestFleet, key: string, type: string): number => events(t, key).filter((event) => event === type).length;

describe.each([{ ending: 'expired' as const, status: 'EXPIRED' }])('an UNLOCKED that arrives after the booking $ending', { timeout: 30_000 }, ({ ending, status }) => {
  it('makes the booking lock the vehicle, so the car does not stand open', async () => {
    const clock = testClock();
    const t = await startTestFleet({ UNLOCK_TIMEOUT_MS: '300' }, { clock });
    const vehicleId = `late-${ending}`;
    expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
    // Silent: it takes the UNLOCK and answers only when the test publishes the answer.
    const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(vehicleId), behaviour: { mode: 'silent' } });
    running.push({ fleet: t, device });
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, { what: `${vehicleId} online` });
    const booked = await t.book('alice', vehicleId);
    expect(booked.statusCode, booked.body).toBe(201);
    const booking = booked.json<Booking>();

    const unlockCommand = device.nextCommand();
    const unlock = await t.request({ method: 'POST', url: `/bookings/${booking.id}/unlock` });
    expect(unlock.statusCode, unlock.body).toBe(504);
    const command = await unlockCommand;
    expect(command.type).toBe('UNLOCK');

    clock.advanceTo(Date.parse(booking.expiresAt));
    await waitFor(() => count(t, `booking/${booking.id}`, 'BookingCompensated') === 1, { what: `the ${ending} booking's compensation` });
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ status: string }>().status).toBe('AVAILABLE');

    // Now the device says it opened, and from here on it answers what it is sent.
    device.setBehaviour({ mode: 'answer' });
    const lockCommand = device.nextCommand();
    await device.publishRaw('replies', JSON.stringify({ commandId: command.commandId, type: 'UNLOCKED', at: new Date().toISOString() }));

    const lock = await lockCommand;
    expect(lock).toMatchObject({ type: 'LOCK', bookingId: booking.id });
    await waitFor(() => count(t, `booking/${booking.id}`, 'VehicleRelocked') === 1, { what: 'the booking to record the lock' });
    expect(device.locked).toBe(true);
    expect(events(t, `vehicle/${vehicleId}`).slice(-6)).toEqual(['UnlockRequested', 'UnlockTimedOut', 'VehicleReleased', 'VehicleUnlocked', 'LockRequested', 'VehicleLocked']);
    const vehicle = (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ status: string }>();
    expect(vehicle.status).toBe('AVAILABLE');
    // The booking stays ended; it recorded the late opening and the lock, nothing else.
    const after = (await t.request({ method: 'GET', url: `/bookings/${booking.id}` })).json<Booking>();
    expect(after.status).toBe(status);
    expect(events(t, `booking/${booking.id}`).slice(-2)).toEqual(['VehicleOpenedAfterEnd', 'VehicleRelocked']);
    // And the vehicle can be booked and unlocked by the next customer.
    const next = await t.book('bob', vehicleId);
    expect(next.statusCode, next.body).toBe(201);
  });
});

describe('a cancel while the unlock is unanswered (issue 19: the free ride through a timed-out unlock)', { timeout: 30_000 }, () => {
  it('is refused with unlock-outcome-unknown; the late UNLOCKED makes the booking a ride, locked and billed at its end', async () => {
    const clock = testClock();
    const t = await startTestFleet({ UNLOCK_TIMEOUT_MS: '300' }, { clock });
    const vehicleId = 'late-cancel';
    expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
    const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(vehicleId), behaviour: { mode: 'silent' } });
    running.push({ fleet: t, device });
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, { what: `${vehicleId} online` });
    const booking = (await t.book('alice', vehicleId)).json<Booking>();
    const unlockCommand = device.nextCommand();
    expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/unlock` })).statusCode).toBe(504);
    const command = await unlockCommand;

    const cancel = await t.request({ method: 'POST', url: `/bookings/${booking.id}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(409);
    expect(cancel.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/unlock-outcome-unknown', vehicleId });
    // Nothing was released or voided: the booking still holds the car and the authorization.
    expect((await t.request({ method: 'GET', url: `/bookings/${booking.id}` })).json<Booking>().status).toBe('CONFIRMED');
    expect(count(t, `booking/${booking.id}`, 'BookingCancelled')).toBe(0);

    // The car opened after all: the booking is a ride, and its end locks and charges it.
    device.setBehaviour({ mode: 'answer' });
    await device.publishRaw('replies', JSON.stringify({ commandId: command.commandId, type: 'UNLOCKED', at: new Date().toISOString() }));
    await waitFor(async () => (await t.request({ method: 'GET', url: `/bookings/${booking.id}` })).json<Booking>().status === 'ACTIVE', { what: 'the late UNLOCKED to start the ride' });
    const ended = await t.request({ method: 'POST', url: `/bookings/${booking.id}/end` });
    expect(ended.statusCode, ended.body).toBe(200);
    expect(ended.json()).toMatchObject({ status: 'COMPLETED', charge: { amount: expect.any(Number) } });
    expect(ended.json<{ charge: { amount: number } }>().charge.amount).toBeGreaterThan(0);
    expect(device.locked).toBe(true);
  });
});

describe('a LOCK after a late UNLOCKED that does not go through', { timeout: 30_000 }, () => {
  it('is retried by the booking timer until the car is locked', async () => {
    const clock = testClock();
    const t = await startTestFleet({ UNLOCK_TIMEOUT_MS: '300' }, { clock });
    const vehicleId = 'late-retry';
    expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
    const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(vehicleId), behaviour: { mode: 'silent' } });
    running.push({ fleet: t, device });
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, { what: `${vehicleId} online` });
    const booking = (await t.book('alice', vehicleId)).json<Booking>();
    const unlockCommand = device.nextCommand();
    expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/unlock` })).statusCode).toBe(504);
    const command = await unlockCommand;
    clock.advanceTo(Date.parse(booking.expiresAt));
    await waitFor(() => count(t, `booking/${booking.id}`, 'BookingCompensated') === 1, { what: 'the expired booking\'s compensation' });

    // The device says it opened, but does not answer the LOCK that follows: it times out.
    const firstLock = device.nextCommand();
    await device.publishRaw('replies', JSON.stringify({ commandId: command.commandId, type: 'UNLOCKED', at: new Date().toISOString() }));
    expect(await firstLock).toMatchObject({ type: 'LOCK', bookingId: booking.id });
    await waitFor(() => count(t, `vehicle/${vehicleId}`, 'LockTimedOut') === 1, { what: 'the first LOCK to time out' });
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ status: string }>().status).toBe('IN_USE');
    expect(count(t, `booking/${booking.id}`, 'VehicleRelocked')).toBe(0);

    // The booking is due again COMPENSATION_RETRY_MS after it heard of the opening: it sends LOCK again.
    device.setBehaviour({ mode: 'answer' });
    const secondLock = device.nextCommand();
    clock.advance(COMPENSATION_RETRY_MS);
    expect(await secondLock).toMatchObject({ type: 'LOCK', bookingId: booking.id });
    await waitFor(() => count(t, `booking/${booking.id}`, 'VehicleRelocked') === 1, { what: 'the retried LOCK to be recorded' });
    expect(device.locked).toBe(true);
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ status: string }>().status).toBe('AVAILABLE');
  });
});
