import { Parser, type AsyncAPIDocumentInterface } from '@asyncapi/parser';
import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BookingEvent } from '../../actors/booking/decider.js';
import { ALL_TOPICS, TOPIC_BY_EVENT_TYPE, type PublicEventType } from '../../actors/contract/event-catalog.js';
import { toKafkaRecord } from '../../actors/event-relay/records.js';
import type { VehicleEvent } from '../../actors/vehicle/decider.js';
import { buildApp } from '../../api/app.js';
import { loadConfig } from '../../server/config.js';
import { verifyCommandSignature } from '../../actors/contract/command-signature.js';
import { deviceCommandSchema, deviceReplySchema, presenceSchema, telemetrySchema } from '../../actors/contract/device-protocol.js';
import { ALL_STATUS, ALL_TELEMETRY, parseVehicleTopic, VEHICLE_CHANNELS, vehicleTopic, type VehicleChannel } from '../../actors/contract/device-topics.js';
import { testDeps } from '../helpers/stub-fleet.js';

/**
 * docs/asyncapi.json is written by hand for readers; these tests keep it true to the code: every topic,
 * payload field, limit and header below is derived from the code's own constants and schemas.
 */
/**
 * Every field of each public event, checked by the compiler against the event types in the deciders:
 * a field added to (or removed from) an event breaks the build here until the document says so too.
 */
type PublicEvent = BookingEvent | VehicleEvent;
type FieldsOf<E extends PublicEventType> = keyof Extract<PublicEvent, { type: E }>;
const EVENT_FIELDS = {
  BookingConfirmed: { type: true, bookingId: true, customerId: true, vehicleId: true, vehicleType: true, durationMinutes: true, authorization: true, at: true, expiresAt: true },
  BookingCancelled: { type: true, bookingId: true, customerId: true, vehicleId: true, cancelledBy: true, at: true },
  BookingCompleted: { type: true, bookingId: true, customerId: true, vehicleId: true, charge: true, unlockedAt: true, endedAt: true },
  BookingExpired: { type: true, bookingId: true, customerId: true, vehicleId: true, previousStatus: true, at: true },
  VehicleUnlocked: { type: true, vehicleId: true, bookingId: true, commandId: true, at: true },
  VehicleLocked: { type: true, vehicleId: true, bookingId: true, commandId: true, at: true },
} as const satisfies { [E in PublicEventType]: Record<FieldsOf<E>, true> };

const SOURCE = readFileSync(new URL('../../docs/asyncapi.json', import.meta.url), 'utf8');
const SAMPLE_ID = 'demo-0001';

let document: AsyncAPIDocumentInterface;
beforeAll(async () => {
  const { document: parsed, diagnostics } = await new Parser().parse(SOURCE);
  // Severity 0 = error, 1 = warning: both fail; information and hints (2, 3) would not.
  const problems = diagnostics.filter((diagnostic) => diagnostic.severity <= 1).map((diagnostic) => `${diagnostic.path.join('.')}: ${diagnostic.message}`);
  expect(problems).toEqual([]);
  expect(parsed).toBeDefined();
  document = parsed!;
});

const addresses = () => document.channels().all().map((channel) => channel.address() ?? '');
const channelAt = (address: string) => document.channels().all().find((channel) => channel.address() === address);

describe('docs/asyncapi.json', () => {
  it('is a valid AsyncAPI 3 document', () => {
    expect(document.version()).toMatch(/^3\./);
  });

  it('names every MQTT topic of actors/contract/device-topics.ts, and no other', () => {
    const mqtt = addresses().filter((address) => address.startsWith('fleet/'));
    const expected = VEHICLE_CHANNELS.map((channel) => vehicleTopic(SAMPLE_ID, channel).replace(`/${SAMPLE_ID}/`, '/{vehicleId}/'));
    expect(mqtt.sort()).toEqual([...expected].sort());
    for (const address of mqtt) expect(parseVehicleTopic(address.replace('{vehicleId}', SAMPLE_ID))).not.toBeNull();
  });

  it('names every Kafka topic of the event catalog, each with the event the catalog publishes there', () => {
    const kafka = addresses().filter((address) => !address.startsWith('fleet/'));
    expect(kafka.sort()).toEqual([...ALL_TOPICS].sort());
    for (const [eventType, topic] of Object.entries(TOPIC_BY_EVENT_TYPE)) {
      const payloads = channelAt(topic)!.messages().all().map((message) => message.payload()?.properties()?.type?.const());
      expect(payloads, topic).toEqual([eventType]);
    }
  });

  const payloadSchemas: Record<VehicleChannel, z.ZodType> = {
    commands: deviceCommandSchema,
    replies: deviceReplySchema,
    telemetry: telemetrySchema,
    status: presenceSchema,
  };
  /** The JSON Schema keywords that carry a rule; descriptions, examples and zod's date-time regex do not. */
  const RULES = ['type', 'enum', 'format', 'minLength', 'maxLength', 'minimum', 'maximum'] as const;

  it.each(VEHICLE_CHANNELS)('describes the %s payload field by field as actors/contract/device-protocol.ts parses it', (channel) => {
    const fromCode = z.toJSONSchema(payloadSchemas[channel]) as { properties: Record<string, Record<string, unknown>>; required: string[] };
    // JSON payloads; the status channel also carries the empty message that clears a presence.
    const messages = channelAt(`fleet/vehicles/{vehicleId}/${channel}`)!.messages().all().filter((message) => message.payload()?.type() === 'object');
    expect(messages).toHaveLength(1);
    const payload = messages[0]!.payload()!;
    expect([...payload.required()!].sort()).toEqual([...fromCode.required].sort());
    const documented = payload.properties() ?? {};
    expect(Object.keys(documented).sort()).toEqual(Object.keys(fromCode.properties).sort());
    for (const [field, rules] of Object.entries(fromCode.properties)) {
      const json = documented[field]!.json() as Record<string, unknown>;
      for (const keyword of RULES) expect(json[keyword], `${channel}.${field}.${keyword}`).toEqual(rules[keyword]);
    }
  });

  it("signs its example command as actors/contract/command-signature.ts verifies it, with the key its description names", () => {
    const message = channelAt('fleet/vehicles/{vehicleId}/commands')!.messages().all()[0]!;
    const commandKey = /commandKey `([A-Za-z0-9_-]+)`/.exec(message.description() ?? '')?.[1];
    const vehicleId = /vehicle `([A-Za-z0-9._-]+)`/.exec(message.description() ?? '')?.[1];
    expect(commandKey).toBeDefined();
    const example = deviceCommandSchema.parse(message.examples().all()[0]!.payload());
    expect(verifyCommandSignature(commandKey!, vehicleId!, example)).toBe(true);
    expect(verifyCommandSignature(commandKey!, 'another-vehicle', example)).toBe(false);
  });

  it('states the fleet-wide subscriptions, the embedded broker port and the topic defaults the code uses', () => {
    expect(channelAt(ALL_TELEMETRY.replace('+', '{vehicleId}'))!.description()).toContain(`\`${ALL_TELEMETRY}\``);
    expect(channelAt(ALL_STATUS.replace('+', '{vehicleId}'))!.description()).toContain(`\`${ALL_STATUS}\``);
    const defaults = loadConfig({ KAFKA_BROKERS: '127.0.0.1:19092' });
    if (defaults.mqtt.mode !== 'embedded' || defaults.kafka.mode !== 'kafka') throw new Error('unexpected defaults');
    expect(document.servers().get('embedded')!.host()).toBe(`127.0.0.1:${defaults.mqtt.port}`);
    for (const topic of ALL_TOPICS) {
      const binding = channelAt(topic)!.bindings().get('kafka')!.value() as { partitions?: number; replicas?: number };
      expect(binding, topic).toMatchObject({ partitions: defaults.kafka.partitions, replicas: defaults.kafka.replicationFactor });
    }
  });

  it.each(Object.entries(EVENT_FIELDS))('describes every field of the %s event, all of them required', (eventType, fields) => {
    const payload = channelAt(TOPIC_BY_EVENT_TYPE[eventType as PublicEventType])!.messages().all()[0]!.payload()!;
    expect(Object.keys(payload.properties() ?? {}).sort()).toEqual(Object.keys(fields).sort());
    expect([...(payload.required() ?? [])].sort()).toEqual(Object.keys(fields).sort());
  });

  it('lists on every Kafka message exactly the headers the event relay sets', () => {
    const row = { position: 7, persistenceKey: 'booking/bk_s1_abc', sequenceNumber: 3, eventType: 'BookingConfirmed', data: { type: 'BookingConfirmed' }, tags: ['public'], traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', createdAt: Date.UTC(2026, 0, 5) };
    const result = toKafkaRecord(row);
    if (!result.ok) throw new Error(result.reason);
    const headerNames = Object.keys(result.record.headers ?? {}).sort();
    for (const topic of ALL_TOPICS) {
      const message = channelAt(topic)!.messages().all()[0]!;
      const headers = message.headers();
      expect(Object.keys(headers?.properties() ?? {}).sort(), topic).toEqual(headerNames);
      // traceparent is the one header that is absent when the event's trace is not known.
      expect([...(headers?.required() ?? [])].sort(), topic).toEqual(headerNames.filter((name) => name !== 'traceparent'));
      expect(headers?.properties()?.ce_specversion?.const()).toBe(result.record.headers!.ce_specversion);
    }
  });
});

describe('GET /asyncapi.json', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('serves the document without a token', async () => {
    app = buildApp(testDeps());
    const response = await app.inject({ url: '/asyncapi.json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toEqual(JSON.parse(SOURCE));
  });
});
