import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { startMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

const healthy = async (t: TestFleet) => (await t.request({ method: 'GET', url: '/health' })).statusCode === 200;

describe('a Mosquitto restart in the middle of a run', () => {
  let broker: MosquittoBroker;
  let t: TestFleet;
  let device: VirtualVehicle;

  beforeAll(async () => {
    broker = await startMosquitto({ persistence: false });
    t = await startTestFleet({ MQTT_URL: broker.url, UNLOCK_TIMEOUT_MS: '3000' });
  });
  afterAll(async () => {
    await device?.stop();
    await t?.close();
    await broker?.dispose();
  });

  it('reconnects, subscribes again and the next unlock works', async () => {
    await t.registerVehicle('v-restart-1');
    await t.registerVehicle('v-restart-2');
    device = await VirtualVehicle.start({ id: 'v-restart-1', url: broker.url, protocolVersion: 5, credentials: t.credentials('v-restart-1'), reconnectPeriodMs: 200 });
    const first = await t.book('alice', 'v-restart-1');
    expect(first.statusCode, first.body).toBe(201);
    // The vehicle actor is active now and subscribed to its replies topic.
    expect(t.fleet.local.directory.isActive({ kind: 'vehicle', id: 'v-restart-1' })).toBe(true);

    // Without persistence the restarted broker has forgotten every session and subscription.
    await broker.restart();
    await waitFor(() => healthy(t), { timeoutMs: 15_000, what: 'MQTT reconnected (health 200)' });
    await waitFor(() => device.isConnected, { timeoutMs: 15_000, what: 'device reconnected' });
    await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/v-restart-1' })).json().online === true, {
      timeoutMs: 10_000,
      what: 'device presence seen again',
    });
    // The device may reconnect more than once after the restart, and its last will ("offline") can come
    // after its first "online": let its presence settle, then see it online again (set-up, not a timing).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/v-restart-1' })).json().online === true, {
      timeoutMs: 10_000,
      what: 'device presence settled online',
    });

    const unlocked = await t.request({ method: 'POST', url: '/unlock', body: { bookingId: first.json().id } });
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    expect(device.received.filter((command) => command.type === 'UNLOCK')).toHaveLength(1);
  });

  it('reports the broker outage on /health while it lasts', async () => {
    await broker.stop();
    await waitFor(async () => !(await healthy(t)), { timeoutMs: 10_000, what: 'health 503 while the broker is down' });
    const health = await t.request({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(503);
    await broker.restart();
    await waitFor(() => healthy(t), { timeoutMs: 15_000, what: 'health 200 again' });
  });
});

describe.each([
  { name: 'embedded broker', protocolVersion: 4 as const, mosquitto: false },
  { name: 'mosquitto', protocolVersion: 5 as const, mosquitto: true },
])('200 vehicles unlocked at once ($name)', ({ protocolVersion, mosquitto }) => {
  let t: TestFleet;
  let broker: MosquittoBroker | undefined;
  const devices: VirtualVehicle[] = [];

  beforeAll(async () => {
    broker = mosquitto ? await startMosquitto({ extraConfig: ['max_queued_messages 100000'] }) : undefined;
    t = await startTestFleet({ UNLOCK_TIMEOUT_MS: '10000', ...(broker && { MQTT_URL: broker.url }) });
  });
  afterAll(async () => {
    await Promise.all(devices.map((device) => device.stop()));
    await t?.close();
    await broker?.dispose();
  });

  it('sends each vehicle exactly one UNLOCK and unlocks every booking', async () => {
    const ids = Array.from({ length: 200 }, (_, index) => `fleet-${String(index).padStart(3, '0')}`);
    for (const id of ids) expect((await t.registerVehicle(id)).statusCode).toBe(201);
    devices.push(...(await Promise.all(ids.map((id) => VirtualVehicle.start({ id, url: t.fleet.mqttUrl, protocolVersion, credentials: t.credentials(id), behaviour: { replyDelayMs: 20 } })))));

    const bookings = await Promise.all(ids.map((id, index) => t.book(`customer-${index}`, id)));
    expect(bookings.map((booking) => booking.statusCode)).toEqual(Array(200).fill(201));

    const telemetry = Promise.all(devices.map((device) => device.publishTelemetry({ lat: 52.52, lon: 13.405, battery: 90, speedKmh: 0 })));
    const unlocks = await Promise.all(
      bookings.map((booking, index) => t.request({ method: 'POST', url: '/unlock', as: `customer-${index}`, body: { bookingId: booking.json().id } })),
    );
    await telemetry;
    expect(unlocks.filter((unlock) => unlock.statusCode !== 200).map((unlock) => unlock.body)).toEqual([]);
    for (const [index, device] of devices.entries()) {
      expect(device.received.map((command) => [command.type, command.bookingId])).toEqual([['UNLOCK', bookings[index]!.json().id]]);
    }
    // The burst never cost the server its broker connection (aedes used to drop a persistent session).
    expect(t.fleet.local.mqtt.stats().reconnects).toBe(0);
  });
});

describe('telemetry feeds the vehicle read model', () => {
  let t: TestFleet;
  let device: VirtualVehicle;

  beforeAll(async () => {
    // Short passivation so that the test can see telemetry arrive for a passivated vehicle.
    t = await startTestFleet({ UNLOCK_TIMEOUT_MS: '100', PASSIVATE_AFTER_MS: '200' });
  });
  afterAll(async () => {
    await device?.stop();
    await t?.close();
  });

  it('shows position and battery, filters by distance, and refuses a low battery', async () => {
    await t.registerVehicle('tele-1', 'scooter', { lat: 48.1, lon: 11.5 });
    await t.registerVehicle('tele-far', 'car', { lat: 40.4, lon: -3.7 });
    device = await VirtualVehicle.start({ id: 'tele-1', url: t.fleet.mqttUrl, protocolVersion: 4, credentials: t.credentials('tele-1') });
    await waitFor(() => !t.fleet.local.directory.isActive({ kind: 'vehicle', id: 'tele-1' }), { what: 'tele-1 passivated' });
    // A vehicle actor costs the broker no subscription of its own: only the fleet-wide telemetry, status and
    // replies filters exist, however many vehicles are active; a passivated one no longer receives.
    await waitFor(() => t.fleet.local.mqtt.stats().subscriptions === 3, { what: 'only the fleet-wide subscriptions' });
    const activations = t.fleet.local.directory.stats().activations;
    await device.publishTelemetry({ lat: 52.5219, lon: 13.4132, battery: 9, speedKmh: 0 });
    await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/tele-1' })).json().battery === 9, { what: 'telemetry applied' });

    // Telemetry never woke the passivated vehicle actor.
    expect(t.fleet.local.directory.isActive({ kind: 'vehicle', id: 'tele-1' })).toBe(false);
    expect(t.fleet.local.directory.stats().activations).toBe(activations);

    const vehicle = (await t.request({ method: 'GET', url: '/vehicles/tele-1' })).json();
    expect(vehicle).toMatchObject({ location: { lat: 52.5219, lon: 13.4132 }, battery: 9, online: true });
    expect(vehicle.lastSeenAt).not.toBeNull();

    const near = (await t.request({ method: 'GET', url: '/vehicles?near=52.52,13.41&radiusM=1000' })).json();
    expect(near.items.map((item: { id: string }) => item.id)).toEqual(['tele-1']);

    const booked = await t.book('alice', 'tele-1');
    expect(booked.statusCode, booked.body).toBe(409);
    expect(booked.json().type).toMatch(/vehicle-low-battery$/);

    await device.publishTelemetry({ lat: 52.5219, lon: 13.4132, battery: 80, speedKmh: 0 });
    await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/tele-1' })).json().battery === 80, { what: 'charged' });
    expect((await t.book('alice', 'tele-1')).statusCode).toBe(201);
  });
});
