import mqtt, { type IConnackPacket } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../runtime/ground/logger.js';
import { MqttConnectError, MqttConnection } from '../../adapters/mqtt/connection.js';
import { startEmbeddedBroker } from '../../adapters/mqtt/embedded-broker.js';
import { freePort } from '../helpers/free-port.js';
import { testBrokers, type TestBroker } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('silent');
let clientSeq = 0;

describe.each(testBrokers)('MqttConnection and its topic router on $name', ({ protocolVersion, start }) => {
  let broker: TestBroker;
  let server: MqttConnection;
  let peer: MqttConnection;

  beforeAll(async () => {
    broker = await start();
    server = await MqttConnection.connect({ url: broker.url, protocolVersion, clientId: `server-${(clientSeq += 1)}`, logger });
    peer = await MqttConnection.connect({ url: broker.url, protocolVersion, clientId: `peer-${(clientSeq += 1)}`, logger });
  });

  afterAll(async () => {
    await server?.close();
    await peer?.close();
    await broker?.close();
  });

  it('routes exact topics and wildcard filters, each message once per handler', async () => {
    const exact: string[] = [];
    const wildcard: string[] = [];
    const stopExact = await server.subscribe('fleet/vehicles/r1/status', (_topic, payload) => void exact.push(payload.toString()));
    const stopWildcard = await server.subscribe('fleet/vehicles/+/status', (topic, payload) => void wildcard.push(`${topic} ${payload.toString()}`));

    await peer.publish('fleet/vehicles/r1/status', { online: true });
    await peer.publish('fleet/vehicles/r2/status', { online: false });
    await waitFor(() => wildcard.length === 2, { what: 'both status messages at the wildcard handler' });
    await waitFor(() => exact.length === 1, { what: 'r1 status at the exact handler' });
    expect(exact).toEqual(['{"online":true}']);
    expect(wildcard).toEqual(['fleet/vehicles/r1/status {"online":true}', 'fleet/vehicles/r2/status {"online":false}']);

    await stopExact();
    await stopWildcard();
  });

  it('stops delivering after unsubscribe, and only the last handler of a filter unsubscribes at the broker', async () => {
    const topic = 'fleet/vehicles/r3/replies';
    const first: number[] = [];
    const second: number[] = [];
    const stopFirst = await server.subscribe(topic, (_t, payload) => void first.push(JSON.parse(payload.toString()).n));
    const stopSecond = await server.subscribe(topic, (_t, payload) => void second.push(JSON.parse(payload.toString()).n));

    await peer.publish(topic, { n: 1 });
    await waitFor(() => first.length === 1 && second.length === 1, { what: 'message 1 at both handlers' });

    await stopFirst();
    await peer.publish(topic, { n: 2 });
    await waitFor(() => second.length === 2, { what: 'message 2 at the remaining handler' });

    await stopSecond();
    expect(server.stats().subscriptions).toBe(0);
    // Sentinel on another topic: once it arrives, message 3 (published before it) would have too.
    const sentinel: number[] = [];
    const stopSentinel = await server.subscribe('fleet/vehicles/r3/status', () => void sentinel.push(1));
    const unroutedBefore = server.stats().messagesUnrouted;
    await peer.publish(topic, { n: 3 });
    await peer.publish('fleet/vehicles/r3/status', { online: true });
    await waitFor(() => sentinel.length === 1, { what: 'the sentinel' });
    expect(first).toEqual([1]);
    expect(second).toEqual([1, 2]);
    // The broker did not even send message 3: the subscription is gone there too.
    expect(server.stats().messagesUnrouted).toBe(unroutedBefore);
    await stopSentinel();
  });

  it('keeps delivering to other handlers when one throws', async () => {
    const received: string[] = [];
    const stopBad = await server.subscribe('fleet/vehicles/r4/replies', () => {
      throw new Error('handler bug');
    });
    const stopGood = await server.subscribe('fleet/vehicles/+/replies', (topic) => void received.push(topic));
    const errorsBefore = server.stats().handlerErrors;

    await peer.publish('fleet/vehicles/r4/replies', { n: 1 });
    await peer.publish('fleet/vehicles/r4/replies', { n: 2 });
    await waitFor(() => received.length === 2, { what: 'both messages at the healthy handler' });
    expect(server.stats().handlerErrors).toBe(errorsBefore + 2);
    expect(server.isConnected).toBe(true);

    await stopBad();
    await stopGood();
  });

  it('subscribes and unsubscribes 1000 exact topics cheaply and cleanly', async () => {
    const count = 1000;
    const topics = Array.from({ length: count }, (_, index) => `fleet/vehicles/bulk-${index}/replies`);
    const hits = new Map<string, number>();
    const handler = (topic: string): void => void hits.set(topic, (hits.get(topic) ?? 0) + 1);

    const serialStart = performance.now();
    const stops: Array<() => Promise<void>> = [];
    for (const topic of topics) stops.push(await server.subscribe(topic, handler));
    const serialSubscribed = performance.now();
    for (const stop of stops.splice(0)) await stop();
    const serialDone = performance.now();

    const parallelStart = performance.now();
    stops.push(...(await Promise.all(topics.map((topic) => server.subscribe(topic, handler)))));
    const parallelSubscribed = performance.now();
    expect(server.stats().subscriptions).toBe(count);

    // Every one of them is live at the broker.
    await Promise.all(topics.map((topic) => peer.publish(topic, { ok: true })));
    await waitFor(() => hits.size === count, { what: `a message on each of ${count} topics`, timeoutMs: 10_000 });

    await Promise.all(stops.map((stop) => stop()));
    const parallelDone = performance.now();
    expect(server.stats().subscriptions).toBe(0);

    console.log(
      `[${protocolVersion === 4 ? 'aedes' : 'mosquitto'}] ${count} subscribe + unsubscribe: ` +
        `awaited one by one ${(serialSubscribed - serialStart).toFixed(0)} + ${(serialDone - serialSubscribed).toFixed(0)} ms, ` +
        `concurrently ${(parallelSubscribed - parallelStart).toFixed(0)} ms + (publish/check) + unsubscribe, total ${(parallelDone - parallelStart).toFixed(0)} ms`,
    );
  });

  it('ends its broker session on close: nothing is kept or queued for a process that has gone', async () => {
    const clientId = `closing-${(clientSeq += 1)}`;
    const leaving = await MqttConnection.connect({ url: broker.url, protocolVersion, clientId, logger });
    await leaving.subscribe('fleet/vehicles/r6/replies', () => undefined);
    await leaving.close();
    await peer.publish('fleet/vehicles/r6/replies', { late: true });

    const probe = mqtt.connect(broker.url, {
      clientId,
      protocolVersion,
      clean: false,
      reconnectPeriod: 0,
      ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}),
    });
    const received: string[] = [];
    probe.on('message', (topic) => void received.push(topic));
    try {
      const connack = await new Promise<IConnackPacket>((resolve) => probe.once('connect', resolve));
      expect(connack.sessionPresent).toBe(false);
    } finally {
      await probe.endAsync(false, protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {});
    }
    expect(received).toEqual([]);
  });

  it('publishes with retain, and a late subscriber gets the retained message', async () => {
    await peer.publish('fleet/vehicles/r5/status', { online: true, at: '2025-01-01T00:00:00.000Z' }, { retain: true });
    const received: string[] = [];
    const stop = await server.subscribe('fleet/vehicles/r5/status', (_topic, payload) => void received.push(payload.toString()));
    await waitFor(() => received.length === 1, { what: 'the retained status' });
    expect(JSON.parse(received[0]!)).toEqual({ online: true, at: '2025-01-01T00:00:00.000Z' });
    await stop();
  });
});

describe('MqttConnection.connect', () => {
  it('fails with MqttConnectError when no broker answers in time', async () => {
    const port = await freePort();
    await expect(
      MqttConnection.connect({ url: `mqtt://127.0.0.1:${port}`, protocolVersion: 4, clientId: 'nobody', logger, connectTimeoutMs: 300 }),
    ).rejects.toThrowError(MqttConnectError);
  });

  it('fails at once when the broker refuses the protocol version (aedes and MQTT 5)', async () => {
    const broker = await startEmbeddedBroker({ port: 0, security: 'open' });
    try {
      // A refused CONNACK is an MqttConnectError right away; a retry loop would end in a timeout error instead.
      await expect(
        MqttConnection.connect({ url: broker.url, protocolVersion: 5, clientId: 'too-new', logger, connectTimeoutMs: 60_000 }),
      ).rejects.toThrowError(MqttConnectError);
    } finally {
      await broker.close();
    }
  });
});

describe('startEmbeddedBroker', () => {
  it('reports the port it really bound for port 0, and close() drops clients and frees the port', async () => {
    const broker = await startEmbeddedBroker({ port: 0, security: 'open' });
    expect(broker.port).toBeGreaterThan(0);
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const connection = await MqttConnection.connect({ url: broker.url, protocolVersion: 4, clientId: 'embedded-check', logger });
    const transitions: boolean[] = [];
    connection.onConnectionChange((connected) => transitions.push(connected));
    try {
      await broker.close();
      await waitFor(() => !connection.isConnected, { what: 'the client to notice the broker closed' });
      expect(transitions).toEqual([false]);
      // The same port can be bound again at once.
      const again = await startEmbeddedBroker({ port: broker.port, security: 'open' });
      await again.close();
    } finally {
      await connection.close();
    }
  });
});
