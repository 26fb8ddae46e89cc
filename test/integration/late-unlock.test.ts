import { afterEach, describe, expect, it } from 'vitest';
import type { DeviceCommand } from '../../actors/contract/device-protocol.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { testClock, type TestClock } from '../helpers/clock.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * An UNLOCK the device did not answer in time: the car may open later (a late UNLOCKED). Issue 12
 * made the booking lock a car that opened after its end; issue 19 (and the chaos run's ninth
 * invariant) closed the free ride that left: a booking whose unlock is unanswered neither cancels nor
 * expires into "no charge". At its deadline it first locks the car (the LOCK settles the unlock): shut
 * all along, it expires; opened meanwhile, that was the ride, billed. Only a device silent past the
 * settle window gets its vehicle handed back unsettled (a later UNLOCKED is still locked). Real vehicle
 * actor, a virtual device over MQTT (embedded broker), real journal; booking time is a test clock, so
 * the deadline comes when the test says.
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


async function unlockUnanswered(vehicleId: string): Promise<{ t: TestFleet; clock: TestClock; device: VirtualVehicle; booking: Booking; command: DeviceCommand }> {
  const clock = testClock();
  const t = await startTestFleet({ UNLOCK_TIMEOUT_MS: '300' }, { clock });
  expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
  // Silent: it takes each command and answers only when the test says.
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
  return { t, clock, device, booking, command };
}

const reply = (device: VirtualVehicle, commandId: string, type: 'UNLOCKED' | 'LOCKED') => device.publishRaw('replies', JSON.stringify({ commandId, type, at: new Date().toISOString() }));
const vehicleStatus = async (t: TestFleet, vehicleId: string) => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ status: string }>().status;
const bookingOf = async (t: TestFleet, id: string) => (await t.request({ method: 'GET', url: `/bookings/${id}` })).json<Booking & { charge?: { amount: number } }>();

describe('an UNLOCK unanswered at the booking\'s deadline', { timeout: 30_000 }, () => {
  it('the booking locks the car first; shut all along, it expires, and the stale UNLOCKED that follows opens nothing', async () => {
    const vehicleId = 'late-shut';
    const { t, clock, device, booking, command } = await unlockUnanswered(vehicleId);
    const securing = device.nextCommand();
    clock.advanceTo(Date.parse(booking.expiresAt));
    const lock = await securing;
    expect(lock).toMatchObject({ type: 'LOCK', bookingId: booking.id });
    // Until the device answers, the booking keeps its hold and its vehicle.
    expect((await bookingOf(t, booking.id)).status).toBe('CONFIRMED');
    expect(await vehicleStatus(t, vehicleId)).toBe('RESERVED');

    await reply(device, lock.commandId, 'LOCKED');
    await waitFor(() => count(t, `vehicle/${vehicleId}`, 'VehicleSecured') === 1, { what: 'the LOCKED to settle the unlock' });
    // The LOCK waited 300 ms (UNLOCK_TIMEOUT_MS): if the booking gave up on it first, its timer asks again.
    clock.advance(2_000);
    await waitFor(() => count(t, `booking/${booking.id}`, 'BookingCompensated') === 1, { what: 'the expired booking\'s compensation' });
    expect((await bookingOf(t, booking.id)).status).toBe('EXPIRED');
    expect(await vehicleStatus(t, vehicleId)).toBe('AVAILABLE');
    const vehicleEvents = events(t, `vehicle/${vehicleId}`);
    expect(vehicleEvents.indexOf('VehicleSecured')).toBeLessThan(vehicleEvents.indexOf('VehicleReleased'));

    // The device answers the old UNLOCK after its LOCK: stale, the car stays shut and free.
    await reply(device, command.commandId, 'UNLOCKED');
    const next = await t.book('bob', vehicleId);
    expect(next.statusCode, next.body).toBe(201);
    expect(count(t, `vehicle/${vehicleId}`, 'VehicleUnlocked')).toBe(0);
  });

  it('the car had opened before the LOCK: that was the ride, and the booking is billed for it', async () => {
    const vehicleId = 'late-open';
    const { t, clock, device, booking, command } = await unlockUnanswered(vehicleId);
    const securing = device.nextCommand();
    clock.advanceTo(Date.parse(booking.expiresAt));
    const lock = await securing;
    await reply(device, command.commandId, 'UNLOCKED');
    await waitFor(async () => (await vehicleStatus(t, vehicleId)) === 'IN_USE', { what: 'the late UNLOCKED to open the car' });
    await reply(device, lock.commandId, 'LOCKED');

    await waitFor(async () => (await bookingOf(t, booking.id)).status === 'COMPLETED', { what: 'the ride to be completed' });
    const completed = await bookingOf(t, booking.id);
    expect(completed.charge?.amount).toBeGreaterThan(0);
    expect(await vehicleStatus(t, vehicleId)).toBe('AVAILABLE');
    expect(count(t, `booking/${booking.id}`, 'BookingExpired')).toBe(0);
    expect(count(t, `booking/${booking.id}`, 'VehicleOpenedAfterEnd')).toBe(0);
  });

  it('a LOCK the device does not answer is sent again by the booking\'s timer, the booking CONFIRMED meanwhile', async () => {
    const vehicleId = 'late-retry';
    const { t, clock, device, booking } = await unlockUnanswered(vehicleId);
    const firstLock = device.nextCommand();
    clock.advanceTo(Date.parse(booking.expiresAt));
    expect(await firstLock).toMatchObject({ type: 'LOCK', bookingId: booking.id });
    await waitFor(() => count(t, `vehicle/${vehicleId}`, 'LockTimedOut') === 1, { what: 'the first LOCK to time out' });
    expect((await bookingOf(t, booking.id)).status).toBe('CONFIRMED');

    const secondLock = device.nextCommand();
    clock.advance(2_000); // the booking timer wakes a booking still due every 2 s
    const lock = await secondLock;
    expect(lock).toMatchObject({ type: 'LOCK', bookingId: booking.id });
    await reply(device, lock.commandId, 'LOCKED');
    await waitFor(() => count(t, `booking/${booking.id}`, 'BookingCompensated') === 1, { what: 'the expiry after the retried LOCK' });
    expect(await vehicleStatus(t, vehicleId)).toBe('AVAILABLE');
  });

  it('a device silent past the settle window: the vehicle is handed back all the same, and an UNLOCKED even later is locked', async () => {
    const vehicleId = 'late-dead';
    const { t, clock, device, booking, command } = await unlockUnanswered(vehicleId);
    clock.advanceTo(Date.parse(booking.expiresAt));
    await waitFor(() => count(t, `vehicle/${vehicleId}`, 'LockTimedOut') >= 1, { what: 'the securing LOCK to time out' });
    // 3 device asks of UNLOCK_TIMEOUT_MS + 2 s each (actors/booking/actor.ts UNLOCK_SETTLE_ASKS).
    clock.advanceTo(Date.parse(booking.expiresAt) + 3 * 2_300);
    await waitFor(() => count(t, `booking/${booking.id}`, 'BookingCompensated') === 1, { what: 'the forced expiry' });
    expect(await vehicleStatus(t, vehicleId)).toBe('AVAILABLE');

    device.setBehaviour({ mode: 'answer' });
    const relock = device.nextCommand();
    await reply(device, command.commandId, 'UNLOCKED');
    expect(await relock).toMatchObject({ type: 'LOCK', bookingId: booking.id });
    await waitFor(() => count(t, `booking/${booking.id}`, 'VehicleRelocked') === 1, { what: 'the booking to record the lock' });
    expect(device.locked).toBe(true);
    expect(await vehicleStatus(t, vehicleId)).toBe('AVAILABLE');
    expect((await bookingOf(t, booking.id)).status).toBe('EXPIRED');
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
