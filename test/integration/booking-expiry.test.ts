import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedPaymentGateway } from '../../actors/payment/gateway.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { testClock, type TestClock } from '../helpers/clock.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A confirmed booking that is never unlocked expires by itself when RESERVATION_WINDOW_MS has passed
 * (DESIGN: "an unconfirmed or never-unlocked reservation expires by timer"): the vehicle is released
 * and the authorization voided. The deadline lives in SQLite (persistence/booking-timers.ts), so it
 * survives a restart, also one that spans the deadline.
 *
 * Booking time is a test clock that stands still until the test moves it (runtime/ground/clock.ts): a
 * deadline passes when the test says so, never because the machine was slow, and "not yet" is checked
 * on the timer's own count, which moves only when the clock does.
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

async function start(clock: TestClock, env: Record<string, string> = {}, dbFile?: string): Promise<TestFleet> {
  const fleet = await startTestFleet(env, { clock }, dbFile);
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

const vehicleStatus = async (t: TestFleet, vehicleId: string): Promise<string> => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ status: string }>().status;

function expiredRow(t: TestFleet, bookingId: string): { position: number; data: string } | undefined {
  return t.db.prepare("SELECT position, data FROM journal WHERE persistence_key = ? AND event_type = 'BookingExpired'").get(`booking/${bookingId}`) as
    | { position: number; data: string }
    | undefined;
}

const lastPosition = (t: TestFleet): number => (t.db.prepare('SELECT max(position) AS p FROM journal').get() as { p: number }).p;

/** Bookings the shard's timer has woken so far: it moves only when the test clock does. */
const wakeUps = async (t: TestFleet): Promise<number> => (await t.fleet.shardStats())[0]!.timers.woken;

const journalCount = (t: TestFleet, key: string, type: string): number =>
  (t.db.prepare('SELECT count(*) AS n FROM journal WHERE persistence_key = ? AND event_type = ?').get(key, type) as { n: number }).n;

const WINDOW_MS = 15 * 60_000;

describe('booking expiry', { timeout: 60_000 }, () => {
  it('a confirmed, never-unlocked booking becomes EXPIRED at its deadline, not before; the vehicle is released and the authorization voided', async () => {
    const clock = testClock();
    const t = await start(clock, { RESERVATION_WINDOW_MS: String(WINDOW_MS) });
    const gateway = t.fleet.local.gateway;
    if (!(gateway instanceof SimulatedPaymentGateway)) throw new Error('the test fleet should use the simulated gateway');
    const booking = await book(t, 'alice', 'exp-1');
    expect(booking.status).toBe('CONFIRMED');
    const deadline = Date.parse(booking.expiresAt);
    expect(deadline - Date.parse(booking.createdAt)).toBe(WINDOW_MS);

    // One millisecond short of the deadline: the timer does not wake it.
    const before = await wakeUps(t);
    clock.advanceTo(deadline - 1);
    expect(await wakeUps(t)).toBe(before);
    expect(await statusOf(t, booking.id)).toBe('CONFIRMED');

    clock.advanceTo(deadline);
    await waitFor(async () => (await statusOf(t, booking.id)) === 'EXPIRED', { what: `booking ${booking.id} to expire` });
    const expired = expiredRow(t, booking.id)!;
    expect(JSON.parse(expired.data)).toMatchObject({ previousStatus: 'CONFIRMED', vehicleId: 'exp-1', customerId: 'alice', at: deadline });

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

  it('an unlocked (ACTIVE) booking does not expire, while one booked after it does', async () => {
    const clock = testClock();
    const t = await start(clock, { RESERVATION_WINDOW_MS: String(WINDOW_MS) });
    expect((await t.registerVehicle('exp-car')).statusCode).toBe(201);
    const device = await VirtualVehicle.start({ id: 'exp-car', url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials('exp-car') });
    try {
      await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/exp-car', as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, {
        what: 'exp-car to report presence',
      });
      const ridden = (await t.book('alice', 'exp-car')).json<Booking>();
      const unlocked = await t.request({ method: 'POST', url: `/bookings/${ridden.id}/unlock`, as: 'alice' });
      expect(unlocked.statusCode, unlocked.body).toBe(200);
      expect(await statusOf(t, ridden.id)).toBe('ACTIVE');

      clock.advance(1_000);
      const idle = await book(t, 'bob', 'exp-idle');
      expect(Date.parse(idle.expiresAt)).toBeGreaterThan(Date.parse(ridden.expiresAt));
      const before = await wakeUps(t);
      // Past both deadlines at once: only the idle one is due.
      clock.advanceTo(Date.parse(idle.expiresAt));
      await waitFor(async () => (await statusOf(t, idle.id, 'bob')) === 'EXPIRED', { what: 'the idle booking to expire' });

      expect(await wakeUps(t)).toBe(before + 1);
      expect(await statusOf(t, ridden.id)).toBe('ACTIVE');
      expect(await vehicleStatus(t, 'exp-car')).toBe('IN_USE');
      expect(expiredRow(t, ridden.id)).toBeUndefined();
    } finally {
      await device.stop();
    }
  });

  it('the expiry timer survives a restart: booked in one process, expired at its deadline by the next', async () => {
    const clock = testClock();
    const first = await start(clock, { RESERVATION_WINDOW_MS: String(WINDOW_MS) });
    const booking = await book(first, 'alice', 'exp-r1');
    const deadline = Date.parse(booking.expiresAt);

    const t = await restart(first);
    const restartedAt = lastPosition(t);
    expect(await statusOf(t, booking.id)).toBe('CONFIRMED');
    expect(await vehicleStatus(t, 'exp-r1')).toBe('RESERVED');

    clock.advanceTo(deadline);
    await waitFor(async () => (await statusOf(t, booking.id)) === 'EXPIRED', { what: `booking ${booking.id} to expire after the restart` });
    const expired = expiredRow(t, booking.id)!;
    // Written by the new process, at the deadline.
    expect(expired.position).toBeGreaterThan(restartedAt);
    expect(JSON.parse(expired.data).at).toBe(deadline);
    await waitFor(async () => (await vehicleStatus(t, 'exp-r1')) === 'AVAILABLE', { what: 'vehicle exp-r1 to be released after the restart' });
    // The new process has a new in-memory gateway: the void shows in the payment actor's journal.
    await waitFor(() => journalCount(t, `payment/${booking.authorization.id}`, 'AuthorizationVoided') === 1, { what: 'the authorization to be voided' });
  });

  it('a deadline that passed while the process was down is handled as soon as the next one starts', async () => {
    const clock = testClock();
    const env = { RESERVATION_WINDOW_MS: String(WINDOW_MS) };
    const first = await start(clock, env);
    const booking = await book(first, 'alice', 'exp-d1');
    running.splice(running.indexOf(first), 1);
    await first.fleet.close();
    const stoppedAt = lastPositionOf(first.fleet.shardFiles[0]!);
    // Nothing runs now; time passes the deadline while the system is down.
    clock.advanceTo(Date.parse(booking.expiresAt) + 60_000);

    const t = await start(clock, env, first.dbFile);
    await waitFor(async () => (await statusOf(t, booking.id)) === 'EXPIRED', { what: 'the overdue booking to expire on start' });
    expect(expiredRow(t, booking.id)!.position).toBeGreaterThan(stoppedAt);
    await waitFor(async () => (await vehicleStatus(t, 'exp-d1')) === 'AVAILABLE', { what: 'vehicle exp-d1 to be released' });
  });
});

function lastPositionOf(shardFile: string): number {
  const db = new Database(shardFile, { readonly: true });
  try {
    return (db.prepare('SELECT max(position) AS p FROM journal').get() as { p: number }).p;
  } finally {
    db.close();
  }
}
