import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceCredentials } from '../../actors/contract/views.js';
import { commandsTopic, repliesTopic, statusTopic, telemetryTopic } from '../../actors/contract/device-topics.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { startMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Issue 10 against real brokers: the embedded aedes (the server's own BrokerSecurity) and a private
 * Mosquitto with the dynamic-security plugin, provisioned by the server (MQTT_PROVISIONING=dynsec).
 * Attacks are made by real clients with real (own) credentials; "denied" is asserted by what the
 * server and other clients did NOT see or do, because Mosquitto drops a refused publish silently.
 */
/** Not events.once: that rejects on the ECONNRESET a refused client reports before it closes. */
const closing = (client: MqttClient): Promise<void> => new Promise((resolve) => client.once('close', () => resolve()));

interface Setup {
  readonly name: string;
  readonly protocolVersion: 4 | 5;
  start(env: Record<string, string>): Promise<{ t: TestFleet; stop: () => Promise<void> }>;
}

const setups: readonly Setup[] = [
  {
    name: 'embedded aedes',
    protocolVersion: 4,
    start: async (env) => {
      const t = await startTestFleet(env);
      return { t, stop: () => t.close() };
    },
  },
  {
    name: 'mosquitto with dynamic security',
    protocolVersion: 5,
    start: async (env) => {
      const broker: MosquittoBroker = await startMosquitto({ dynsec: true });
      const server = broker.dynsec!.server;
      const t = await startTestFleet({ MQTT_URL: broker.url, MQTT_USERNAME: server.username, MQTT_PASSWORD: server.password, MQTT_PROVISIONING: 'dynsec', ...env });
      return {
        t,
        stop: async () => {
          await t.close();
          await broker.dispose();
        },
      };
    },
  },
];

describe.each(setups)('device security on $name', (setup) => {
  let t: TestFleet;
  let stop: () => Promise<void>;
  const clients: MqttClient[] = [];
  const devices: VirtualVehicle[] = [];
  let seq = 0;

  beforeAll(async () => {
    ({ t, stop } = await setup.start({ UNLOCK_TIMEOUT_MS: '1500' }));
  });
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
  });
  afterAll(async () => stop?.());

  const url = () => t.fleet.mqttUrl;

  async function registered(prefix = 'sec'): Promise<DeviceCredentials> {
    const id = `${prefix}-${setup.protocolVersion}-${(seq += 1)}`;
    const response = await t.registerVehicle(id);
    expect(response.statusCode, response.body).toBe(201);
    return t.credentials(id);
  }

  /** Resolves with a connected client, rejects with the CONNACK refusal; never reconnects on its own. */
  async function connect(options: IClientOptions): Promise<MqttClient> {
    const client = mqtt.connect(url(), { protocolVersion: setup.protocolVersion, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    // A connection the broker closes for a refused packet reports ECONNRESET: expected here.
    client.on('error', () => undefined);
    return client;
  }

  const login = (credentials: DeviceCredentials, extra: IClientOptions = {}) =>
    connect({ clientId: credentials.username, username: credentials.username, password: credentials.password, ...extra });

  async function online(credentials: DeviceCredentials, behaviour: Parameters<typeof VirtualVehicle.start>[0]['behaviour'] = {}): Promise<VirtualVehicle> {
    const device = await VirtualVehicle.start({ id: credentials.username, url: url(), protocolVersion: setup.protocolVersion, credentials, behaviour });
    devices.push(device);
    await waitFor(async () => (await vehicle(credentials.username)).online === true, { what: `${credentials.username} online` });
    return device;
  }

  const vehicle = async (id: string) => (await t.request({ method: 'GET', url: `/vehicles/${id}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null; battery: number | null; lastSeenAt: string | null }>();

  /** A publish the broker may refuse: aedes closes the connection, Mosquitto drops it (MQTT 5: PUBACK 0x87). */
  async function attempt(client: MqttClient, topic: string, payload: string, retain = false): Promise<void> {
    if (!client.connected) return;
    await Promise.race([client.publishAsync(topic, payload, { qos: 1, retain }).catch(() => undefined), closing(client)]);
  }

  /** Subscribes as the server would see it, through the server's own connection. */
  async function overhear(filter: string): Promise<{ heard: Array<{ topic: string; payload: string }>; stop: () => Promise<void> }> {
    const heard: Array<{ topic: string; payload: string }> = [];
    const stopListening = await t.fleet.local.mqtt.subscribe(filter, (topic, payload) => void heard.push({ topic, payload: payload.toString() }));
    return { heard, stop: stopListening };
  }

  it('refuses anonymous, wrong-password, foreign-client-id and server-client-id logins; accepts the issued one', async () => {
    const a = await registered();
    await expect(connect({ clientId: a.username })).rejects.toThrow();
    await expect(login({ ...a, password: `${a.password}x` })).rejects.toThrow();
    await expect(login(a, { clientId: `${a.username}-other` })).rejects.toThrow();
    await expect(login(a, { clientId: 'fleetactors-s0' })).rejects.toThrow();
    const accepted = await login(a);
    expect(accepted.connected).toBe(true);
  });

  it('never lets a last will speak for another vehicle', async () => {
    const a = await registered();
    const b = await registered();
    const device = await online(b);
    const spy = await overhear(`fleet/vehicles/${b.username}/#`);
    try {
      const will = { topic: statusTopic(b.username), payload: Buffer.from('{"online":false}'), qos: 1 as const, retain: true };
      // aedes refuses the CONNECT; Mosquitto 2.0 accepts it and checks the ACL when it would send the will.
      const session = await login(a, { will }).catch(() => null);
      if (setup.protocolVersion === 4) expect(session).toBeNull();
      if (session) {
        const closed = closing(session);
        session.stream.destroy();
        await closed;
      }
      // A marker from B itself, after the will would have gone out.
      await device.publishTelemetry({ lat: 52.5, lon: 13.4, battery: 55, speedKmh: 0 });
      await waitFor(() => spy.heard.some((message) => message.topic === telemetryTopic(b.username)), { what: 'B\'s own telemetry' });
      expect(spy.heard.filter((message) => message.topic === statusTopic(b.username) && !message.payload.includes('"online":true'))).toEqual([]);
      expect((await vehicle(b.username)).online).toBe(true);
    } finally {
      await spy.stop();
    }
    expect((await login(a, { will: { topic: statusTopic(a.username), payload: Buffer.from('{"online":false}'), qos: 1, retain: true } })).connected).toBe(true);
  });

  it('lets a vehicle subscribe only to its own commands: not to another\'s, not to #, not to $SYS', async () => {
    const a = await registered();
    const b = await registered();
    const client = await login(a);
    for (const filter of [commandsTopic(b.username), 'fleet/#', '#', '$SYS/#']) {
      // MQTT 3.1.1 SUBACK 0x80 or MQTT 5 0x87; mqtt.js rejects on the latter.
      const qos = await client.subscribeAsync(filter, { qos: 1 }).then((granted) => granted[0]!.qos, () => 128);
      expect(qos, filter).toBeGreaterThanOrEqual(128);
    }
    const own = await client.subscribeAsync(commandsTopic(a.username), { qos: 1 });
    expect(own[0]!.qos).toBe(1);
  });

  it('drops what a vehicle publishes for another vehicle or as a command: nobody hears it, nothing changes', async () => {
    const a = await registered();
    const b = await registered();
    const device = await online(b);
    const spy = await overhear(`fleet/vehicles/${b.username}/#`);
    const own = await overhear(commandsTopic(a.username));
    try {
      const forgedAt = new Date().toISOString();
      for (const [topic, payload, retain] of [
        [statusTopic(b.username), JSON.stringify({ online: false, at: forgedAt }), true],
        [telemetryTopic(b.username), JSON.stringify({ lat: 1, lon: 1, battery: 3, speedKmh: 0, at: forgedAt }), false],
        [repliesTopic(b.username), JSON.stringify({ commandId: 'x', type: 'UNLOCKED', at: forgedAt }), false],
        [commandsTopic(b.username), JSON.stringify({ commandId: 'x', type: 'UNLOCK', bookingId: 'b', issuedAt: forgedAt, expiresAt: forgedAt, sig: 'AAAA' }), false],
        [commandsTopic(a.username), JSON.stringify({ commandId: 'y', type: 'UNLOCK', bookingId: 'b', issuedAt: forgedAt, expiresAt: forgedAt, sig: 'AAAA' }), false],
      ] as const) {
        // A fresh connection per attempt: aedes closes the connection after a refused publish.
        await attempt(await login(a), topic, payload, retain);
      }
      // A marker from B itself, through the same broker, after every forged publish was handled.
      await device.publishTelemetry({ lat: 52.5, lon: 13.4, battery: 77, speedKmh: 0 });
      await waitFor(() => spy.heard.some((message) => message.topic === telemetryTopic(b.username)), { what: 'B\'s own telemetry' });
      expect(spy.heard.filter((message) => !message.payload.includes('"battery":77') && !message.payload.includes('"online":true'))).toEqual([]);
      expect(own.heard).toEqual([]);
      expect(device.received).toEqual([]);
      await waitFor(async () => (await vehicle(b.username)).battery === 77, { what: 'B\'s telemetry applied' });
      expect((await vehicle(b.username)).online).toBe(true);
    } finally {
      await spy.stop();
      await own.stop();
    }
  });

  it('does not complete B\'s unlock on a forged UNLOCKED from A, on B\'s topic or on A\'s own', async () => {
    const a = await registered();
    const b = await registered();
    const device = await online(b, { mode: 'silent' });
    const booked = await t.book('mallory-victim', b.username);
    expect(booked.statusCode, booked.body).toBe(201);
    const arrived = device.nextCommand();
    const unlock = t.request({ method: 'POST', url: `/bookings/${booked.json().id}/unlock`, as: 'mallory-victim' });
    const command = await arrived;
    // A learnt the commandId (the worst case): it still cannot answer for B.
    const forged = JSON.stringify({ commandId: command.commandId, type: 'UNLOCKED', at: new Date().toISOString() });
    await attempt(await login(a), repliesTopic(b.username), forged);
    await attempt(await login(a), repliesTopic(a.username), forged);
    const answer = await unlock;
    expect(answer.statusCode, answer.body).toBe(504);
    const booking = await t.request({ method: 'GET', url: `/bookings/${booked.json().id}`, as: 'mallory-victim' });
    expect(booking.json().status).toBe('CONFIRMED');
  });

  it('rotation cuts the old password off and closes the open session', async () => {
    const a = await registered();
    const session = await login(a);
    const closed = closing(session);
    const rotated = await t.request({ method: 'POST', url: `/vehicles/${a.username}/credentials`, as: 'ops', role: 'operator' });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const fresh = rotated.json<{ vehicleId: string; credentials: DeviceCredentials }>().credentials;
    expect(fresh.username).toBe(a.username);
    expect(fresh.password).not.toBe(a.password);
    // Derived from the device secret and the id: rotating the password keeps the command key.
    expect(fresh.commandKey).toBe(a.commandKey);
    await closed;
    await expect(login(a)).rejects.toThrow();
    expect((await login(fresh)).connected).toBe(true);
    const unknown = await t.request({ method: 'POST', url: '/vehicles/nobody-here/credentials', as: 'ops', role: 'operator' });
    expect(unknown.statusCode).toBe(404);
    const customer = await t.request({ method: 'POST', url: `/vehicles/${a.username}/credentials`, as: 'alice' });
    expect(customer.statusCode).toBe(403);
  });

  it('refuses a 1 MB packet and stays up for everyone else', async () => {
    const a = await registered();
    // MQTT 3.1.1 on both: an MQTT 5 client would itself refuse to exceed the broker's advertised maximum.
    const client = await login(a, { protocolVersion: 4 });
    const closed = closing(client);
    client.publish(telemetryTopic(a.username), Buffer.alloc(1024 * 1024, 0x20), { qos: 0 });
    await closed;
    const b = await registered();
    await online(b);
    expect((await t.request({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect(t.fleet.local.mqtt.stats().reconnects).toBe(0);
  });

  it('does not store a future-dated status or telemetry', async () => {
    const a = await registered();
    const device = await online(a);
    const rejected = t.fleet.local.telemetry.stats().rejected;
    await device.publishRaw('status', JSON.stringify({ online: false, at: '2099-01-01T00:00:00.000Z' }), { retain: true });
    await device.publishTelemetry({ lat: 1, lon: 1, battery: 5, speedKmh: 0, at: '2099-01-01T00:00:00.000Z' });
    await waitFor(() => t.fleet.local.telemetry.stats().rejected >= rejected + 2, { what: 'both future-dated messages rejected' });
    const after = await vehicle(a.username);
    expect(after.online).toBe(true);
    expect(after.battery).toBeNull();
    // Real telemetry is not shadowed by the refused one.
    await device.publishTelemetry({ lat: 52.5, lon: 13.4, battery: 64, speedKmh: 0 });
    await waitFor(async () => (await vehicle(a.username)).battery === 64, { what: 'real telemetry applied' });
    expect(Date.parse((await vehicle(a.username)).lastSeenAt!)).toBeLessThanOrEqual(Date.now());
  });

  it('lets an operator clear a vehicle\'s presence: online goes back to null, also on the broker', async () => {
    const a = await registered();
    const device = await online(a);
    await device.goOffline();
    await waitFor(async () => (await vehicle(a.username)).online === false, { what: 'offline' });
    const cleared = await t.request({ method: 'DELETE', url: `/vehicles/${a.username}/presence`, as: 'ops', role: 'operator' } as never);
    expect(cleared.statusCode, cleared.body).toBe(202);
    await waitFor(async () => (await vehicle(a.username)).online === null, { what: 'presence cleared' });
    // The retained status is gone too: a new subscriber (e.g. after a restart) does not get it back.
    const late = await overhear(statusTopic(a.username));
    try {
      const booked = await t.book('clear-customer', a.username);
      expect(booked.statusCode, booked.body).toBe(201);
      expect(late.heard).toEqual([]);
    } finally {
      await late.stop();
    }
  });

  it('a vehicle drops a command with a bad or missing signature, without answering', async () => {
    const a = await registered();
    const device = await online(a);
    const now = Date.now();
    const command = { commandId: 'forged-1', type: 'UNLOCK', bookingId: 'b-forged', issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 30_000).toISOString() };
    // Published with the server's own login: what a compromised broker (or stolen server login) could do.
    await t.fleet.local.mqtt.publish(commandsTopic(a.username), { ...command, sig: 'c2lnbmVkIGJ5IG5vYm9keQ' });
    await t.fleet.local.mqtt.publish(commandsTopic(a.username), { ...command, commandId: 'forged-2', sig: undefined });
    await waitFor(() => device.dropped.length >= 2, { what: 'forged commands dropped' });
    expect(device.dropped.map((dropped) => dropped.reason)).toEqual(['bad-signature', 'malformed']);
    expect(device.replies).toEqual([]);
    expect(device.locked).toBe(true);
  });
});

describe('demo vehicles (FLEET_SEED) on the development secret', () => {
  it('log in with derived credentials, only while the server runs on the dev secret', async () => {
    const { demoDeviceCredentials } = await import('../../actors/contract/demo-credentials.js');
    const dev = await startTestFleet({ FLEET_SEED: '2' });
    const file = dev.dbFile;
    try {
      const device = await VirtualVehicle.start({ id: 'demo-0001', url: dev.fleet.mqttUrl, protocolVersion: 4, credentials: demoDeviceCredentials('demo-0001') });
      await device.stop();
    } finally {
      await dev.fleet.close();
    }
    // Same database, a real secret: the derivable passwords are gone.
    const real = await startTestFleet({ FLEET_SEED: '2', FLEET_JWT_SECRET: 'a-real-secret-for-this-test-only' }, {}, file);
    try {
      await expect(
        VirtualVehicle.start({ id: 'demo-0001', url: real.fleet.mqttUrl, protocolVersion: 4, credentials: demoDeviceCredentials('demo-0001'), connectTimeoutMs: 2000 }),
      ).rejects.toThrow();
    } finally {
      await real.close();
      await dev.close();
    }
  });
});
