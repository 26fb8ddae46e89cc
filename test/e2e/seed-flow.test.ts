import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_TOPICS } from '../../actors/contract/event-catalog.js';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { collectRecords, kafkaBrokersForTests, testKafkaClient, testTopicPrefix, type RecordCollector } from '../helpers/kafka.js';
import { startMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';

/**
 * The seed sequence diagram, end to end on real parts: HTTP → booking actor → vehicle actor →
 * payment actor → CONFIRMED → `booking.created` in Apache Kafka; then unlock over MQTT (Mosquitto,
 * MQTT 5) → UNLOCKED → `vehicle.unlocked` in Kafka → SUCCESS.
 */
/** One shard in this thread, and three on worker threads (each with its own event relay and producer). */
const SHARDINGS = [
  { shards: '1', shardRuntime: 'inline' as const },
  { shards: '3', shardRuntime: 'worker' as const },
];

describe.each(SHARDINGS)('seed flow: book, unlock, events in Kafka ($shards shard(s))', ({ shards, shardRuntime }) => {
  const brokers = kafkaBrokersForTests();
  const prefix = testTopicPrefix('seed');
  const kafka = testKafkaClient(brokers);
  let mosquitto: MosquittoBroker;
  let t: TestFleet;
  let device: VirtualVehicle;
  let collector: RecordCollector;

  beforeAll(async () => {
    await ensureTopics(kafka, ALL_TOPICS.map((topic) => `${prefix}${topic}`), 3, 1);
    collector = await collectRecords(kafka, ALL_TOPICS.map((topic) => `${prefix}${topic}`));
    mosquitto = await startMosquitto();
    t = await startTestFleet({ MQTT_URL: mosquitto.url, KAFKA_BROKERS: brokers.join(','), FLEET_SHARDS: shards }, { kafkaTopicPrefix: prefix, shardRuntime });
  });
  afterAll(async () => {
    await device?.stop();
    await t?.close();
    await collector?.stop();
    await mosquitto?.dispose();
  });

  it('publishes booking.created and vehicle.unlocked with key, JSON value and CloudEvents headers', async () => {
    expect((await t.registerVehicle('seed-1', 'car')).statusCode).toBe(201);
    device = await VirtualVehicle.start({ id: 'seed-1', url: mosquitto.url, protocolVersion: 5, credentials: t.credentials('seed-1') });

    const booked = await t.book('alice', 'seed-1', {}, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    expect(booked.statusCode, booked.body).toBe(201);
    const booking = booked.json();
    expect(booking.status).toBe('CONFIRMED');

    const unlocked = await t.request({ method: 'POST', url: '/unlock', body: { bookingId: booking.id } });
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    expect(unlocked.json().status).toBe('SUCCESS');

    const records = await collector.waitUntil(
      (seen) => seen.some((r) => r.topic === `${prefix}vehicle.unlocked`) && seen.some((r) => r.topic === `${prefix}booking.created`),
      'booking.created and vehicle.unlocked',
    );
    const created = records.find((r) => r.topic === `${prefix}booking.created`)!;
    expect(created.key).toBe(booking.id);
    expect(JSON.parse(created.value!)).toMatchObject({ type: 'BookingConfirmed', bookingId: booking.id, customerId: 'alice', vehicleId: 'seed-1' });
    expect(created.headers).toMatchObject({
      ce_specversion: '1.0',
      ce_type: 'dev.fleetactors.booking.created',
      ce_source: `/fleetactors/bookings/${booking.id}`,
      ce_subject: booking.id,
      'content-type': 'application/json',
    });
    expect(created.headers.ce_id).toMatch(new RegExp(`^booking/${booking.id}:\\d+$`));
    expect(Date.parse(created.headers.ce_time!)).not.toBeNaN();
    // The caller's trace continues into Kafka.
    expect(created.headers.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);

    const opened = records.find((r) => r.topic === `${prefix}vehicle.unlocked`)!;
    expect(opened.key).toBe('seed-1');
    expect(JSON.parse(opened.value!)).toMatchObject({ type: 'VehicleUnlocked', vehicleId: 'seed-1', bookingId: booking.id });
    expect(opened.headers.ce_type).toBe('dev.fleetactors.vehicle.unlocked');
    expect(opened.headers.ce_source).toBe('/fleetactors/vehicles/seed-1');

    // Nothing else was published for this flow, and each event exactly once.
    const ids = records.map((r) => r.headers.ce_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(records.map((r) => r.topic).sort()).toEqual([`${prefix}booking.created`, `${prefix}vehicle.unlocked`]);
    await expect.poll(async () => (await t.fleet.shardStats()).map((stats) => stats?.relay?.lag)).toEqual(Array.from({ length: Number(shards) }, () => 0));
  });

  it('serves the same events on GET /events', async () => {
    const events = await t.request({ method: 'GET', url: '/events?after=0', as: 'ops', role: 'operator' });
    expect(events.statusCode, events.body).toBe(200);
    const types = events.json().items.map((event: { type: string }) => event.type);
    expect(types).toEqual(['booking.created', 'vehicle.unlocked']);
  });

  it('creates every topic at start-up, before the first event', async () => {
    const startupPrefix = testTopicPrefix('startup');
    const fresh = await startTestFleet({ KAFKA_BROKERS: brokers.join(','), FLEET_SHARDS: shards }, { kafkaTopicPrefix: startupPrefix, shardRuntime });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const expected = ALL_TOPICS.map((topic) => `${startupPrefix}${topic}`).sort();
      await expect
        .poll(async () => (await admin.listTopics()).filter((topic) => topic.startsWith(startupPrefix)).sort(), { timeout: 20_000 })
        .toEqual(expected);
    } finally {
      await admin.disconnect();
      await fresh.close();
    }
  });
});
