import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../runtime/ground/logger.js';
import { MqttConnection } from '../../adapters/mqtt/connection.js';
import { parseDeviceReply, type DeviceReply, type UnsignedDeviceCommand } from '../../actors/contract/device-protocol.js';
import { plainBrokerSecrets, signedFor } from '../helpers/devices.js';
import { commandsTopic, repliesTopic, statusTopic } from '../../actors/contract/device-topics.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startMosquitto, testBrokers, type MosquittoBroker } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('silent');
const disposals: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const dispose of disposals.splice(0).reverse()) await dispose();
});

function unlockCommand(expiresInMs = 30_000): UnsignedDeviceCommand {
  const now = Date.now();
  return {
    commandId: randomUUID(),
    type: 'UNLOCK',
    bookingId: 'b-1',
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + expiresInMs).toISOString(),
  };
}

async function connect(url: string, protocolVersion: 4 | 5, clientId = `server-${randomUUID()}`): Promise<MqttConnection> {
  const connection = await MqttConnection.connect({ url, protocolVersion, clientId, logger, reconnectPeriodMs: 250 });
  disposals.push(() => connection.close());
  return connection;
}

async function startVehicle(id: string, url: string, protocolVersion: 4 | 5): Promise<VirtualVehicle> {
  const vehicle = await VirtualVehicle.start({ id, url, protocolVersion, credentials: plainBrokerSecrets(id), reconnectPeriodMs: 250 });
  disposals.push(() => vehicle.stop());
  return vehicle;
}

async function collectReplies(connection: MqttConnection, vehicleId: string): Promise<DeviceReply[]> {
  const heard: DeviceReply[] = [];
  await connection.subscribe(repliesTopic(vehicleId), (_topic, payload) => {
    const reply = parseDeviceReply(payload);
    if (reply.ok) heard.push(reply.value);
  });
  return heard;
}

async function startPrivateMosquitto(persistence: boolean): Promise<MosquittoBroker> {
  const broker = await startMosquitto({ persistence });
  disposals.push(() => broker.dispose());
  return broker;
}

const reconnected = (connection: MqttConnection, times: number) => () => connection.isConnected && connection.stats().reconnects >= times;

describe.each(testBrokers)('persistent session on $name', ({ protocolVersion, start }) => {
  it('keeps a QoS 1 reply published while the server was briefly disconnected', async () => {
    const broker = await start();
    disposals.push(() => broker.close());
    const clientId = `server-${randomUUID()}`;
    const server = await MqttConnection.connect({ url: broker.url, protocolVersion, clientId, logger, reconnectPeriodMs: 1000 });
    disposals.push(() => server.close());
    const heard = await collectReplies(server, 'v-queued');
    const vehicle = await startVehicle('v-queued', broker.url, protocolVersion);
    const transitions: boolean[] = [];
    server.onConnectionChange((connected) => transitions.push(connected));

    // Session take-over: a client with the same id (and no clean start) pushes the server off the
    // broker and leaves at once, keeping the session; the server reconnects a second later.
    const intruder = await mqtt.connectAsync(broker.url, {
      clientId,
      protocolVersion,
      clean: false,
      reconnectPeriod: 0,
      ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
    });
    await intruder.endAsync();
    await waitFor(() => !server.isConnected, { what: 'the server to notice the take-over' });

    const unlock = unlockCommand();
    await vehicle.publishRaw('replies', JSON.stringify({ commandId: unlock.commandId, type: 'UNLOCKED', at: new Date().toISOString() }));
    // The broker acknowledged the reply while the server was away: only the session can deliver it.
    expect(server.isConnected).toBe(false);

    await waitFor(() => heard.length === 1, { what: 'the queued reply after the reconnect' });
    expect(heard[0]).toMatchObject({ commandId: unlock.commandId, type: 'UNLOCKED' });
    // Up again once the re-subscription is acknowledged, which may be just after the queued reply came in.
    await waitFor(() => transitions.length === 2, { what: 'the connection to count as up again' });
    expect(transitions).toEqual([false, true]);
  });
});

describe('mosquitto restarts', () => {
  it('reconnects after a restart without persistence, subscribes again, and the round trip works', async () => {
    const broker = await startPrivateMosquitto(false);
    const server = await connect(broker.url, 5);
    const heard = await collectReplies(server, 'v-restart');
    const statuses: string[] = [];
    await server.subscribe(statusTopic('v-restart'), (_topic, payload) => void statuses.push(payload.toString()));
    const vehicle = await startVehicle('v-restart', broker.url, 5);
    await waitFor(() => statuses.length === 1, { what: 'the first online status' });

    await broker.restart();
    await waitFor(reconnected(server, 1), { what: 'the server to reconnect', timeoutMs: 10_000 });
    // The broker forgot everything; the vehicle announces itself again and the server hears it only
    // because it subscribed again. (Mosquitto sends the vehicle's last will as it shuts down, so an
    // `online: false` may come in between.)
    await waitFor(() => statuses.length >= 2 && JSON.parse(statuses.at(-1)!).online === true, {
      what: 'online:true after the restart',
      timeoutMs: 10_000,
    });

    const unlock = unlockCommand();
    await server.publish(commandsTopic(vehicle.id), signedFor(vehicle.id, unlock), { messageExpirySeconds: 30, correlationData: unlock.commandId });
    await waitFor(() => heard.length === 1, { what: 'UNLOCKED after the restart' });
    expect(heard[0]).toMatchObject({ commandId: unlock.commandId, type: 'UNLOCKED' });
  });

  it('subscribes again even when a broker restored an old session that lacks recent subscriptions', async () => {
    const broker = await startPrivateMosquitto(true);
    const server = await connect(broker.url, 5);
    const peer = await connect(broker.url, 5);
    const early: string[] = [];
    const recent: string[] = [];
    await server.subscribe('fleet/vehicles/early/replies', (_topic, payload) => void early.push(payload.toString()));

    await broker.restart(); // clean stop: the session with `early` is saved
    await waitFor(reconnected(server, 1), { what: 'the first reconnect', timeoutMs: 10_000 });
    await waitFor(reconnected(peer, 1), { what: 'the peer to reconnect', timeoutMs: 10_000 });
    await server.subscribe('fleet/vehicles/recent/replies', (_topic, payload) => void recent.push(payload.toString()));

    await broker.kill(); // nothing saved since: the restored session knows `early` only
    await broker.restart();
    await waitFor(reconnected(server, 2), { what: 'the second reconnect', timeoutMs: 10_000 });
    await waitFor(reconnected(peer, 2), { what: 'the peer to reconnect again', timeoutMs: 10_000 });

    await peer.publish('fleet/vehicles/recent/replies', { n: 1 });
    await peer.publish('fleet/vehicles/early/replies', { n: 2 });
    await waitFor(() => recent.length === 1 && early.length === 1, { what: 'both messages after the restore' });
    expect(recent).toEqual(['{"n":1}']);
    expect(early).toEqual(['{"n":2}']);
  });

  it('applies subscribe and unsubscribe made while the broker was down once it is back', async () => {
    const broker = await startPrivateMosquitto(true);
    const server = await connect(broker.url, 5);
    const peer = await connect(broker.url, 5);
    const released: string[] = [];
    const added: string[] = [];
    const stopReleased = await server.subscribe('fleet/vehicles/gone/replies', (_topic, payload) => void released.push(payload.toString()));

    await broker.stop(); // saved: the session still holds `gone`
    await waitFor(() => !server.isConnected && !peer.isConnected, { what: 'both clients to notice the broker is down' });
    // Neither call waits for the broker.
    await stopReleased();
    await server.subscribe('fleet/vehicles/added/replies', (_topic, payload) => void added.push(payload.toString()));

    await broker.restart();
    await waitFor(() => reconnected(server, 1)() && reconnected(peer, 1)(), { what: 'both clients back', timeoutMs: 10_000 });
    const unroutedBefore = server.stats().messagesUnrouted;
    await peer.publish('fleet/vehicles/gone/replies', { n: 1 });
    await peer.publish('fleet/vehicles/added/replies', { n: 2 });
    await waitFor(() => added.length === 1, { what: 'the message on the filter added while down' });
    expect(added).toEqual(['{"n":2}']);
    expect(released).toEqual([]);
    // The restored session's `gone` was unsubscribed on reconnect, so the broker did not even send it.
    expect(server.stats().messagesUnrouted).toBe(unroutedBefore);
  });

  it('never delivers a command whose MQTT 5 message expiry passed while the vehicle was offline', async () => {
    const broker = await startPrivateMosquitto(false);
    const server = await connect(broker.url, 5);
    const vehicle = await startVehicle('v-expiry', broker.url, 5);
    await vehicle.goOffline(); // clean disconnect; its persistent session keeps queueing QoS 1 commands

    // Far-future expiresAt: only the broker's message expiry can stop this one.
    const expiring = unlockCommand(60_000);
    await server.publish(commandsTopic(vehicle.id), signedFor(vehicle.id, expiring), { messageExpirySeconds: 1, correlationData: expiring.commandId });
    const lasting = unlockCommand(60_000);
    await server.publish(commandsTopic(vehicle.id), signedFor(vehicle.id, lasting), { messageExpirySeconds: 60, correlationData: lasting.commandId });
    // A real wait: expiry is about time passing. Mosquitto counts whole seconds, so 1 s can take up to 2.
    await new Promise((resolve) => setTimeout(resolve, 2100));

    const next = vehicle.nextCommand();
    await vehicle.comeBack();
    // Queued messages are delivered in order: had the expired one survived, it would come first.
    expect((await next).commandId).toBe(lasting.commandId);
    expect(vehicle.received.map((command) => command.commandId)).toEqual([lasting.commandId]);
  });
});
