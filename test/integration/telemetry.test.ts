import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { MqttConnection } from '../../adapters/mqtt/connection.js';
import type { Telemetry } from '../../actors/contract/device-protocol.js';
import { ALL_TELEMETRY } from '../../actors/contract/device-topics.js';
import { TelemetryPipeline } from '../../adapters/telemetry/pipeline.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { plainBrokerSecrets } from '../helpers/devices.js';
import { testBrokers, type TestBroker } from '../helpers/mosquitto.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('silent');
const REGISTERED = 100;
const READINGS_PER_VEHICLE = 50; // 49 in time order, then one stale: 5 000 in all
const UNKNOWN = 10;
const READINGS_PER_UNKNOWN = 5;

interface VehicleRow {
  id: string;
  lat: number;
  lon: number;
  battery: number | null;
  speed_kmh: number | null;
  last_seen_at: number | null;
  online: number | null;
}

function registerVehicles(db: Db, ids: readonly string[]): void {
  const insert = db.prepare(
    `INSERT INTO vehicles (id, type, status, lat, lon, registered_at, updated_at) VALUES (?, 'scooter', 'AVAILABLE', 0, 0, 0, 0)`,
  );
  db.transaction(() => ids.forEach((id) => insert.run(id)))();
}

/** Reading `index` of a vehicle: every field differs per index, so the row shows which one won. */
function reading(vehicle: number, index: number, base: number): Telemetry {
  return {
    lat: 48 + vehicle / 1000 + index / 100_000,
    lon: 11 + index / 1000,
    battery: 100 - index,
    speedKmh: index,
    at: new Date(base + index * 1000).toISOString(),
  };
}

describe.each(testBrokers)('telemetry pipeline on $name', ({ protocolVersion, start }) => {
  let broker: TestBroker;
  let server: MqttConnection;
  let dbFile: TempDbFile;
  let db: Db;
  let pipeline: TelemetryPipeline;
  const registered: VirtualVehicle[] = [];
  const unknown: VirtualVehicle[] = [];
  const presenceEvents: Array<{ vehicleId: string; online: boolean | null; at: Date }> = [];

  beforeAll(async () => {
    broker = await start();
    dbFile = tempDbFile();
    db = openDatabase(dbFile.file, { synchronous: 'NORMAL' });
    const ids = Array.from({ length: REGISTERED }, (_, index) => `scooter-${index}`);
    // One registered vehicle never reports anything: its presence stays unknown (null).
    registerVehicles(db, [...ids, 'scooter-silent']);
    server = await MqttConnection.connect({ url: broker.url, protocolVersion, clientId: 'telemetry-server', logger });
    pipeline = await TelemetryPipeline.start({ source: server, db, logger, batchIntervalMs: 20 });
    pipeline.onPresence((vehicleId, online, at) => void presenceEvents.push({ vehicleId, online, at }));
    registered.push(...(await Promise.all(ids.map((id) => VirtualVehicle.start({ id, url: broker.url, protocolVersion, credentials: plainBrokerSecrets(id) })))));
    unknown.push(
      ...(await Promise.all(
        Array.from({ length: UNKNOWN }, (_, index) => VirtualVehicle.start({ id: `stranger-${index}`, url: broker.url, protocolVersion, credentials: plainBrokerSecrets(`stranger-${index}`) })),
      )),
    );
  });

  afterAll(async () => {
    await Promise.all([...registered, ...unknown].map((vehicle) => vehicle.stop()));
    await pipeline?.close();
    await server?.close();
    await broker?.close();
    db?.close();
    dbFile?.cleanup();
  });

  const rows = (): VehicleRow[] => db.prepare('SELECT id, lat, lon, battery, speed_kmh, last_seen_at, online FROM vehicles ORDER BY id').all() as VehicleRow[];

  it('marks every vehicle that announced itself online, and none that never did', async () => {
    await waitFor(() => rows().filter((row) => row.online === 1).length === REGISTERED, { what: `${REGISTERED} vehicles online` });
    expect(rows().find((row) => row.id === 'scooter-silent')!.online).toBeNull();
    // The hook hears every vehicle, known or not: whether it matters is the runtime's call.
    await waitFor(() => new Set(presenceEvents.filter((event) => event.online).map((event) => event.vehicleId)).size === REGISTERED + UNKNOWN, {
      what: 'an online presence event of every vehicle',
    });
    await pipeline.flush();
  });

  it('keeps the newest reading per vehicle from 5 000 messages, counts malformed ones, ignores unknown vehicles', async () => {
    let telemetrySeen = 0;
    const stopCounting = await server.subscribe(ALL_TELEMETRY, () => void (telemetrySeen += 1));
    const base = Date.now() - 3_600_000;
    await pipeline.flush();
    const before = pipeline.stats();
    const malformed = ['not json', '{"lat":1}', JSON.stringify({ ...reading(0, 1, base), battery: 150 }), JSON.stringify({ ...reading(0, 1, base), at: 'now' }), ''];
    const started = performance.now();

    await Promise.all([
      ...registered.map(async (vehicle, number) => {
        for (let index = 1; index < READINGS_PER_VEHICLE; index += 1) await vehicle.publishTelemetry(reading(number, index, base));
        // Arrives last, but was taken before all others: it must not win.
        await vehicle.publishTelemetry(reading(number, 0, base - 60_000));
      }),
      ...unknown.map(async (vehicle, number) => {
        for (let index = 1; index <= READINGS_PER_UNKNOWN; index += 1) await vehicle.publishTelemetry(reading(1000 + number, index, base));
      }),
      ...malformed.flatMap((payload) => registered.slice(0, 5).map((vehicle) => vehicle.publishRaw('telemetry', payload))),
    ]);
    const total = REGISTERED * READINGS_PER_VEHICLE + UNKNOWN * READINGS_PER_UNKNOWN + malformed.length * 5;
    await waitFor(() => telemetrySeen === total, { what: `${total} telemetry messages at the server`, timeoutMs: 20_000 });
    await pipeline.flush();
    const elapsedMs = performance.now() - started;
    await stopCounting();

    const newestAt = base + (READINGS_PER_VEHICLE - 1) * 1000;
    for (const [number, row] of rows()
      .filter((candidate) => candidate.id.startsWith('scooter-') && candidate.id !== 'scooter-silent')
      .map((candidate) => [Number(candidate.id.slice('scooter-'.length)), candidate] as const)) {
      const expected = reading(number, READINGS_PER_VEHICLE - 1, base);
      expect(row).toMatchObject({ lat: expected.lat, lon: expected.lon, battery: expected.battery, speed_kmh: expected.speedKmh, last_seen_at: newestAt });
    }
    expect(rows().find((row) => row.id === 'scooter-silent')).toMatchObject({ last_seen_at: null, battery: null });
    expect(db.prepare("SELECT count(*) AS n FROM vehicles WHERE id LIKE 'stranger-%'").get()).toEqual({ n: 0 });

    const after = pipeline.stats();
    const delta = (key: keyof typeof after): number => after[key] - before[key];
    expect(delta('received')).toBe(total);
    expect(delta('rejected')).toBe(malformed.length * 5);
    expect(delta('dropped')).toBe(0);
    // Every message is accounted for exactly once.
    expect(delta('rejected') + delta('superseded') + delta('applied') + delta('ignored')).toBe(total);
    // Unknown vehicles (at least once each per batch) and stale readings change nothing.
    expect(delta('ignored')).toBeGreaterThanOrEqual(UNKNOWN);
    expect(delta('applied')).toBeGreaterThanOrEqual(REGISTERED);

    console.log(
      `[${protocolVersion === 4 ? 'aedes' : 'mosquitto'}] telemetry: ${total} messages from ${REGISTERED + UNKNOWN} vehicles ` +
        `published, routed and applied in ${elapsedMs.toFixed(0)} ms = ${Math.round((total / elapsedMs) * 1000)} msg/s ` +
        `(${delta('batches')} batches, ${delta('applied')} row updates)`,
    );
  });

  it('updates online from presence: the last will on a crash, the clean goodbye on goOffline', async () => {
    const crashed = registered.slice(10, 15);
    const leaving = registered.slice(15, 20);
    const since = presenceEvents.length;
    await Promise.all([...crashed.map((vehicle) => vehicle.crash()), ...leaving.map((vehicle) => vehicle.goOffline())]);
    const offline = new Set([...crashed, ...leaving].map((vehicle) => vehicle.id));
    await waitFor(() => rows().filter((row) => row.online === 0).length === offline.size, { what: `${offline.size} vehicles offline` });
    expect(new Set(rows().filter((row) => row.online === 0).map((row) => row.id))).toEqual(offline);
    expect(rows().filter((row) => row.online === 1)).toHaveLength(REGISTERED - offline.size);
    const told = presenceEvents.slice(since).filter((event) => !event.online);
    expect(new Set(told.map((event) => event.vehicleId))).toEqual(offline);
    expect(told.every((event) => event.at instanceof Date && !Number.isNaN(event.at.getTime()))).toBe(true);

    await Promise.all(crashed.map((vehicle) => vehicle.comeBack()));
    await waitFor(() => rows().filter((row) => row.online === 0).length === leaving.length, { what: 'crashed vehicles back online' });
  });
});
