import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The seed flow's second half on real brokers: POST /unlock → vehicle actor → MQTT UNLOCK → virtual
 * device → UNLOCKED → SUCCESS, then ending the trip. Every case runs on the embedded broker (MQTT 3.1.1)
 * and on a Mosquitto of its own (MQTT 5).
 */

interface BrokerSetup {
  readonly name: string;
  readonly protocolVersion: 4 | 5;
  start(env: Record<string, string>): Promise<{ fleet: TestFleet; stop(): Promise<void> }>;
}

/** One shard in this thread, and three on worker threads: the runtime as `npm start` runs it. */
const SHARDINGS = [
  { shards: '1', options: { shardRuntime: 'inline' as const } },
  { shards: '3', options: { shardRuntime: 'worker' as const } },
];

const setups: BrokerSetup[] = SHARDINGS.flatMap(({ shards, options }): BrokerSetup[] => [
  {
    name: `embedded broker, ${shards} shard(s)`,
    protocolVersion: 4,
    start: async (env) => {
      const fleet = await startTestFleet({ ...env, FLEET_SHARDS: shards }, options);
      return { fleet, stop: () => fleet.close() };
    },
  },
  {
    name: `mosquitto, ${shards} shard(s)`,
    protocolVersion: 5,
    start: async (env) => {
      const broker = await startMosquitto();
      const fleet = await startTestFleet({ ...env, MQTT_URL: broker.url, FLEET_SHARDS: shards }, options);
      return {
        fleet,
        stop: async () => {
          await fleet.close();
          await broker.dispose();
        },
      };
    },
  },
]);

const journalCount = (t: TestFleet, eventType: string, key: string): number =>
  t.count('SELECT count(*) AS n FROM journal WHERE event_type = ? AND persistence_key = ?', eventType, key);

describe.each(setups)('unlock over MQTT ($name)', (setup) => {
  let t: TestFleet;
  let stop: () => Promise<void>;
  const devices: VirtualVehicle[] = [];
  let counter = 0;

  beforeAll(async () => {
    ({ fleet: t, stop } = await setup.start({ UNLOCK_TIMEOUT_MS: '1500' }));
  });
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });
  afterAll(async () => stop?.());

  /** A registered vehicle with its device online and a CONFIRMED booking of `customer` on it. */
  async function bookedVehicle(customer = 'alice', behaviour: Parameters<typeof VirtualVehicle.start>[0]['behaviour'] = {}) {
    counter += 1;
    const vehicleId = `v-${setup.protocolVersion}-${counter}`;
    expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
    const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: setup.protocolVersion, credentials: t.credentials(vehicleId), behaviour });
    devices.push(device);
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().online === true, { what: `${vehicleId} online` });
    const booked = await t.book(customer, vehicleId);
    expect(booked.statusCode, booked.body).toBe(201);
    return { vehicleId, device, bookingId: booked.json().id as string };
  }

  it('books, unlocks with one UNLOCK command, and ends the trip with LOCK', async () => {
    const { vehicleId, device, bookingId } = await bookedVehicle();

    const unlocked = await t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    expect(unlocked.json()).toMatchObject({ bookingId, vehicleId, status: 'SUCCESS' });
    expect(Date.parse(unlocked.json().unlockedAt)).not.toBeNaN();
    expect(device.received.map((command) => [command.type, command.bookingId])).toEqual([['UNLOCK', bookingId]]);
    expect(device.locked).toBe(false);

    expect((await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json().status).toBe('ACTIVE');
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().status).toBe('IN_USE');

    const ended = await t.request({ method: 'POST', url: `/bookings/${bookingId}/end` });
    expect(ended.statusCode, ended.body).toBe(200);
    expect(ended.json()).toMatchObject({ status: 'COMPLETED', charge: { currency: 'EUR' } });
    expect(ended.json().charge.amount).toBeGreaterThan(0);
    expect(device.received.map((command) => command.type)).toEqual(['UNLOCK', 'LOCK']);
    expect(device.locked).toBe(true);
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().status).toBe('AVAILABLE');
    expect(journalCount(t, 'VehicleUnlocked', `vehicle/${vehicleId}`)).toBe(1);
    expect(journalCount(t, 'VehicleLocked', `vehicle/${vehicleId}`)).toBe(1);
  });

  it('serves POST /bookings/:id/unlock like POST /unlock', async () => {
    const { bookingId } = await bookedVehicle();
    const unlocked = await t.request({ method: 'POST', url: `/bookings/${bookingId}/unlock` });
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    expect(unlocked.json().status).toBe('SUCCESS');
  });

  it('answers 504 when the vehicle is too slow, and still applies its late UNLOCKED', async () => {
    const { vehicleId, bookingId } = await bookedVehicle('alice', { replyDelayMs: 2500 });
    const unlocked = await t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    expect(unlocked.statusCode, unlocked.body).toBe(504);
    expect(unlocked.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(unlocked.json().type).toMatch(/unlock-timed-out$/);
    expect((await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json().status).toBe('CONFIRMED');

    // The car opened after all: the late answer moves the vehicle to IN_USE and the booking to ACTIVE.
    await waitFor(async () => (await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json().status === 'ACTIVE', {
      timeoutMs: 5000,
      what: 'booking ACTIVE after the late UNLOCKED',
    });
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().status).toBe('IN_USE');
  });

  it('answers 504 when the vehicle is too slow to lock, and its late LOCKED still completes the booking', async () => {
    const { vehicleId, device, bookingId } = await bookedVehicle('alice');
    expect((await t.request({ method: 'POST', url: '/unlock', body: { bookingId } })).statusCode).toBe(200);
    device.setBehaviour({ replyDelayMs: 2500 });
    const ended = await t.request({ method: 'POST', url: `/bookings/${bookingId}/end` });
    expect(ended.statusCode, ended.body).toBe(504);
    expect(ended.json().type).toMatch(/lock-timed-out$/);

    // The vehicle locked after all: it is free again, so the booking must not stay ACTIVE (chaos harness).
    await waitFor(async () => (await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json().status === 'COMPLETED', {
      timeoutMs: 5000,
      what: 'booking COMPLETED after the late LOCKED',
    });
    const booking = (await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json();
    expect(booking.charge).toMatchObject({ currency: 'EUR' });
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().status).toBe('AVAILABLE');
    // A repeated end is answered from state.
    expect((await t.request({ method: 'POST', url: `/bookings/${bookingId}/end` })).statusCode).toBe(200);
  });

  it('lets the customer retry an unlock that timed out', async () => {
    const { device, bookingId } = await bookedVehicle('alice', { mode: 'silent' });
    expect((await t.request({ method: 'POST', url: '/unlock', body: { bookingId } })).statusCode).toBe(504);
    device.setBehaviour({ mode: 'answer' });
    const retried = await t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    expect(retried.statusCode, retried.body).toBe(200);
    const [first, second] = device.received;
    expect(device.received).toHaveLength(2);
    expect(first!.commandId).not.toBe(second!.commandId);
  });

  it('sends one command for concurrent unlocks of one booking', async () => {
    const { device, bookingId } = await bookedVehicle('alice', { replyDelayMs: 100 });
    const answers = await Promise.all(Array.from({ length: 8 }, () => t.request({ method: 'POST', url: '/unlock', body: { bookingId } })));
    expect(answers.map((answer) => answer.statusCode)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((answer) => answer.json().unlockedAt)).size).toBe(1);
    expect(device.received).toHaveLength(1);
  });

  it('applies a duplicated UNLOCKED once', async () => {
    const { vehicleId, device, bookingId } = await bookedVehicle('alice', { mode: 'answer-twice' });
    expect((await t.request({ method: 'POST', url: '/unlock', body: { bookingId } })).statusCode).toBe(200);
    // Both copies must have been handled by the vehicle actor before counting (its trace records each
    // delivery; the trace store writes on its own timer, so this polls).
    await waitFor(() => device.replies.length === 2, { what: 'the device answered twice' });
    const handled = () =>
      t.countTraceSteps("SELECT count(*) AS n FROM trace_steps WHERE to_actor = ? AND message_type = 'DeviceReplied'", `vehicle/${vehicleId}`);
    await waitFor(() => handled() === 2, { what: 'both replies handled by the vehicle actor' });
    expect(journalCount(t, 'VehicleUnlocked', `vehicle/${vehicleId}`)).toBe(1);
  });

  it('drops malformed replies and replies to unknown commands without harm', async () => {
    const { vehicleId, device, bookingId } = await bookedVehicle('alice', { replyDelayMs: 200 });
    const pending = t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    await device.nextCommand();
    await device.publishRaw('replies', 'this is not json');
    await device.publishRaw('replies', JSON.stringify({ commandId: 'no-such-command', type: 'UNLOCKED', at: new Date().toISOString() }));
    await device.publishRaw('replies', JSON.stringify({ commandId: 42, type: 'OPEN' }));
    const unlocked = await pending;
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    expect(journalCount(t, 'VehicleUnlocked', `vehicle/${vehicleId}`)).toBe(1);
  });

  it('answers 409 when the vehicle rejects the command, and the booking stays CONFIRMED', async () => {
    const { bookingId } = await bookedVehicle('alice', { mode: 'reject' });
    const unlocked = await t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    expect(unlocked.statusCode, unlocked.body).toBe(409);
    expect(unlocked.json().type).toMatch(/vehicle-rejected-command$/);
    expect((await t.request({ method: 'GET', url: `/bookings/${bookingId}` })).json().status).toBe('CONFIRMED');
  });

  it('fails fast with 503 for an offline vehicle and takes it back when it returns', async () => {
    const { vehicleId, device, bookingId } = await bookedVehicle('alice');
    await device.crash(); // no DISCONNECT: the broker publishes the last will
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().online === false, {
      timeoutMs: 10_000,
      what: 'last will seen',
    });
    expect((await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().status).toBe('OFFLINE');
    const unlocked = await t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    expect(unlocked.statusCode, unlocked.body).toBe(503);
    expect(unlocked.json().type).toMatch(/vehicle-offline$/);
    expect(device.received).toHaveLength(0);

    await device.comeBack();
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().online === true, { what: 'back online' });
    const retried = await t.request({ method: 'POST', url: '/unlock', body: { bookingId } });
    expect(retried.statusCode, retried.body).toBe(200);
  });

  it('refuses to book an offline vehicle with 503', async () => {
    counter += 1;
    const vehicleId = `v-${setup.protocolVersion}-offline-${counter}`;
    await t.registerVehicle(vehicleId);
    const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: setup.protocolVersion, credentials: t.credentials(vehicleId) });
    devices.push(device);
    await device.goOffline();
    await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json().online === false, { what: 'offline' });
    const booked = await t.book('bob', vehicleId);
    expect(booked.statusCode, booked.body).toBe(503);
    expect(booked.json().type).toMatch(/vehicle-offline$/);
  });
});
