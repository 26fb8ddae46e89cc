import { afterEach, describe, expect, it } from 'vitest';
import { CAPTURE_RETRY_MS } from '../../actors/booking/decider.js';
import { SimulatedPaymentGateway } from '../../actors/payment/gateway.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { testClock, type TestClock } from '../helpers/clock.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Issue 12, the first hole: a capture that failed after the vehicle locked used to leave the booking
 * ACTIVE with no timer for ever. Now the return (the lock time) is recorded first, in its own event
 * (VehicleReturned), and the booking stays due until the capture succeeds: the booking timer, or a
 * retried end, captures again, charging from the recorded lock time. Real vehicle over MQTT, real
 * journal; booking time is a test clock, so the retry happens when the test moves it.
 */

interface Booking {
  readonly id: string;
  readonly status: string;
  readonly unlockedAt: string | null;
  readonly endedAt: string | null;
  readonly charge: { readonly amount: number; readonly currency: string } | null;
  readonly authorization: { readonly id: string };
}

const running: Array<{ fleet: TestFleet; device: VirtualVehicle }> = [];
afterEach(async () => {
  for (const { fleet, device } of running.splice(0)) {
    await device.stop();
    await fleet.close();
  }
});

/** A fleet on the test clock and a shared simulated gateway (it survives a restart, as a real processor would). */
async function rideInProgress(vehicleId: string, clock: TestClock, gateway: SimulatedPaymentGateway): Promise<{ t: TestFleet; device: VirtualVehicle; booking: Booking }> {
  const t = await startTestFleet({}, { clock, gateway });
  expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
  const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(vehicleId) });
  running.push({ fleet: t, device });
  await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, { what: `${vehicleId} online` });
  const booked = await t.book('alice', vehicleId);
  expect(booked.statusCode, booked.body).toBe(201);
  const booking = booked.json<Booking>();
  const unlocked = await t.request({ method: 'POST', url: `/bookings/${booking.id}/unlock` });
  expect(unlocked.statusCode, unlocked.body).toBe(200);
  return { t, device, booking };
}

const get = async (t: TestFleet, bookingId: string): Promise<Booking> => (await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json<Booking>();
const count = (t: TestFleet, key: string, type: string): number => t.count('SELECT count(*) AS n FROM journal WHERE persistence_key = ? AND event_type = ?', key, type);
const returnedEvent = (t: TestFleet, bookingId: string): { lockedAt: number } =>
  JSON.parse(t.rows<{ data: string }>("SELECT data FROM journal WHERE persistence_key = ? AND event_type = 'VehicleReturned'", `booking/${bookingId}`)[0]!.data) as { lockedAt: number };

describe('a capture that fails after the vehicle locked', { timeout: 30_000 }, () => {
  it('records the return first and leaves the booking due; the booking timer retries the capture until it succeeds, charging from the lock time', async () => {
    const clock = testClock();
    const gateway = new SimulatedPaymentGateway({ latencyMs: 0 });
    const { t, device, booking } = await rideInProgress('cap-1', clock, gateway);

    gateway.failNextCaptures(2);
    const ended = await t.request({ method: 'POST', url: `/bookings/${booking.id}/end` });
    expect(ended.statusCode, ended.body).toBe(402);
    expect(ended.json()).toMatchObject({ type: expect.stringMatching(/payment-declined$/) });
    expect(ended.json<{ detail: string }>().detail).toContain('capture_failed');

    // The car is locked and the return recorded, with its lock time; the booking is still ACTIVE, due.
    expect(device.locked).toBe(true);
    const { lockedAt } = returnedEvent(t, booking.id);
    const pending = await get(t, booking.id);
    expect(pending).toMatchObject({ status: 'ACTIVE', endedAt: new Date(lockedAt).toISOString(), charge: null });
    expect(t.rows<{ wake_at: number | null }>('SELECT wake_at FROM bookings WHERE id = ?', booking.id)[0]!.wake_at).not.toBeNull();
    expect(gateway.stateOf(booking.authorization.id)).toBe('authorized');
    expect((await t.request({ method: 'GET', url: '/vehicles/cap-1', as: 'ops', role: 'operator' })).json<{ status: string }>().status).toBe('AVAILABLE');

    // The first retry, CAPTURE_RETRY_MS later, fails too (the second fault) and changes nothing.
    clock.advance(CAPTURE_RETRY_MS);
    await waitFor(() => gateway.capturesStillToFail === 0, { what: 'the timer to retry the capture' });
    expect((await get(t, booking.id)).status).toBe('ACTIVE');

    // Still due: woken again 2 s later, and this capture goes through.
    clock.advance(2_000);
    await waitFor(async () => (await get(t, booking.id)).status === 'COMPLETED', { what: 'the retried capture to complete the booking' });
    const done = await get(t, booking.id);
    // Charged from the recorded lock time: started minutes of a scooter (1 € + 0.25 €/min).
    const minutes = Math.max(1, Math.ceil((lockedAt - Date.parse(pending.unlockedAt!)) / 60_000));
    expect(done).toMatchObject({ endedAt: new Date(lockedAt).toISOString(), charge: { amount: 100 + 25 * minutes, currency: 'EUR' } });
    expect(gateway.stateOf(booking.authorization.id)).toBe('captured');
    expect(count(t, `booking/${booking.id}`, 'VehicleReturned')).toBe(1);
    expect(count(t, `booking/${booking.id}`, 'BookingCompleted')).toBe(1);
    expect(count(t, `payment/${booking.authorization.id}`, 'PaymentCaptured')).toBe(1);
    expect(t.rows<{ wake_at: number | null }>('SELECT wake_at FROM bookings WHERE id = ?', booking.id)[0]!.wake_at).toBeNull();
    // One LOCK only: the retries capture, they do not lock again.
    expect(device.received.filter((command) => command.type === 'LOCK')).toHaveLength(1);
  });

  it('a retried end captures without locking again, and the retry survives a restart', async () => {
    const clock = testClock();
    const gateway = new SimulatedPaymentGateway({ latencyMs: 0 });
    const { t, device, booking } = await rideInProgress('cap-2', clock, gateway);
    gateway.failNextCaptures(1);
    expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/end` })).statusCode).toBe(402);
    const { lockedAt } = returnedEvent(t, booking.id);

    const next = await t.restart();
    running[running.length - 1] = { fleet: next, device };
    expect((await get(next, booking.id)).status).toBe('ACTIVE');
    const retried = await next.request({ method: 'POST', url: `/bookings/${booking.id}/end` });
    expect(retried.statusCode, retried.body).toBe(200);
    expect(retried.json()).toMatchObject({ status: 'COMPLETED', endedAt: new Date(lockedAt).toISOString() });
    expect(device.received.filter((command) => command.type === 'LOCK')).toHaveLength(1);
    expect(gateway.stateOf(booking.authorization.id)).toBe('captured');
  });
});
