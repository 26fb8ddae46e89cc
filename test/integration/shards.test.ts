import { existsSync, renameSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { startFleet } from '../../server/fleet-app.js';
import { shardOfBooking, shardOfVehicle } from '../../runtime/kernel/placement.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { tempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Three shards on real worker threads: placement, routing by booking id, cross-shard reads,
 * idempotency across shards, a worker killed under load, and the shard count fixed with the data.
 */

const SHARDS = 3;
/** Vehicle ids, `count` of them, each on the shard asked for. */
function vehiclesOn(shard: number, count: number, prefix: string): string[] {
  const ids: string[] = [];
  for (let index = 0; ids.length < count; index += 1) {
    const id = `${prefix}-${index}`;
    if (shardOfVehicle(id, SHARDS) === shard) ids.push(id);
  }
  return ids;
}

let t: TestFleet;
beforeAll(async () => {
  t = await startTestFleet({ FLEET_SHARDS: String(SHARDS) }, { shardRuntime: 'worker' });
}, 60_000);
afterAll(async () => t?.close());

describe('placement on three worker shards', () => {
  it('bookings over many vehicles land on every shard, each with its vehicle, and the id names the shard', async () => {
    const ids = Array.from({ length: 30 }, (_, index) => `spread-${index}`);
    for (const id of ids) expect((await t.registerVehicle(id)).statusCode).toBe(201);
    const bookings = await Promise.all(ids.map((id, index) => t.book(`spreader-${index}`, id)));
    for (const [index, booking] of bookings.entries()) {
      expect(booking.statusCode, booking.body).toBe(201);
      const { id } = booking.json<{ id: string }>();
      expect(shardOfBooking(id, SHARDS)).toBe(shardOfVehicle(ids[index]!, SHARDS));
    }
    // Each shard's own file holds the bookings of its own vehicles, and every shard got some.
    const perShard = t.countPerShard("SELECT count(*) AS n FROM bookings WHERE vehicle_id LIKE 'spread-%'");
    expect(perShard).toEqual(Array.from({ length: SHARDS }, (_, shard) => ids.filter((id) => shardOfVehicle(id, SHARDS) === shard).length));
    expect(perShard.every((n) => n > 0)).toBe(true);
    // Each shard's journal holds exactly its own vehicles' reservations.
    const stats = await t.fleet.shardStats();
    expect(stats.every((shard) => shard !== null && shard.journal.rows > 0)).toBe(true);
    expect(t.count("SELECT count(*) AS n FROM journal WHERE event_type = 'VehicleReserved' AND persistence_key LIKE 'vehicle/spread-%'")).toBe(30);
    // Reads that span the fleet see every shard.
    const listed = (await t.request({ method: 'GET', url: '/vehicles?limit=1000', as: 'ops', role: 'operator' })).json<{ items: Array<{ id: string; status: string }> }>().items;
    expect(listed.filter((vehicle) => vehicle.id.startsWith('spread-')).map((vehicle) => vehicle.status)).toEqual(ids.map(() => 'RESERVED'));
    const one = bookings[7]!.json<{ id: string }>();
    expect((await t.request({ method: 'GET', url: `/bookings/${one.id}`, as: 'spreader-7' })).json()).toMatchObject({ id: one.id, status: 'CONFIRMED' });
  }, 60_000);

  it('a booking id that names no shard of this fleet is 404, not a crash', async () => {
    const response = await t.request({ method: 'GET', url: '/bookings/bk_s9_0123456789abcdef01234567' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/booking-not-found' });
  });

  it('the same customer and Idempotency-Key with a vehicle on another shard → 422', async () => {
    const [onZero] = vehiclesOn(0, 1, 'idem');
    const [onTwo] = vehiclesOn(2, 1, 'idem');
    for (const id of [onZero!, onTwo!]) expect((await t.registerVehicle(id)).statusCode).toBe(201);
    const first = await t.book('idem-customer', onZero!, {}, { 'idempotency-key': 'cross-shard' });
    expect(first.statusCode).toBe(201);
    const reused = await t.book('idem-customer', onTwo!, {}, { 'idempotency-key': 'cross-shard' });
    expect(reused.statusCode).toBe(422);
    expect(reused.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/idempotency-key-reused' });
    const replayed = await t.book('idem-customer', onZero!, {}, { 'idempotency-key': 'cross-shard' });
    expect(replayed.statusCode).toBe(201);
    expect(replayed.json<{ id: string }>().id).toBe(first.json<{ id: string }>().id);
    // Nothing was booked on the second vehicle.
    expect((await t.request({ method: 'GET', url: `/vehicles/${onTwo!}`, as: 'ops', role: 'operator' })).json()).toMatchObject({ status: 'AVAILABLE' });
  });

  it('1,000 racers for one vehicle: exactly one winner', async () => {
    const vehicleId = 'race-3-shards';
    expect((await t.registerVehicle(vehicleId)).statusCode).toBe(201);
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, index) => t.book(`racer-${index}`, vehicleId)));
    const statuses = answers.map((answer) => answer.statusCode);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(999);
  }, 120_000);

  it('GET /events pages through all shards: each event exactly once, in per-key order', async () => {
    const ids = Array.from({ length: 12 }, (_, index) => `evt-${index}`);
    for (const id of ids) expect((await t.registerVehicle(id)).statusCode).toBe(201);
    for (const [index, id] of ids.entries()) {
      const booking = (await t.book(`eventful-${index}`, id)).json<{ id: string }>();
      if (index % 2 === 0) expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/cancel`, as: `eventful-${index}` })).statusCode).toBe(200);
    }
    const seen: Array<{ id: string; key: string; shard: number; position: number }> = [];
    let cursor = '0';
    for (let page = 0; page < 1000; page += 1) {
      const response = await t.request({ method: 'GET', url: `/events?after=${cursor}&limit=7`, as: 'ops', role: 'operator' });
      expect(response.statusCode).toBe(200);
      const body = response.json<{ items: typeof seen; next: string }>();
      if (body.items.length === 0) break;
      seen.push(...body.items);
      cursor = body.next;
    }
    expect(cursor.split('.')).toHaveLength(SHARDS);
    expect(new Set(seen.map((event) => event.id)).size).toBe(seen.length);
    expect(seen).toHaveLength(t.count('SELECT count(*) AS n FROM journal WHERE is_public = 1'));
    // Per key: journal order, which `ce_id`'s sequence number shows.
    const lastSequence = new Map<string, number>();
    for (const event of seen) {
      const sequence = Number(event.id.split(':').at(-1));
      expect(sequence).toBeGreaterThan(lastSequence.get(event.key) ?? 0);
      lastSequence.set(event.key, sequence);
    }
    expect(new Set(seen.map((event) => event.shard)).size).toBe(SHARDS);
  }, 60_000);
});

describe('a shard worker killed under load', () => {
  it('is restarted from its journal, requests for it meanwhile get 503 at once, and every acknowledged booking is still there', async () => {
    const victim = 1;
    const ids = Array.from({ length: 120 }, (_, index) => `crash-${index}`);
    for (const id of ids) expect((await t.registerVehicle(id)).statusCode).toBe(201);
    const restartsBefore = t.fleet.shards.restarts(victim);
    const load = Promise.all(ids.map((id, index) => t.book(`crasher-${index}`, id)));
    await t.fleet.shards.crash(victim);
    const answers = await load;
    const acknowledged = answers.filter((answer) => answer.statusCode === 201).map((answer) => answer.json<{ id: string; customerId: string }>());
    for (const answer of answers) {
      if (answer.statusCode !== 201) expect(answer.json(), answer.body).toMatchObject({ status: 503 });
    }
    // While the victim is down: an answer at once, not a hang.
    const onVictim = ids.find((id) => shardOfVehicle(id, SHARDS) === victim)!;
    const whileDown = await t.request({ method: 'GET', url: `/vehicles/${onVictim}`, as: 'ops', role: 'operator' });
    if (t.fleet.shards.link(victim).state !== 'up') expect(whileDown.json()).toMatchObject({ type: 'https://fleetactors.dev/problems/shard-unavailable' });

    await waitFor(() => t.fleet.shards.link(victim).state === 'up', { timeoutMs: 30_000, what: 'shard 1 restarted' });
    expect(t.fleet.shards.restarts(victim)).toBe(restartsBefore + 1);
    expect((await t.request({ method: 'GET', url: '/health', role: 'operator' })).statusCode).toBe(200);
    for (const booking of acknowledged) {
      const read = await t.request({ method: 'GET', url: `/bookings/${booking.id}`, as: booking.customerId });
      expect(read.json(), read.body).toMatchObject({ id: booking.id, status: 'CONFIRMED' });
    }
    expect(acknowledged.length).toBeGreaterThan(0);
  }, 90_000);
});

describe('the shard count is fixed with the data', () => {
  it('another FLEET_SHARDS is refused with a message naming it; the recorded count starts', async () => {
    const temp = tempDbFile();
    const logger = createLogger('silent');
    const env = { FLEET_DB: temp.file, MQTT_PORT: '0', PORT: '0', LOG_LEVEL: 'silent' };
    try {
      const first = await startFleet(loadConfig({ ...env, FLEET_SHARDS: '2' }), { logger, listen: false, shardRuntime: 'inline' });
      await first.close();
      await expect(startFleet(loadConfig({ ...env, FLEET_SHARDS: '3' }), { logger, listen: false, shardRuntime: 'inline' })).rejects.toThrow(/FLEET_SHARDS is 3, but the data .* was created with 2 shards/);
      const again = await startFleet(loadConfig({ ...env, FLEET_SHARDS: '2' }), { logger, listen: false, shardRuntime: 'inline' });
      await again.close();
      // Unset, FLEET_SHARDS means the cores for new data only: this data keeps its two shards.
      const unset = await startFleet(loadConfig(env), { logger, listen: false, shardRuntime: 'inline' });
      expect(unset.shards.count).toBe(2);
      await unset.close();
    } finally {
      temp.cleanup();
    }
  }, 60_000);

  it('a database of the single-file version opens as a one-shard fleet, or is refused with a message at another count', async () => {
    const temp = tempDbFile();
    try {
      // The single-file layout: one file with the journal, what a one-shard fleet keeps in shard 0.
      const made = await startTestFleet({ FLEET_DB: temp.file }, {}, temp.file);
      expect((await made.registerVehicle('old-timer')).statusCode).toBe(201);
      await made.fleet.close();
      rmSync(temp.file);
      renameSync(made.fleet.shardFiles[0]!, temp.file);
      expect(existsSync(made.fleet.shardFiles[0]!)).toBe(false);

      const logger = createLogger('silent');
      const env = { FLEET_DB: temp.file, MQTT_PORT: '0', PORT: '0', LOG_LEVEL: 'silent' };
      await expect(startFleet(loadConfig({ ...env, FLEET_SHARDS: '3' }), { logger, listen: false, shardRuntime: 'inline' })).rejects.toThrow(/single-file version.*FLEET_SHARDS=1/);
      const reopened = await startTestFleet({ FLEET_DB: temp.file }, {}, temp.file);
      try {
        expect((await reopened.request({ method: 'GET', url: '/vehicles/old-timer', as: 'ops', role: 'operator' })).json()).toMatchObject({ id: 'old-timer', status: 'AVAILABLE' });
      } finally {
        await reopened.fleet.close();
      }
    } finally {
      temp.cleanup();
    }
  }, 60_000);
});
