import mqtt, { type MqttClient } from 'mqtt';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVER_IDENTITY } from '../../adapters/mqtt/device-auth.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../adapters/mqtt/embedded-broker.js';
import { commandsTopic, repliesTopic, statusTopic } from '../../actors/contract/device-topics.js';
import { DevicePool, type CommandRecord, type DevicePoolSettings, type DeviceSpec } from '../../simulator/device-pool.js';
import type { DeviceBehaviour } from '../../simulator/light-device.js';
import { plainBrokerSecrets, signedFor } from '../helpers/devices.js';
import { freePort } from '../helpers/free-port.js';
import { startMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The light device (simulator/light-device.ts: mqtt-packet over a raw socket) against both real brokers:
 * framing and QoS 1 both ways, its last will, keepalive, reconnect with back-off after the broker went
 * away, the persistent session, and refused logins. A plain `mqtt` client plays the server.
 */
interface Broker {
  readonly url: string;
  readonly port: number;
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function aedes(passwords?: Map<string, string>): Promise<Broker> {
  const port = await freePort();
  let broker: EmbeddedBroker | null = null;
  const security = passwords
    ? {
        maxPacketBytes: 65536,
        authenticate: (clientId: string, username: string | undefined, password: Buffer | undefined) =>
          username === 'server' ? SERVER_IDENTITY : username === clientId && passwords.get(clientId) === password?.toString() ? { kind: 'vehicle' as const, id: clientId } : null,
      }
    : ('open' as const);
  const start = async () => {
    broker = await startEmbeddedBroker({ port, security });
  };
  await start();
  const stop = async () => {
    await broker?.close();
    broker = null;
  };
  return { url: `mqtt://127.0.0.1:${port}`, port, start, stop, restart: async () => (await stop(), await start()), close: stop };
}

async function mosquitto(): Promise<Broker> {
  const broker: MosquittoBroker = await startMosquitto({ extraConfig: ['max_queued_messages 100000'] });
  return { url: broker.url, port: broker.port, start: () => broker.restart(), stop: () => broker.stop(), restart: () => broker.restart(), close: () => broker.dispose() };
}

const kinds = [
  { name: 'embedded aedes (MQTT 3.1.1)', protocolVersion: 4 as const, start: () => aedes() },
  { name: 'mosquitto (MQTT 5)', protocolVersion: 5 as const, start: () => mosquitto() },
];

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function settingsFor(broker: Broker, protocolVersion: 4 | 5, overrides: Partial<DevicePoolSettings> = {}): DevicePoolSettings {
  return {
    host: '127.0.0.1',
    port: broker.port,
    protocolVersion,
    keepaliveS: 30,
    sessionExpiryS: 600,
    connectTimeoutMs: 5000,
    replyDelayMs: 0,
    slowReplyMs: 300,
    connectRate: 500,
    reconnectMinMs: 50,
    reconnectMaxMs: 400,
    telemetryMs: 0,
    flapEveryMs: 60_000,
    localAddresses: [],
    centre: { lat: 52.52, lon: 13.41 },
    radiusM: 1000,
    ...overrides,
  };
}

interface Running {
  readonly pool: DevicePool;
  readonly commands: CommandRecord[];
  readonly roundTrips: number[];
}

function runPool(settings: DevicePoolSettings, specs: DeviceSpec[]): Running {
  const commands: CommandRecord[] = [];
  const roundTrips: number[] = [];
  const pool = new DevicePool(settings, specs, { command: (record) => commands.push(record), roundTrip: (ms) => roundTrips.push(ms) });
  pool.start();
  cleanups.push(() => pool.stop());
  return { pool, commands, roundTrips };
}

const spec = (id: string, behaviour: DeviceBehaviour = 'answer', password = 'not-checked'): DeviceSpec => ({ id, password, commandKey: plainBrokerSecrets(id).commandKey, behaviour });

async function server(url: string, protocolVersion: 4 | 5): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId: `server-${randomUUID().slice(0, 8)}`, username: 'server', password: 'x', protocolVersion, reconnectPeriod: 100 });
  cleanups.push(() => client.endAsync(true));
  return client;
}

const command = (vehicleId: string, type: 'UNLOCK' | 'LOCK' = 'UNLOCK', expiresInMs = 30_000) => {
  const issuedAt = new Date();
  return signedFor(vehicleId, {
    commandId: randomUUID(),
    type,
    bookingId: `bk_${randomUUID().slice(0, 8)}`,
    issuedAt: issuedAt.toISOString(),
    expiresAt: new Date(issuedAt.getTime() + expiresInMs).toISOString(),
  });
};

function collect(client: MqttClient): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  client.on('message', (topic, payload) => {
    const list = seen.get(topic) ?? [];
    list.push(payload.toString());
    seen.set(topic, list);
  });
  return seen;
}

describe.each(kinds)('light device on $name', (kind) => {
  async function setup(): Promise<{ broker: Broker; control: MqttClient; seen: Map<string, string[]> }> {
    const broker = await kind.start();
    cleanups.push(() => broker.close());
    const control = await server(broker.url, kind.protocolVersion);
    const seen = collect(control);
    await control.subscribeAsync(['fleet/vehicles/+/replies', 'fleet/vehicles/+/status'], { qos: 1 });
    return { broker, control, seen };
  }

  it('connects, announces itself retained, answers a signed QoS 1 command and gets its PUBACK', async () => {
    const { broker, control, seen } = await setup();
    const ids = Array.from({ length: 20 }, (_, index) => `ld-${index}`);
    const { pool, commands, roundTrips } = runPool(settingsFor(broker, kind.protocolVersion), ids.map((id) => spec(id)));
    await waitFor(() => pool.onlineCount === ids.length, { what: 'every device online', timeoutMs: 10_000 });
    await waitFor(() => ids.every((id) => seen.get(statusTopic(id))?.some((s) => JSON.parse(s).online === true)), { what: 'every device announced online' });

    const unlock = command('ld-3');
    const correlationData = Buffer.from('corr-1');
    await control.publishAsync(commandsTopic('ld-3'), JSON.stringify(unlock), { qos: 1, ...(kind.protocolVersion === 5 && { properties: { correlationData } }) });
    const reply = await waitFor(() => seen.get(repliesTopic('ld-3'))?.[0], { what: 'the reply' });
    expect(JSON.parse(reply)).toMatchObject({ commandId: unlock.commandId, type: 'UNLOCKED' });
    expect(commands).toEqual([expect.objectContaining({ vehicleId: 'ld-3', bookingId: unlock.bookingId, type: 'UNLOCK', verdict: 'ok' })]);
    expect(commands[0]!.deliveryMs).toBeGreaterThanOrEqual(0);
    // The announcement and the reply were acknowledged by the broker (QoS 1).
    await waitFor(() => pool.stats().acks >= ids.length + 1, { what: 'PUBACKs' });
    expect(roundTrips.length).toBe(pool.stats().acks);
    expect(pool.devices.every((device) => device.unacknowledged === 0)).toBe(true);
    expect(pool.stats()).toMatchObject({ devices: 20, online: 20, connects: 20, reconnects: 0, refused: 0, replies: 1 });
  });

  it('drops a badly signed or expired command without answering, and answers a repeated one the same way', async () => {
    const { broker, control, seen } = await setup();
    const { pool, commands } = runPool(settingsFor(broker, kind.protocolVersion), [spec('ld-sig')]);
    await waitFor(() => pool.onlineCount === 1, { what: 'device online' });
    const forged = { ...command('ld-sig'), sig: signedFor('ld-other', command('ld-other')).sig };
    const expired = command('ld-sig', 'UNLOCK', -1000);
    const good = command('ld-sig', 'LOCK');
    await control.publishAsync(commandsTopic('ld-sig'), JSON.stringify(forged), { qos: 1 });
    await control.publishAsync(commandsTopic('ld-sig'), JSON.stringify(expired), { qos: 1 });
    await control.publishAsync(commandsTopic('ld-sig'), '{not json', { qos: 1 });
    await control.publishAsync(commandsTopic('ld-sig'), JSON.stringify(good), { qos: 1 });
    await control.publishAsync(commandsTopic('ld-sig'), JSON.stringify(good), { qos: 1 });
    await waitFor(() => commands.length === 5, { what: 'five commands seen' });
    expect(commands.map((record) => record.verdict)).toEqual(['bad-signature', 'expired', 'malformed', 'ok', 'ok']);
    await waitFor(() => (seen.get(repliesTopic('ld-sig'))?.length ?? 0) >= 2, { what: 'two replies' });
    const replies = seen.get(repliesTopic('ld-sig'))!.map((s) => JSON.parse(s) as { commandId: string; type: string; at: string });
    expect(replies.map((reply) => reply.commandId)).toEqual([good.commandId, good.commandId]);
    expect(replies[0]).toEqual(replies[1]);
  });

  it('leaves its last will when the link drops, comes back with back-off, and gets a command sent while it was away', async () => {
    const { broker, control, seen } = await setup();
    const { pool } = runPool(settingsFor(broker, kind.protocolVersion), [spec('ld-will')]);
    await waitFor(() => pool.onlineCount === 1, { what: 'device online' });
    const statusCount = () => seen.get(statusTopic('ld-will'))?.length ?? 0;
    const before = statusCount();
    // Stop the device from coming back at once, so the command below waits in its session.
    const device = pool.devices[0]!;
    device.failures = 5;
    device.crash();
    await waitFor(() => seen.get(statusTopic('ld-will'))!.slice(before).some((s) => JSON.parse(s).online === false), { what: 'the last will' });
    const queued = command('ld-will');
    await control.publishAsync(commandsTopic('ld-will'), JSON.stringify(queued), { qos: 1 });
    await waitFor(() => pool.onlineCount === 1 && pool.stats().reconnects === 1, { what: 'the device back', timeoutMs: 10_000 });
    const reply = await waitFor(() => seen.get(repliesTopic('ld-will'))?.[0], { what: 'the reply to the queued command' });
    expect(JSON.parse(reply)).toMatchObject({ commandId: queued.commandId, type: 'UNLOCKED' });
    expect(pool.stats()).toMatchObject({ drops: 1, reconnects: 1 });
  });

  it('keeps an idle connection alive with PINGREQs', async () => {
    const { broker } = await setup();
    const { pool } = runPool(settingsFor(broker, kind.protocolVersion, { keepaliveS: 1 }), [spec('ld-ping')]);
    await waitFor(() => pool.onlineCount === 1, { what: 'device online' });
    // The broker closes a client silent for 1.5 keepalives; three pings span well over that.
    await waitFor(() => pool.devices[0]!.pings >= 3, { what: 'three pings', timeoutMs: 10_000 });
    expect(pool.stats()).toMatchObject({ online: 1, drops: 0, connects: 1 });
  });

  it('reconnects the whole fleet after the broker restarts', async () => {
    const { broker } = await setup();
    const ids = Array.from({ length: 30 }, (_, index) => `ld-r${index}`);
    const { pool } = runPool(settingsFor(broker, kind.protocolVersion), ids.map((id) => spec(id)));
    await waitFor(() => pool.onlineCount === ids.length, { what: 'every device online', timeoutMs: 10_000 });
    await broker.stop();
    await waitFor(() => pool.onlineCount === 0, { what: 'every device offline' });
    // While the broker is away, attempts fail and back off.
    await waitFor(() => pool.stats().connectFailures >= ids.length, { what: 'failed attempts' });
    await broker.start();
    await waitFor(() => pool.onlineCount === ids.length, { what: 'every device back', timeoutMs: 15_000 });
    expect(pool.stats()).toMatchObject({ drops: ids.length, reconnects: ids.length });
    // Fresh control connection: the old one may still be reconnecting.
    const control = await server(broker.url, kind.protocolVersion);
    const seen = collect(control);
    await control.subscribeAsync('fleet/vehicles/+/replies', { qos: 1 });
    await control.publishAsync(commandsTopic('ld-r7'), JSON.stringify(command('ld-r7')), { qos: 1 });
    await waitFor(() => seen.get(repliesTopic('ld-r7'))?.length === 1, { what: 'a reply after the restart' });
  });
});

describe('light device source addresses', () => {
  it('connects from the loopback addresses it is given, in turn', async () => {
    const broker = await aedes();
    cleanups.push(() => broker.close());
    const ids = Array.from({ length: 6 }, (_, index) => `ld-src${index}`);
    const { pool } = runPool(settingsFor(broker, 4, { localAddresses: ['127.0.0.2', '127.0.0.3'] }), ids.map((id) => spec(id)));
    await waitFor(() => pool.onlineCount === ids.length, { what: 'every device online' });
    expect(new Set(pool.devices.map((device) => device.localAddress))).toEqual(new Set(['127.0.0.2', '127.0.0.3']));
  });
});

describe('light device credentials (embedded aedes with device logins)', () => {
  it('logs in with its password; a wrong one is refused and retried with back-off', async () => {
    const broker = await aedes(new Map([['ld-ok', 'right'], ['ld-bad', 'right']]));
    cleanups.push(() => broker.close());
    const { pool } = runPool(settingsFor(broker, 4), [spec('ld-ok', 'answer', 'right'), spec('ld-bad', 'answer', 'wrong')]);
    await waitFor(() => pool.onlineCount === 1, { what: 'the right login online' });
    await waitFor(() => pool.stats().refused >= 2, { what: 'the wrong login refused twice' });
    expect(pool.devices.find((device) => device.id === 'ld-bad')!.isOnline).toBe(false);
    expect(pool.devices.find((device) => device.id === 'ld-bad')!.failures).toBeGreaterThanOrEqual(2);
  });
});
