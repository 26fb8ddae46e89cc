import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { signToken } from '../../actors/contract/tokens.js';
import { ensureTopics } from '../../adapters/kafka/admin.js';
import { collectRecords, kafkaBrokersForTests, testKafkaClient } from '../helpers/kafka.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { tempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/**
 * SIGTERM and SIGINT on the real server (two shards on worker threads, Kafka, the embedded MQTT
 * broker), with bookings in flight: it stops accepting, answers every request it had already taken,
 * flushes the journals, closes MQTT and Kafka, and exits 0. The next process on the same files has every
 * acknowledged booking, and Kafka has every one of them.
 */
const BOOKINGS = 10;
const SHARDS = 2;
const secret = 'graceful-shutdown-secret-0123456789';
const bearer = (sub: string, role: 'customer' | 'operator' = 'customer') => `Bearer ${signToken({ sub, role, ttlSeconds: 600 }, secret)}`;

describe('graceful shutdown', () => {
  const brokers = kafkaBrokersForTests();
  const kafka = testKafkaClient(brokers);
  const temp = tempDbFile();
  const shardFiles = Array.from({ length: SHARDS }, (_, shard) => temp.file.replace(/\.db$/, `.shard-${shard}.db`));
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const server of servers) await server.kill();
    temp.cleanup();
  });

  /** POSTs one booking per vehicle at once and waits until all of them have reached their actors. */
  async function bookInFlight(server: ServerProcess, label: string, vehicles: readonly number[]) {
    const before = bookingRows(shardFiles);
    const answers = vehicles.map((vehicle) =>
      fetch(`${server.url}/bookings`, {
        method: 'POST',
        headers: { authorization: bearer(`${label}-c${vehicle}`), 'content-type': 'application/json' },
        body: JSON.stringify({ vehicleId: `demo-${String(vehicle).padStart(4, '0')}` }),
      }).then(async (response) => ({ status: response.status, connection: response.headers.get('connection'), body: (await response.json()) as { id?: string; status?: string } })),
    );
    // A booking's row exists once its actor has it; it then waits 1–3 s for the (slow) payment gateway.
    await waitFor(() => bookingRows(shardFiles) === before + vehicles.length, { what: `${vehicles.length} bookings in flight`, timeoutMs: 20_000 });
    return answers;
  }

  /** The signal, then: every answer is a 201, the process exits 0 after logging that it stopped, cleanly. */
  async function stopWith(server: ServerProcess, signal: NodeJS.Signals, answers: ReadonlyArray<Promise<{ status: number; connection: string | null; body: { id?: string } }>>): Promise<string[]> {
    server.child.kill(signal);
    const results = await Promise.all(answers);
    expect(results.map((result) => result.status), JSON.stringify(results)).toEqual(Array(answers.length).fill(201));
    // Answered while closing, each on a connection the server then closes: no keep-alive holds the stop.
    expect(results.map((result) => result.connection)).toEqual(Array(answers.length).fill('close'));
    expect(await server.exited, server.stderr()).toEqual({ code: 0, signal: null });
    expect(server.logs.find((record) => record.msg === 'shutting down')).toMatchObject({ signal });
    expect(server.logs.at(-1)).toMatchObject({ msg: 'stopped', signal });
    // Clean: nothing at error level (50) or above while stopping (MQTT, Kafka, journals).
    expect(server.logs.filter((record) => record.level >= 50)).toEqual([]);
    // It no longer accepts connections.
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
    return results.map((result) => result.body.id!);
  }

  it('answers every in-flight booking on SIGTERM and on SIGINT, exits 0, and keeps every acknowledged booking', { timeout: 120_000 }, async () => {
    await ensureTopics(kafka, ['booking.created'], 3, 1);
    // PAYMENT_LATENCY_MS: each booking takes 1–3 s, so the signal lands while all are in flight.
    const env = { FLEET_DB: temp.file, FLEET_JWT_SECRET: secret, FLEET_SEED: String(2 * BOOKINGS), FLEET_SHARDS: String(SHARDS), PAYMENT_LATENCY_MS: '2000', KAFKA_BROKERS: brokers.join(',') };
    const label = `graceful-${process.pid}-${temp.file.length}`;

    const first = await startServer(env);
    servers.push(first);
    const acknowledged = await stopWith(first, 'SIGTERM', await bookInFlight(first, `${label}-a`, Array.from({ length: BOOKINGS }, (_, index) => index + 1)));

    const collector = await collectRecords(kafka, ['booking.created']);
    try {
      const second = await startServer(env);
      servers.push(second);
      for (const id of acknowledged) {
        const response = await fetch(`${second.url}/bookings/${id}`, { headers: { authorization: bearer('ops', 'operator') } });
        expect(response.status).toBe(200);
        expect(((await response.json()) as { status: string }).status).toBe('CONFIRMED');
      }
      const mine = (key: string | null) => acknowledged.includes(key ?? '');
      await collector.waitUntil((seen) => new Set(seen.map((record) => record.key).filter(mine)).size === BOOKINGS, 'every acknowledged booking in Kafka', 60_000);

      // The same on SIGINT (Ctrl-C), from the second process; its bookings are in the shard files after it exits.
      const more = await stopWith(second, 'SIGINT', await bookInFlight(second, `${label}-b`, Array.from({ length: BOOKINGS }, (_, index) => BOOKINGS + index + 1)));
      expect(confirmedAmong(shardFiles, more)).toBe(BOOKINGS);
    } finally {
      await collector.stop();
    }
  });
});

function onEachFile<T>(files: readonly string[], query: (db: Database.Database) => T, empty: T): T[] {
  return files.map((file) => {
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
    } catch {
      return empty; // not created yet
    }
    try {
      return query(db);
    } finally {
      db.close();
    }
  });
}

const bookingRows = (files: readonly string[]): number =>
  onEachFile(files, (db) => (db.prepare('SELECT count(*) AS n FROM bookings').get() as { n: number }).n, 0).reduce((sum, n) => sum + n, 0);

function confirmedAmong(files: readonly string[], ids: readonly string[]): number {
  const wanted = new Set(ids);
  return onEachFile(files, (db) => (db.prepare("SELECT id FROM bookings WHERE status = 'CONFIRMED'").all() as Array<{ id: string }>).filter((row) => wanted.has(row.id)).length, 0).reduce((sum, n) => sum + n, 0);
}
