import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { MAX_PAYLOAD_BYTES, parseDeviceCommand, parseDeviceReply, parsePresence, parseTelemetry } from '../../actors/contract/device-protocol.js';
import { InvalidTopicFilterError, TopicRouter, topicMatches } from '../../adapters/mqtt/topic-router.js';
import {
  ALL_STATUS,
  ALL_TELEMETRY,
  InvalidVehicleIdError,
  commandsTopic,
  isValidVehicleId,
  parseVehicleTopic,
  vehicleIdOf,
  vehicleTopic,
} from '../../actors/contract/device-topics.js';
import { MessageKind, decodeBatch, type DecodeTask } from '../../adapters/telemetry/decode.js';

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const idChars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-'.split('');
const validId = fc.array(fc.constantFrom(...idChars), { minLength: 1, maxLength: 64 }).map((chars) => chars.join(''));

describe('vehicle topics', () => {
  it('builds the four contract topics', () => {
    expect(vehicleTopic('v-1', 'commands')).toBe('fleet/vehicles/v-1/commands');
    expect(vehicleTopic('v-1', 'replies')).toBe('fleet/vehicles/v-1/replies');
    expect(vehicleTopic('v-1', 'telemetry')).toBe('fleet/vehicles/v-1/telemetry');
    expect(vehicleTopic('v-1', 'status')).toBe('fleet/vehicles/v-1/status');
    expect(ALL_TELEMETRY).toBe('fleet/vehicles/+/telemetry');
    expect(ALL_STATUS).toBe('fleet/vehicles/+/status');
  });

  it.each(['', 'a/b', 'a+', '#', 'v 1', 'v\u0000', 'é', 'x'.repeat(65)])('never builds a topic for the id %j', (id) => {
    expect(isValidVehicleId(id)).toBe(false);
    expect(() => commandsTopic(id)).toThrowError(InvalidVehicleIdError);
  });

  it('parses back what it builds, for any valid id', () => {
    fc.assert(
      fc.property(validId, fc.constantFrom('commands', 'replies', 'telemetry', 'status' as const), (id, channel) => {
        const topic = vehicleTopic(id, channel);
        expect(parseVehicleTopic(topic)).toEqual({ vehicleId: id, channel });
        expect(vehicleIdOf(topic, channel)).toBe(id);
      }),
    );
  });

  it('refuses any id with a character outside [A-Za-z0-9._-]', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 10 }).filter((id) => /[^A-Za-z0-9._-]/.test(id)), (id) => {
        expect(() => vehicleTopic(id, 'status')).toThrowError(InvalidVehicleIdError);
      }),
    );
  });

  it.each(['fleet/vehicles/v1', 'fleet/vehicles/v1/other', 'fleet/cars/v1/status', 'fleet/vehicles/v1/status/x', 'fleet/vehicles//status'])(
    'does not parse %s as a vehicle topic',
    (topic) => expect(parseVehicleTopic(topic)).toBeNull(),
  );
});

describe('payload parsers', () => {
  const at = '2025-01-01T10:00:00.000Z';
  const command = { commandId: 'c-1', type: 'UNLOCK', bookingId: 'b-1', issuedAt: at, expiresAt: '2025-01-01T10:00:05.000Z', sig: 'c2lnbmF0dXJl' };

  it('accept the contract payloads and strip unknown fields (fields may be added)', () => {
    expect(parseDeviceCommand(json({ ...command, extra: 1 }))).toEqual({ ok: true, value: command });
    expect(parseDeviceReply(json({ commandId: 'c-1', type: 'REJECTED', at, reason: 'door jammed' }))).toEqual({
      ok: true,
      value: { commandId: 'c-1', type: 'REJECTED', at, reason: 'door jammed' },
    });
    expect(parseTelemetry(json({ lat: 48.1, lon: 11.5, battery: 80, speedKmh: 0, at }))).toMatchObject({ ok: true });
    expect(parsePresence(json({ online: false }))).toEqual({ ok: true, value: { online: false } });
  });

  it.each([
    ['not JSON', Buffer.from('{"commandId":')],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['a JSON array', json([command])],
    ['an unknown command type', json({ ...command, type: 'HONK' })],
    ['a date that is not ISO 8601', json({ ...command, expiresAt: 'tomorrow' })],
    ['a missing bookingId', json({ ...command, bookingId: undefined })],
    ['a missing signature', json({ ...command, sig: undefined })],
    ['an oversized payload', Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x20)],
  ])('return an error, never throw, for %s', (_case, payload) => {
    const result = parseDeviceCommand(payload);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.length).toBeGreaterThan(0);
  });

  it.each([
    { battery: 101 },
    { battery: -1 },
    { lat: 91 },
    { lon: -181 },
    { speedKmh: -3 },
    { lat: '48.1' },
  ])('reject telemetry out of range: %j', (change) => {
    expect(parseTelemetry(json({ lat: 48.1, lon: 11.5, battery: 80, speedKmh: 0, at, ...change })).ok).toBe(false);
  });
});

describe('topic filter matching', () => {
  it.each([
    ['fleet/vehicles/+/status', 'fleet/vehicles/v1/status', true],
    ['fleet/vehicles/+/status', 'fleet/vehicles/v1/replies', false],
    ['fleet/vehicles/+/status', 'fleet/vehicles/v1/status/x', false],
    ['fleet/#', 'fleet/vehicles/v1/status', true],
    ['fleet/#', 'fleet', true],
    ['#', '$SYS/broker/uptime', false],
    ['+/broker/uptime', '$SYS/broker/uptime', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['fleet/vehicles/v1/status', 'fleet/vehicles/v1/status', true],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  it.each(['', 'fleet/#/status', 'fleet/vehicles/v+/status', 'fleet/ve#'])('refuses the malformed filter %j', (filter) => {
    expect(() => new TopicRouter().add(filter, () => undefined)).toThrowError(InvalidTopicFilterError);
  });
});

describe('TopicRouter', () => {
  const noErrors = (error: unknown): never => {
    throw error;
  };

  it('asks for a SUBSCRIBE on the first handler of a filter and an UNSUBSCRIBE after its last', () => {
    const router = new TopicRouter();
    const first = router.add('fleet/vehicles/v1/replies', () => undefined);
    const second = router.add('fleet/vehicles/v1/replies', () => undefined);
    expect([first.first, second.first]).toEqual([true, false]);
    expect(router.remove(first.registration)).toBe(false);
    expect(router.remove(first.registration)).toBe(false);
    expect(router.remove(second.registration)).toBe(true);
    expect(router.size).toBe(0);
  });

  it('delivers to exact and wildcard handlers, and no longer after removal', () => {
    const router = new TopicRouter();
    const calls: string[] = [];
    const exact = router.add('fleet/vehicles/v1/status', (topic) => void calls.push(`exact ${topic}`));
    router.add(ALL_STATUS, (topic) => void calls.push(`wildcard ${topic}`));
    expect(router.dispatch('fleet/vehicles/v1/status', Buffer.from('{}'), noErrors)).toBe(2);
    expect(router.dispatch('fleet/vehicles/v2/status', Buffer.from('{}'), noErrors)).toBe(1);
    router.remove(exact.registration);
    expect(router.dispatch('fleet/vehicles/v1/status', Buffer.from('{}'), noErrors)).toBe(1);
    expect(router.dispatch('fleet/vehicles/v1/replies', Buffer.from('{}'), noErrors)).toBe(0);
    expect(calls).toEqual([
      'exact fleet/vehicles/v1/status',
      'wildcard fleet/vehicles/v1/status',
      'wildcard fleet/vehicles/v2/status',
      'wildcard fleet/vehicles/v1/status',
    ]);
  });

  it('with MQTT 5 subscription identifiers, gives each copy only to the filter it was sent for', () => {
    const router = new TopicRouter();
    const calls: string[] = [];
    const exact = router.add('fleet/vehicles/v1/status', () => void calls.push('exact'));
    const wildcard = router.add(ALL_STATUS, () => void calls.push('wildcard'));
    // Mosquitto sends one copy per matching subscription.
    router.dispatch('fleet/vehicles/v1/status', Buffer.from('{}'), noErrors, exact.subscriptionId);
    router.dispatch('fleet/vehicles/v1/status', Buffer.from('{}'), noErrors, [wildcard.subscriptionId]);
    // A broker that sends one copy for both names both.
    router.dispatch('fleet/vehicles/v1/status', Buffer.from('{}'), noErrors, [exact.subscriptionId, wildcard.subscriptionId]);
    // An id of a filter released meanwhile is nobody's.
    router.remove(exact.registration);
    expect(router.dispatch('fleet/vehicles/v1/status', Buffer.from('{}'), noErrors, exact.subscriptionId)).toBe(0);
    expect(calls).toEqual(['exact', 'wildcard', 'exact', 'wildcard']);
    expect(exact.subscriptionId).not.toBe(wildcard.subscriptionId);
  });

  it('reports a throwing or rejecting handler and still calls the others', async () => {
    const router = new TopicRouter();
    const healthy = vi.fn();
    router.add('t/1', () => {
      throw new Error('boom');
    });
    router.add('t/+', () => Promise.reject(new Error('async boom')));
    router.add('t/#', healthy);
    const errors: string[] = [];
    expect(router.dispatch('t/1', Buffer.from('x'), (error) => void errors.push((error as Error).message))).toBe(3);
    expect(healthy).toHaveBeenCalledWith('t/1', Buffer.from('x'));
    await vi.waitFor(() => expect(errors).toEqual(['boom', 'async boom']));
  });
});

describe('decodeBatch (the telemetry worker)', () => {
  const task = (messages: Array<[kind: number, vehicleId: string, payload: Buffer]>): DecodeTask => {
    const bytes = Buffer.concat(messages.map(([, , payload]) => payload));
    let end = 0;
    return {
      bytes: new Uint8Array(bytes),
      ends: Uint32Array.from(messages.map(([, , payload]) => (end += payload.length))),
      kinds: Uint8Array.from(messages.map(([kind]) => kind)),
      vehicleIds: messages.map(([, vehicleId]) => vehicleId),
    };
  };
  const reading = (speedKmh: number, at: string): Buffer => json({ lat: 1, lon: 2, battery: 50, speedKmh, at });

  it('keeps the newest reading per vehicle by its time, not by its arrival', () => {
    const result = decodeBatch(
      task([
        [MessageKind.telemetry, 'v1', reading(1, '2025-01-01T10:00:01Z')],
        [MessageKind.telemetry, 'v1', reading(3, '2025-01-01T10:00:03Z')],
        [MessageKind.telemetry, 'v1', reading(2, '2025-01-01T10:00:02Z')],
        [MessageKind.telemetry, 'v2', reading(9, '2025-01-01T10:00:00Z')],
      ]),
    );
    expect(result.telemetry).toEqual([
      { vehicleId: 'v1', lat: 1, lon: 2, battery: 50, speedKmh: 3, at: Date.parse('2025-01-01T10:00:03Z') },
      { vehicleId: 'v2', lat: 1, lon: 2, battery: 50, speedKmh: 9, at: Date.parse('2025-01-01T10:00:00Z') },
    ]);
    expect(result.superseded).toBe(2);
    expect(result.rejected).toBe(0);
  });

  it('counts malformed payloads and keeps the last presence of each vehicle', () => {
    const result = decodeBatch(
      task([
        [MessageKind.telemetry, 'v1', Buffer.from('garbage')],
        [MessageKind.telemetry, 'v1', json({ lat: 1 })],
        [MessageKind.presence, 'v1', json({ online: true, at: '2025-01-01T10:00:00Z' })],
        [MessageKind.presence, 'v2', json({ online: 'yes' })],
        [MessageKind.presence, 'v1', json({ online: false })],
      ]),
    );
    expect(result.rejected).toBe(3);
    expect(result.rejections).toHaveLength(3);
    expect(result.telemetry).toEqual([]);
    expect(result.presence).toEqual([{ vehicleId: 'v1', online: false, at: null }]);
  });
});
