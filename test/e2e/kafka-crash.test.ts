import { afterAll, describe, expect, it } from 'vitest';
import { signToken } from '../../actors/contract/tokens.js';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { freePort } from '../helpers/free-port.js';
import { byCloudEventId, collectRecords, kafkaBrokersForTests, testKafkaClient } from '../helpers/kafka.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { tempDbFile } from '../helpers/temp-db.js';

/**
 * The journal is the outbox: bookings acknowledged while Kafka is unreachable, then a process killed
 * with SIGKILL before anything reached Kafka. The next process publishes every one of them.
 */
describe.each(['1', '3'])('process killed before Kafka acknowledged (%s shard(s))', (shards) => {
  const brokers = kafkaBrokersForTests();
  const kafka = testKafkaClient(brokers);
  const temp = tempDbFile();
  const secret = 'kafka-crash-secret-0123456789';
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const server of servers) await server.kill();
    temp.cleanup();
  });

  it('publishes every acknowledged booking after the restart, each exactly once after de-duplication', { timeout: 120_000 }, async () => {
    // Topic names are not prefixed in the real process: keep to this test's own booking ids below.
    await ensureTopics(kafka, ['booking.created'], 3, 1);
    const unreachable = `127.0.0.1:${await freePort()}`;
    const env = { FLEET_DB: temp.file, FLEET_JWT_SECRET: secret, FLEET_SEED: '8', PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: shards };
    const first = await startServer({ ...env, KAFKA_BROKERS: unreachable });
    servers.push(first);

    const bookingIds: string[] = [];
    for (let index = 1; index <= 8; index += 1) {
      const customer = `crash-${index}-${Date.now()}`;
      const response = await fetch(`${first.url}/bookings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${signToken({ sub: customer, role: 'customer', ttlSeconds: 600 }, secret)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ vehicleId: `demo-${String(index).padStart(4, '0')}` }),
      });
      expect(response.status).toBe(201);
      bookingIds.push(((await response.json()) as { id: string }).id);
    }
    // Every shard's relay says where the events are: waiting for a Kafka it cannot reach.
    const health = (await (await fetch(`${first.url}/health`, { headers: { authorization: `Bearer ${signToken({ sub: 'ops', role: 'operator', ttlSeconds: 600 }, secret)}` } })).json()) as { checks: Record<string, { detail: string }> };
    const kafkaChecks = Object.entries(health.checks).filter(([name]) => name.endsWith('-kafka'));
    expect(kafkaChecks).toHaveLength(Number(shards));
    for (const [, check] of kafkaChecks) expect(check.detail).toMatch(/not connected/);
    await first.kill();

    const collector = await collectRecords(kafka, ['booking.created']);
    try {
      servers.push(await startServer({ ...env, KAFKA_BROKERS: brokers.join(',') }));
      const mine = (records: Awaited<ReturnType<typeof collector.waitForCount>>) => records.filter((record) => bookingIds.includes(record.key ?? ''));
      const records = await collector.waitUntil((seen) => new Set(mine(seen).map((record) => record.key)).size === bookingIds.length, 'all bookings in Kafka', 60_000);
      const byId = byCloudEventId(mine(records));
      expect(byId.size).toBe(bookingIds.length);
      // One ce_id per booking (its BookingConfirmed); duplicates, if any, were folded by byCloudEventId.
      expect([...byId.keys()].map((ceId) => ceId.replace(/^booking\/(.+):\d+$/, '$1')).sort()).toEqual([...bookingIds].sort());
    } finally {
      await collector.stop();
    }
  });
});
