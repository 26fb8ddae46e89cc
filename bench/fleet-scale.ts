/**
 * fleet-scale, run by `npm run bench -- --only fleet-scale` as `node --expose-gc --import tsx
 * bench/fleet-scale.ts '{"vehicles":100000}'`; prints one JSON line.
 *
 * - heap per idle active vehicle actor: the fleet in this process (startFleet, embedded broker), N
 *   vehicles registered through their actors (all then active and idle), heap after GC, minus the heap
 *   of the same fleet before; per passivated vehicle: the fleet restarted on that journal (no actor
 *   active), heap after GC minus the empty fleet's. "Idle" is once every activation let its nact
 *   actor go (the directory's releaseAfterMs after its last message); right after the registrations,
 *   with their nact actors still there, is `perWarmVehicleBytes`.
 * - start-up to ready: the server as its own process (server/main.ts) on an empty journal and on the
 *   journal with N vehicles, spawn → first 200 of /health; the ratio says whether it is flat.
 * - recovery: one vehicle with 10 000 events (ReserveVehicle/ReleaseVehicle pairs), its first answer
 *   after a restart, with snapshots (SNAPSHOT_EVERY 50) and without (SNAPSHOT_EVERY 10^9).
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { VEHICLE, type VehicleMessage } from '../actors/vehicle/actor.js';
import { loadConfig } from '../server/config.js';
import { rootContext } from '../runtime/ground/trace-context.js';
import { startFleet, type RunningFleet } from '../server/fleet-app.js';
import { createLogger } from '../runtime/ground/logger.js';
import { freePort } from '../test/helpers/free-port.js';
import { startBenchServer } from './server.js';

/** `heapOnly`: only the heap figures (a quick before/after of the actors' memory). */
const { vehicles, heapOnly = false } = JSON.parse(process.argv[2] ?? '{}') as { vehicles: number; heapOnly?: boolean };
const logger = createLogger('error');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const note = (message: string) => console.error(`fleet-scale: ${message}`);
const HEAP_NOTE = 'embedded aedes broker in the same process, one shard inline: the heap holds the actors, the MQTT client and the broker';

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 4; i += 1) {
    gc!();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

async function fleetOn(file: string, env: Record<string, string> = {}): Promise<RunningFleet> {
  const config = loadConfig({ FLEET_DB: file, FLEET_DB_SYNC: 'NORMAL', PORT: '0', MQTT_PORT: String(await freePort()), LOG_LEVEL: 'error', PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: '1', RATE_LIMIT_PER_CUSTOMER: '0', RATE_LIMIT_PER_IP: '0', ...env });
  // One shard in this thread: the heap measured here is the actors' own.
  return startFleet(config, { logger, listen: false, shardRuntime: 'inline' });
}

const ask = <T>(fleet: RunningFleet, id: string, message: VehicleMessage) => fleet.local.directory.ask<T>({ kind: VEHICLE, id }, message, 'bench', rootContext(), 60_000);
const vehicleId = (index: number) => `fs-${String(index).padStart(6, '0')}`;

async function register(fleet: RunningFleet, count: number): Promise<number> {
  const started = performance.now();
  const batch = 2000;
  for (let from = 1; from <= count; from += batch) {
    const pending: Promise<unknown>[] = [];
    for (let index = from; index < Math.min(from + batch, count + 1); index += 1) {
      pending.push(ask(fleet, vehicleId(index), { type: 'RegisterVehicle', vehicleType: 'scooter', model: null, location: { lat: 52.52 + (index % 1000) / 100_000, lon: 13.405 } }));
    }
    await Promise.all(pending);
  }
  return (performance.now() - started) / 1000;
}

async function recovery(dir: string, snapshotEvery: string, events: number) {
  const file = join(dir, `recovery-${snapshotEvery}.db`);
  const env = { SNAPSHOT_EVERY: snapshotEvery };
  const id = 'rec-000001';
  let fleet = await fleetOn(file, env);
  await ask(fleet, id, { type: 'RegisterVehicle', vehicleType: 'car', model: null, location: { lat: 52.52, lon: 13.405 } });
  for (let i = 0; i < events / 2; i += 1) {
    await ask(fleet, id, { type: 'ReserveVehicle', bookingId: `bk-${i}` });
    await ask(fleet, id, { type: 'ReleaseVehicle', bookingId: `bk-${i}`, reason: 'bench' });
  }
  await fleet.close();
  fleet = await fleetOn(file, env);
  // Warm-up: another vehicle's activation (JIT of the recovery path), then the measured one.
  await ask(fleet, 'rec-000002', { type: 'RegisterVehicle', vehicleType: 'car', model: null, location: { lat: 52.52, lon: 13.405 } });
  const started = performance.now();
  await ask(fleet, id, { type: 'GetVehicle' });
  const ms = performance.now() - started;
  await fleet.close();
  return Math.round(ms * 10) / 10;
}

async function startupMs(file: string | null): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-scale-start-'));
  try {
    const env: Record<string, string> = { PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: '1' };
    if (file) {
      // The registry and its shard files (fleet.db, fleet.shard-0.db, their WAL), as a copy.
      const base = basename(file).replace(/\.db$/, '');
      for (const name of readdirSync(dirname(file))) if (name.startsWith(`${base}.`)) cpSync(join(dirname(file), name), join(dir, name));
      env.FLEET_DB = join(dir, basename(file));
    }
    const server = await startBenchServer(env);
    const ms = await server.healthy;
    await server.stop();
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-scale-'));
  try {
    const file = join(dir, 'fleet.db');
    // The empty fleet, warmed up by registering (and then ignoring) a few vehicles of another file.
    const warm = await fleetOn(join(dir, 'warm.db'));
    await register(warm, 2000);
    await warm.close();

    let fleet = await fleetOn(file);
    const heapEmpty = await heapAfterGc();
    note(`registering ${vehicles} vehicles through their actors`);
    const registerSeconds = await register(fleet, vehicles);
    const active = fleet.local.directory.stats().active;
    const heapWarm = await heapAfterGc();
    const warmActors = fleet.local.directory.stats().withMailbox;
    while (fleet.local.directory.stats().withMailbox > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    const heapActive = await heapAfterGc();
    await fleet.close();

    fleet = await fleetOn(file);
    const heapPassive = await heapAfterGc();
    const activeAfterRestart = fleet.local.directory.stats().active;
    await fleet.close();
    const per = (bytes: number) => Math.round(bytes / vehicles);
    const heap = {
      emptyFleetMiB: Math.round(heapEmpty / 2 ** 20),
      activeActors: active,
      withActiveActorsMiB: Math.round(heapActive / 2 ** 20),
      afterRestartMiB: Math.round(heapPassive / 2 ** 20),
      activeAfterRestart,
      perActiveVehicleBytes: per(heapActive - heapEmpty),
      warmActors,
      perWarmVehicleBytes: per(heapWarm - heapEmpty),
      perPassivatedVehicleBytes: per(heapPassive - heapEmpty),
      perActorOverheadBytes: per(heapActive - heapPassive),
      note: HEAP_NOTE,
    };
    if (heapOnly) {
      process.stdout.write(`${JSON.stringify({ vehicles, registerSeconds: Math.round(registerSeconds * 10) / 10, heap })}\n`);
      return;
    }

    note('start-up to ready (server process), empty journal and full journal, twice each');
    const emptyRuns = [await startupMs(null), await startupMs(file)];
    const fullRuns = [await startupMs(null), await startupMs(file)];
    const empty = Math.min(emptyRuns[0]!, fullRuns[0]!);
    const full = Math.min(emptyRuns[1]!, fullRuns[1]!);

    note('recovery of a vehicle with 10 000 events');
    const withSnapshotMs = await recovery(dir, '50', 10_000);
    const withoutSnapshotMs = await recovery(dir, '1000000000', 10_000);

    const out = {
      vehicles,
      registerSeconds: Math.round(registerSeconds * 10) / 10,
      heap,
      startup: { emptyJournalMs: empty, fullJournalMs: full, ratio: empty > 0 ? Math.round((full / empty) * 100) / 100 : null, runs: { empty: [emptyRuns[0], fullRuns[0]], full: [emptyRuns[1], fullRuns[1]] } },
      recovery: { events: 10_000, withSnapshotMs, withoutSnapshotMs, ratio: withSnapshotMs > 0 ? Math.round((withoutSnapshotMs / withSnapshotMs) * 10) / 10 : null },
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
