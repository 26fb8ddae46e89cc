import { parentPort, workerData } from 'node:worker_threads';
import { DevicePool, type CommandRecord, type DevicePoolSettings, type DeviceSpec } from './device-pool.js';

/**
 * One worker thread of the simulated fleet (simulator/device-fleet.ts): a DevicePool over its share of
 * the devices. Four times a second it posts its counters and what its devices saw since the last
 * batch (commands, round trips); on `stop` the devices say goodbye and a last batch follows.
 */
export interface DeviceWorkerInit {
  readonly settings: DevicePoolSettings;
  readonly specs: readonly DeviceSpec[];
  readonly seed: number;
}

export type DeviceWorkerMessage = {
  readonly type: 'batch' | 'stopped';
  readonly stats: ReturnType<DevicePool['stats']>;
  readonly commands: CommandRecord[];
  readonly roundTrips: number[];
  /** This thread's heap, for the memory-per-device figure. */
  readonly heapUsed: number;
};

/** What the fleet asks of a device thread: a rider rode a vehicle somewhere, or the run is over. */
export type DeviceWorkerRequest = { readonly type: 'ride-to'; readonly vehicleId: string; readonly lat: number; readonly lon: number } | { readonly type: 'stop' };

const BATCH_MS = 250;

const init = workerData as DeviceWorkerInit;
const port = parentPort!;
let commands: CommandRecord[] = [];
let roundTrips: number[] = [];
const pool = new DevicePool(init.settings, init.specs, { command: (record) => commands.push(record), roundTrip: (ms) => roundTrips.push(ms) }, init.seed);

const flush = (type: DeviceWorkerMessage['type']): void => {
  const message: DeviceWorkerMessage = { type, stats: pool.stats(), commands, roundTrips, heapUsed: process.memoryUsage().heapUsed };
  commands = [];
  roundTrips = [];
  port.postMessage(message);
};

const timer = setInterval(() => flush('batch'), BATCH_MS);
port.on('message', (message: DeviceWorkerRequest) => {
  if (message.type === 'ride-to') {
    pool.rideTo(message.vehicleId, message);
    return;
  }
  clearInterval(timer);
  void pool.stop().then(() => {
    flush('stopped');
  });
});
pool.start();
