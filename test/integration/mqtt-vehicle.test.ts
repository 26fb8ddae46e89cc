import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../runtime/ground/logger.js';
import { MqttConnection } from '../../adapters/mqtt/connection.js';
import { parseDeviceReply, parsePresence, type DeviceReply, type Presence, type UnsignedDeviceCommand } from '../../actors/contract/device-protocol.js';
import { commandsTopic, repliesTopic, statusTopic } from '../../actors/contract/device-topics.js';
import { VirtualVehicle, type VirtualVehicleOptions } from '../../simulator/virtual-vehicle.js';
import { plainBrokerSecrets, signedFor } from '../helpers/devices.js';
import { testBrokers, type TestBroker } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('silent');
let seq = 0;

function command(type: UnsignedDeviceCommand['type'], change: Partial<UnsignedDeviceCommand> = {}): UnsignedDeviceCommand {
  const now = Date.now();
  return {
    commandId: randomUUID(),
    type,
    bookingId: `b-${(seq += 1)}`,
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 30_000).toISOString(),
    ...change,
  };
}

describe.each(testBrokers)('virtual vehicle round trips on $name', ({ protocolVersion, start }) => {
  let broker: TestBroker;
  let server: MqttConnection;
  const vehicles: VirtualVehicle[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    broker = await start();
    server = await MqttConnection.connect({ url: broker.url, protocolVersion, clientId: `server-${randomUUID()}`, logger });
  });
  afterEach(async () => {
    await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
    await Promise.all(vehicles.splice(0).map((vehicle) => vehicle.stop()));
  });
  afterAll(async () => {
    await server?.close();
    await broker?.close();
  });

  async function vehicle(options: Partial<VirtualVehicleOptions> = {}): Promise<VirtualVehicle> {
    const id = options.id ?? `veh-${(seq += 1)}`;
    const started = await VirtualVehicle.start({ id, url: broker.url, protocolVersion, credentials: plainBrokerSecrets(id), ...options });
    vehicles.push(started);
    return started;
  }

  /** What the server hears on the vehicle's replies topic, parsed. */
  async function replies(vehicleId: string): Promise<DeviceReply[]> {
    const heard: DeviceReply[] = [];
    cleanups.push(
      await server.subscribe(repliesTopic(vehicleId), (_topic, payload) => {
        const reply = parseDeviceReply(payload);
        if (!reply.ok) throw new Error(reply.error);
        heard.push(reply.value);
      }),
    );
    return heard;
  }

  async function presence(vehicleId: string): Promise<{ heard: Presence[]; stop: () => Promise<void> }> {
    const heard: Presence[] = [];
    const stop = await server.subscribe(statusTopic(vehicleId), (_topic, payload) => {
      const parsed = parsePresence(payload);
      if (!parsed.ok) throw new Error(parsed.error);
      heard.push(parsed.value);
    });
    cleanups.push(stop);
    return { heard, stop };
  }

  const send = (vehicleId: string, sent: UnsignedDeviceCommand): Promise<void> =>
    server.publish(commandsTopic(vehicleId), signedFor(vehicleId, sent), { messageExpirySeconds: 30, correlationData: sent.commandId });

  it('answers UNLOCK with UNLOCKED and LOCK with LOCKED, with the same commandId (QoS 1)', async () => {
    const car = await vehicle({ behaviour: { replyDelayMs: 20 } });
    const heard = await replies(car.id);
    const unlock = command('UNLOCK');
    await send(car.id, unlock);
    await waitFor(() => heard.length === 1, { what: 'UNLOCKED' });
    expect(heard[0]).toMatchObject({ commandId: unlock.commandId, type: 'UNLOCKED' });
    expect(car.locked).toBe(false);

    const lock = command('LOCK');
    await send(car.id, lock);
    await waitFor(() => heard.length === 2, { what: 'LOCKED' });
    expect(heard[1]).toMatchObject({ commandId: lock.commandId, type: 'LOCKED' });
    expect(car.locked).toBe(true);
    expect(car.received.map((received) => received.commandId)).toEqual([unlock.commandId, lock.commandId]);
  });

  it('stays silent in silent mode', async () => {
    const car = await vehicle({ behaviour: { mode: 'silent' } });
    const heard = await replies(car.id);
    const ignored = command('UNLOCK');
    const arrived = car.nextCommand();
    await send(car.id, ignored);
    expect((await arrived).commandId).toBe(ignored.commandId);

    // Sentinel: a later command answered proves the silent one was never answered (replies keep order).
    car.setBehaviour({ mode: 'answer' });
    const answered = command('UNLOCK');
    await send(car.id, answered);
    await waitFor(() => heard.length >= 1, { what: 'the sentinel reply' });
    expect(heard.map((reply) => reply.commandId)).toEqual([answered.commandId]);
    expect(car.locked).toBe(false);
  });

  it('answers REJECTED with a reason in reject mode and stays locked', async () => {
    const car = await vehicle({ behaviour: { mode: 'reject', rejectReason: 'door jammed' } });
    const heard = await replies(car.id);
    const unlock = command('UNLOCK');
    await send(car.id, unlock);
    await waitFor(() => heard.length === 1, { what: 'REJECTED' });
    expect(heard[0]).toMatchObject({ commandId: unlock.commandId, type: 'REJECTED', reason: 'door jammed' });
    expect(car.locked).toBe(true);
  });

  it('sends every answer twice in answer-twice mode', async () => {
    const car = await vehicle({ behaviour: { mode: 'answer-twice' } });
    const heard = await replies(car.id);
    const unlock = command('UNLOCK');
    await send(car.id, unlock);
    await waitFor(() => heard.length === 2, { what: 'two UNLOCKED' });
    expect(heard[0]).toEqual(heard[1]);
    expect(heard[0]).toMatchObject({ commandId: unlock.commandId, type: 'UNLOCKED' });
  });

  it('treats a repeated commandId as already done and answers again with the same answer', async () => {
    const car = await vehicle({ behaviour: { replyDelayMs: 10 } });
    const heard = await replies(car.id);
    const unlock = command('UNLOCK');
    await send(car.id, unlock);
    await waitFor(() => heard.length === 1, { what: 'the first answer' });
    // Meanwhile the vehicle is told to refuse: a repeat must not be executed again.
    car.setBehaviour({ mode: 'reject' });
    await send(car.id, unlock);
    await waitFor(() => heard.length === 2, { what: 'the repeated answer' });
    expect(heard[1]).toEqual(heard[0]);
    expect(heard[1]!.type).toBe('UNLOCKED');
    expect(car.received).toHaveLength(2);
  });

  it('drops a command that arrives after its expiresAt', async () => {
    const car = await vehicle();
    const heard = await replies(car.id);
    const stale = command('UNLOCK', { expiresAt: new Date(Date.now() - 1000).toISOString() });
    await send(car.id, stale);
    const fresh = command('LOCK');
    await send(car.id, fresh);
    await waitFor(() => heard.length >= 1, { what: 'the answer to the fresh command' });
    expect(heard.map((reply) => reply.commandId)).toEqual([fresh.commandId]);
    expect(car.dropped).toEqual([{ reason: 'expired', command: { ...stale, sig: expect.any(String) } }]);
  });

  it('announces presence: retained online on connect, the last will on a crash, online again on comeBack', async () => {
    const car = await vehicle();
    // Subscribed after the vehicle connected: only the retained message can tell.
    const { heard, stop } = await presence(car.id);
    await waitFor(() => heard.length === 1, { what: 'the retained online:true' });
    expect(heard[0]).toMatchObject({ online: true });
    expect(Date.parse(heard[0]!.at!)).not.toBeNaN();

    await car.crash();
    await waitFor(() => heard.length === 2, { what: 'the last will' });
    expect(heard[1]).toEqual({ online: false });

    await car.comeBack();
    await waitFor(() => heard.length === 3, { what: 'online:true after comeBack' });
    expect(heard[2]).toMatchObject({ online: true });

    await car.goOffline();
    await waitFor(() => heard.length === 4, { what: 'the clean online:false' });
    expect(heard[3]).toMatchObject({ online: false });
    expect(heard[3]!.at).toBeDefined();

    // Retained: a newcomer learns the last state at once. (A second handler of a filter that is
    // already subscribed would not: the router sends no second SUBSCRIBE, so the broker sends nothing.)
    await stop();
    const { heard: late } = await presence(car.id);
    await waitFor(() => late.length === 1, { what: 'the retained offline status' });
    expect(late[0]).toMatchObject({ online: false });
  });

  it('receives commands queued while it was offline (persistent session, QoS 1)', async () => {
    const car = await vehicle();
    const heard = await replies(car.id);
    await car.goOffline();
    const unlock = command('UNLOCK');
    await send(car.id, unlock);
    await car.comeBack();
    await waitFor(() => heard.length === 1, { what: 'the answer to the queued command' });
    expect(heard[0]).toMatchObject({ commandId: unlock.commandId, type: 'UNLOCKED' });
  });
});
