import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedPaymentGateway } from '../../actors/payment/gateway.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A confirmed booking that is never unlocked expires by itself when RESERVATION_WINDOW_MS has passed
 * (DESIGN: "an unconfirmed or never-unlocked reservation expires by timer"): the vehicle is released
 * and the authorization voided. The deadline lives in SQLite (runtime/booking-timers.ts), so it
 * survives a restart, also one that spans the deadline.
 */

interface Booking {
  readonly id: string;
  readonly status: string;
  readonly vehicleId: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly authorization: { readonly id: string; readonly amount: number; readonly currency: string };
}

/** Every fleet a test starts, closed after it (each test owns its database file). */
const running: TestFleet[] = [];
const folders = new Set<string>();
afterEach(async () => {
  for (const fleet of running.splice(0).reverse()) await fleet.fleet.close();
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  folders.clear();
});

async function start(env: Record<string, string>, dbFile?: string): Promise<TestFleet> {
  const fleet = await startTestFleet(env, {}, dbFile);
  running.push(fleet);
  folders.add(dirname(fleet.dbFile));
  return fleet;
}

/** Stops `fleet` gracefully and starts a new process on its database (TestFleet.restart, tracked). */
async function restart(fleet: TestFleet): Promise<TestFleet> {
  running.splice(running.indexOf(fleet), 1);
  const next = await fleet.restart();
  running.push(next);
  return next;
}

async function book(t: TestFleet, customer: string, vehicleId: string): Promise<Booking> {
  const registered = await t.registerVehicle(vehicleId);
  expect(registered.statusCode, registered.body).toBe(201);
  const booked = await t.book(customer, vehicleId);
  expect(booked.statusCode, booked.body).toBe(201);
  return booked.json<Booking>();
}

const statusOf = async (t: TestFleet, bookingId: string, customer = 'alice'): Promise<string> => {
  const response = await t.request({ method: 'GET', url: `/bookings/${bookingId}`, as: customer });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<Booking>().status;
};

const vehicleStatus = async (t: TestFleet, vehicleId: string): Promise<string> => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}` })).json<{ status: string }>().status;

function expiredRow(t: TestFleet, bookingId: string): { created_at: number; data: string } | undefined {
  return t.db.prepare("SELECT created_at, data FROM journal WHERE persistence_key = ? AND event_type = 'BookingExpired'").get(`booking/${bookingId}`) as
    | { created_at: number; data: string }
    | undefined;
}

const journalCount = (t: TestFleet, key: string, type: string): number =>
  (t.db.prepare('SELECT count(*) AS n FROM journal WHERE persistence_key = ? AND event_type = ?').get(key, type) as { n: number }).n;

// Expiry runs on real timers (an injected clock is issue 12's): the waits below leave room for a
// machine whose two cores also run three-shard worker suites in the other test process.
const EXPIRY_WAIT_MS = 30_000;

describe('booking expiry', { timeout: 90_000 }, () => {
  it('a confirmed, never-unlocked booking becomes EXPIRED by itself; the vehicle is released and the authorization voided', async () => {
    const windowMs = 300;
    const t = await start({ RESERVATION_WINDOW_MS: String(windowMs) });
    const gateway = t.fleet.local.gateway;
    if (!(gateway instanceof SimulatedPaymentGateway)) throw new Error('the test fleet should use the simulated gateway');
    const booking = await book(t, 'alice', 'exp-1');
    expect(booking.status).toBe('CONFIRMED');
    expect(Date.parse(booking.expiresAt) - Date.parse(booking.createdAt)).toBeGreaterThanOrEqual(windowMs);

    await waitFor(async () => (await statusOf(t, booking.id)) === 'EXPIRED', { what: `booking ${booking.id} to expire`, timeoutMs: EXPIRY_WAIT_MS });
    // Never before its deadline: the event's time is at or after expiresAt.
    const expired = expiredRow(t, booking.id)!;
    expect(JSON.parse(expired.data)).toMatchObject({ previousStatus: 'CONFIRMED', vehicleId: 'exp-1', customerId: 'alice' });
    expect(JSON.parse(expired.data).at).toBeGreaterThanOrEqual(Date.parse(booking.expiresAt));

    await waitFor(async () => (await vehicleStatus(t, 'exp-1')) === 'AVAILABLE', { what: 'vehicle exp-1 to be released' });
    await waitFor(() => gateway.stateOf(booking.authorization.id) === 'voided', { what: 'the authorization to be voided' });
    await waitFor(() => journalCount(t, `booking/${booking.id}`, 'BookingCompensated') === 1, { what: 'compensation to be recorded' });

    // Expired is final: cancel is refused, and the vehicle is bookable by someone else.
    const cancel = await t.request({ method: 'POST', url: `/bookings/${booking.id}/cancel`, as: 'alice' });
    expect(cancel.statusCode, cancel.body).toBe(409);
    expect(cancel.json()).toMatchObject({ bookingStatus: 'EXPIRED' });
    const unlock = await t.request({ method: 'POST', url: `/bookings/${booking.id}/unlock`, as: 'alice' });
    expect(unlock.statusCode, unlock.body).toBe(409);
    const next = await t.book('bob', 'exp-1');
    expect(next.statusCode, next.body).toBe(201);
  });

  it('a deadline already past when the confirmation commits (a 1 ms window) still expires the booking', async () => {
    // Regression: the timer only looked for deadlines after "now", so this one waited for another
    // booking's timer or a restart while its vehicle stayed RESERVED.
    const t = await start({ RESERVATION_WINDOW_MS: '1' });
    const booking = await book(t, 'alice', 'exp-0');
    await waitFor(async () => (await statusOf(t, booking.id)) === 'EXPIRED', { what: `booking ${booking.id} to expire`, timeoutMs: EXPIRY_WAIT_MS });
    await waitFor(async () => (await vehicleStatus(t, 'exp-0')) === 'AVAILABLE', { what: 'vehicle exp-0 to be released' });
  });

  it('an unlocked (ACTIVE) booking does not expire, while one booked after it does', async () => {
    // Room for the unlock round trip over MQTT before the deadline, also on a busy machine.
    const windowMs = 2_500;
    const t = await start({ RESERVATION_WINDOW_MS: String(windowMs) });
    expect((await t.registerVehicle('exp-car')).statusCode).toBe(201);
    const device = await VirtualVehicle.start({ id: 'exp-car', url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials('exp-car') });
    try {
      await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/exp-car' })).json<{ online: boolean | null }>().online === true, {
        what: 'exp-car to report presence',
      });
      const ridden = (await t.book('alice', 'exp-car')).json<Booking>();
      const unlocked = await t.request({ method: 'POST', url: `/bookings/${ridden.id}/unlock`, as: 'alice' });
      expect(unlocked.statusCode, unlocked.body).toBe(200);
      expect(await statusOf(t, ridden.id)).toBe('ACTIVE');

      // Booked later, so its deadline is later: once it has expired, the ridden one's deadline has passed too.
      const idle = await book(t, 'bob', 'exp-idle');
      expect(Date.parse(idle.expiresAt)).toBeGreaterThan(Date.parse(ridden.expiresAt));
      await waitFor(async () => (await statusOf(t, idle.id, 'bob')) === 'EXPIRED', { what: 'the idle booking to expire', timeoutMs: EXPIRY_WAIT_MS });

      expect(await statusOf(t, ridden.id)).toBe('ACTIVE');
      expect(await vehicleStatus(t, 'exp-car')).toBe('IN_USE');
      expect(expiredRow(t, ridden.id)).toBeUndefined();
    } finally {
      await device.stop();
    }
  });

  it('the expiry timer survives a restart: booked in one process, expired at its deadline by the next', async () => {
    // Long enough that the graceful restart ends before the deadline (1–2 s), also on a busy machine.
    const windowMs = 6_000;
    const env = { RESERVATION_WINDOW_MS: String(windowMs) };
    const first = await start(env);
    const booking = await book(first, 'alice', 'exp-r1');

    const t = await restart(first);
    const restartedAt = Date.now();
    expect(restartedAt, 'the restart took longer than the reservation window').toBeLessThan(Date.parse(booking.expiresAt));
    expect(await statusOf(t, booking.id)).toBe('CONFIRMED');
    expect(await vehicleStatus(t, 'exp-r1')).toBe('RESERVED');

    await waitFor(async () => (await statusOf(t, booking.id)) === 'EXPIRED', { what: `booking ${booking.id} to expire after the restart`, timeoutMs: windowMs + EXPIRY_WAIT_MS });
    const expired = expiredRow(t, booking.id)!;
    // Written by the new process, at or after the deadline.
    expect(expired.created_at).toBeGreaterThanOrEqual(restartedAt);
    expect(JSON.parse(expired.data).at).toBeGreaterThanOrEqual(Date.parse(booking.expiresAt));
    await waitFor(async () => (await vehicleStatus(t, 'exp-r1')) === 'AVAILABLE', { what: 'vehicle exp-r1 to be released after the restart' });
    // The new process has a new in-memory gateway: the void shows in the payment actor's journal.
    await waitFor(() => journalCount(t, `payment/${booking.authorization.id}`, 'AuthorizationVoided') === 1, { what: 'the authorization to be voided' });
  });

  it('a deadline that passed while the process was down is handled as soon as the next one starts', async () => {
    const windowMs = 1_500;
    const env = { RESERVATION_WINDOW_MS: String(windowMs) };
    const first = await start(env);
    const booking = await book(first, 'alice', 'exp-d1');
    running.splice(running.indexOf(first), 1);
    await first.fleet.close();
    expect(Date.now(), 'booking and stop took longer than the reservation window').toBeLessThan(Date.parse(booking.expiresAt));
    // Nothing runs now; wall-clock time has to pass the deadline while the system is down.
    await waitFor(() => Date.now() > Date.parse(booking.expiresAt) + 50, { what: 'the deadline to pass', timeoutMs: windowMs + 1_000 });

    const startedAt = Date.now();
    const t = await start(env, first.dbFile);
    await waitFor(async () => (await statusOf(t, booking.id)) === 'EXPIRED', { what: 'the overdue booking to expire on start', timeoutMs: EXPIRY_WAIT_MS });
    expect(expiredRow(t, booking.id)!.created_at).toBeGreaterThanOrEqual(startedAt);
    await waitFor(async () => (await vehicleStatus(t, 'exp-d1')) === 'AVAILABLE', { what: 'vehicle exp-d1 to be released' });
  });
});
