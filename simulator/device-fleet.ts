import { Worker } from 'node:worker_threads';
import { DevicePool, type DevicePoolSettings, type DevicePoolSink, type DevicePoolStats, type DeviceSpec } from './device-pool.js';
import type { DeviceWorkerInit, DeviceWorkerMessage, DeviceWorkerRequest } from './device-worker.js';

export interface DeviceFleetOptions {
  readonly specs: readonly DeviceSpec[];
  /** `connectRate` is the whole fleet's; each thread gets its share. */
  readonly settings: DevicePoolSettings;
  /** Worker threads; 0 runs the devices on this thread (tests, small fleets). */
  readonly workers: number;
  readonly seed: number;
  /** Every command a device saw and every QoS 1 round trip, in batches from the threads. */
  readonly sink: DevicePoolSink;
}

export interface DeviceFleetStats extends DevicePoolStats {
  readonly threads: number;
  /** Heap of the device threads together (this thread's when workers = 0). */
  readonly heapUsed: number;
}

/** Moves a device: a rider rode it to this place (DevicePool.rideTo). Unknown ids are ignored. */
export type RideTo = (vehicleId: string, place: { readonly lat: number; readonly lon: number }) => void;

export interface DeviceFleet {
  stats(): DeviceFleetStats;
  readonly rideTo: RideTo;
  /** Every device says goodbye; resolves with the last counters once every thread reported them. */
  stop(): Promise<DeviceFleetStats>;
}

/**
 * From source (tsx, vitest) a worker must load TypeScript before its entry, and on Node 20 a worker's
 * `--import tsx` comes too late: a tiny bootstrap registers tsx's loader first (as server/shard-supervisor.ts).
 */
function workerEntry(): { entry: string | URL; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { entry: new URL('./device-worker.js', import.meta.url), eval: false };
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./device-worker.ts', import.meta.url).href;
  return { entry: `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`, eval: true };
}

/**
 * A device thread's garbage is short-lived (packets, JSON of telemetry); V8's default young generation
 * (up to 32 MB a thread) would be most of the thread's footprint for nothing.
 */
const YOUNG_GENERATION_MB = 4;

const EMPTY: DevicePoolStats = {
  devices: 0,
  online: 0,
  connects: 0,
  reconnects: 0,
  drops: 0,
  connectFailures: 0,
  refused: 0,
  commands: { ok: 0, malformed: 0, 'bad-signature': 0, expired: 0 },
  replies: 0,
  telemetrySent: 0,
  acks: 0,
};

function sum(parts: readonly DevicePoolStats[]): DevicePoolStats {
  const total = { ...EMPTY, commands: { ...EMPTY.commands } };
  for (const part of parts) {
    for (const key of ['devices', 'online', 'connects', 'reconnects', 'drops', 'connectFailures', 'refused', 'replies', 'telemetrySent', 'acks'] as const) total[key] += part[key];
    for (const verdict of Object.keys(total.commands) as Array<keyof DevicePoolStats['commands']>) total.commands[verdict] += part.commands[verdict];
  }
  return total;
}

/**
 * The simulated fleet: the devices dealt out over `workers` threads (many thousands each: a light
 * device is a socket and a few fields), each thread a DevicePool. All threads share this process's
 * open-file limit: one socket per device plus a few dozen for the rest of the simulator.
 */
export function startDeviceFleet(options: DeviceFleetOptions): DeviceFleet {
  if (options.workers <= 0) {
    const pool = new DevicePool(options.settings, options.specs, options.sink, options.seed);
    pool.start();
    const stats = (): DeviceFleetStats => ({ ...pool.stats(), threads: 0, heapUsed: process.memoryUsage().heapUsed });
    let stopping: Promise<DeviceFleetStats> | null = null;
    return { stats, rideTo: (vehicleId, place) => void pool.rideTo(vehicleId, place), stop: () => (stopping ??= pool.stop().then(stats)) };
  }

  const threads = Math.min(options.workers, Math.max(1, options.specs.length));
  const shares: DeviceSpec[][] = Array.from({ length: threads }, () => []);
  // Dealt in turn, so every thread gets its share of every behaviour.
  options.specs.forEach((spec, index) => shares[index % threads]!.push(spec));
  const latest: DevicePoolStats[] = shares.map((share) => ({ ...EMPTY, devices: share.length }));
  const heaps: number[] = shares.map(() => 0);
  const entry = workerEntry();
  const workers = shares.map((specs, index) => {
    const init: DeviceWorkerInit = { settings: { ...options.settings, connectRate: options.settings.connectRate / threads }, specs, seed: options.seed + index };
    const worker = new Worker(entry.entry, { eval: entry.eval, workerData: init, name: `sim-devices-${index}`, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    worker.on('message', (message: DeviceWorkerMessage) => {
      latest[index] = message.stats;
      heaps[index] = message.heapUsed;
      for (const record of message.commands) options.sink.command(record);
      for (const ms of message.roundTrips) options.sink.roundTrip(ms);
    });
    return worker;
  });
  const threadOf = new Map<string, Worker>();
  shares.forEach((specs, index) => {
    for (const spec of specs) threadOf.set(spec.id, workers[index]!);
  });
  const rideTo: RideTo = (vehicleId, place) => {
    const request: DeviceWorkerRequest = { type: 'ride-to', vehicleId, lat: place.lat, lon: place.lon };
    threadOf.get(vehicleId)?.postMessage(request);
  };
  const failures: Error[] = [];
  for (const worker of workers) worker.on('error', (error) => failures.push(error));

  const stats = (): DeviceFleetStats => {
    if (failures.length > 0) throw new Error(`a device thread failed: ${failures[0]!.message}`, { cause: failures[0] });
    return { ...sum(latest), threads, heapUsed: heaps.reduce((a, b) => a + b, 0) };
  };
  let stopping: Promise<DeviceFleetStats> | null = null;
  const stop = async (): Promise<DeviceFleetStats> => {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            // The last batch comes with `stopped`; a thread that died has nothing more to say.
            worker.once('exit', () => resolve());
            worker.on('message', (message: DeviceWorkerMessage) => {
              // Back-off timers of devices that were reconnecting would keep the thread alive for nothing.
              if (message.type === 'stopped') void worker.terminate();
            });
            worker.postMessage({ type: 'stop' } satisfies DeviceWorkerRequest);
          }),
      ),
    );
    return stats();
  };
  return { stats, rideTo, stop: () => (stopping ??= stop()) };
}
