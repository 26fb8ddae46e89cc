/**
 * `npm run bench [-- --only booking,unlock,journal] [--duration-s 10] [--clients 50]`: the speed
 * targets, measured against the real process over real sockets. Prints one JSON object and writes it
 * to bench/results/<date>.json. Numbers, not assertions: the tests never time anything.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { VirtualVehicle } from '../simulator/virtual-vehicle.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { LatencyRecorder, type LatencySummary } from '../simulator/report.js';
import { call, microsSince, runClients } from './http-load.js';
import { runJournalBench } from './journal.js';
import { runRelayBench } from './relay.js';
import { startBenchServer } from './server.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: 'journal,booking,unlock,relay' },
    'duration-s': { type: 'string', default: '10' },
    clients: { type: 'string', default: '50' },
    vehicles: { type: 'string', default: '300' },
  },
});
const durationMs = Number(values['duration-s']) * 1000;
const clients = Number(values.clients);
const only = new Set(values.only.split(','));
/** Untimed load first: the first requests pay for JIT, lazy compilation and caches (0.7–1 s each, measured). */
const WARM_UP_MS = 2000;

interface ScenarioResult {
  readonly perSecond: number;
  readonly latency: LatencySummary;
  readonly errors: Record<string, number>;
  readonly [extra: string]: unknown;
}

const countError = (errors: Record<string, number>, key: string) => {
  errors[key] = (errors[key] ?? 0) + 1;
};

/** Confirmed bookings per second: each client books distinct seeded vehicles (no vehicle twice). */
async function bookingBench(): Promise<ScenarioResult> {
  // Enough vehicles that no client ever waits for one: bookings/s × duration, with room to spare.
  const seed = 12_000;
  const server = await startBenchServer({ FLEET_SEED: String(seed), PAYMENT_LATENCY_MS: '0' });
  try {
    const latencies = new LatencyRecorder();
    const errors: Record<string, number> = {};
    let next = 0;
    let confirmed = 0;
    let measuring = false;
    const book = async (client: number) => {
      next += 1;
      if (next > seed) return false;
      const vehicleId = `demo-${String(next).padStart(4, '0')}`;
      const started = process.hrtime.bigint();
      const response = await call(`${server.url}/bookings`, 'POST', server.token(`bench-${client}`, 'customer'), { vehicleId });
      if (!measuring) return true;
      latencies.recordUs(microsSince(started));
      if (response.status === 201 && response.body.status === 'CONFIRMED') confirmed += 1;
      else countError(errors, String(response.status));
      return true;
    };
    await runClients(clients, WARM_UP_MS, book);
    measuring = true;
    const seconds = await runClients(clients, durationMs, book);
    return { perSecond: Math.round(confirmed / seconds), confirmed, seconds, clients, paymentLatencyMs: 0, latency: latencies.summary(), errors };
  } finally {
    await server.stop();
  }
}

/** Unlock round trips per second through Mosquitto (MQTT 5): book, then time the unlock, then end. */
async function unlockBench(): Promise<ScenarioResult> {
  const mosquitto = await startMosquitto({ extraConfig: ['max_queued_messages 100000', 'max_inflight_messages 0'] });
  const vehicleCount = Number(values.vehicles);
  const server = await startBenchServer({ MQTT_URL: mosquitto.url, PAYMENT_LATENCY_MS: '0' });
  const devices: VirtualVehicle[] = [];
  try {
    const operator = server.token('bench-operator', 'operator');
    const ids = Array.from({ length: vehicleCount }, (_, index) => `bench-${index}`);
    for (const id of ids) {
      const registered = await call(`${server.url}/vehicles`, 'POST', operator, { id, type: 'scooter', location: { lat: 52.52, lon: 13.405 } });
      const credentials = registered.body.credentials as { password: string; commandKey: string };
      devices.push(await VirtualVehicle.start({ id, url: mosquitto.url, protocolVersion: 5, credentials }));
    }
    const free = [...ids];
    const latencies = new LatencyRecorder();
    const errors: Record<string, number> = {};
    let unlocked = 0;
    let measuring = false;
    const ride = async (client: number) => {
      const vehicleId = free.shift();
      if (!vehicleId) return false;
      const token = server.token(`rider-${client}`, 'customer');
      try {
        const booked = await call(`${server.url}/bookings`, 'POST', token, { vehicleId });
        if (booked.status !== 201) return countError(errors, `book ${booked.status}`), true;
        const started = process.hrtime.bigint();
        const unlock = await call(`${server.url}/unlock`, 'POST', token, { bookingId: booked.body.id });
        if (measuring) {
          latencies.recordUs(microsSince(started));
          if (unlock.status === 200) unlocked += 1;
          else countError(errors, `unlock ${unlock.status}`);
        }
        const ended = await call(`${server.url}/bookings/${String(booked.body.id)}/end`, 'POST', token);
        if (ended.status !== 200) countError(errors, `end ${ended.status}`);
      } finally {
        free.push(vehicleId);
      }
      return true;
    };
    const riders = Math.min(clients, vehicleCount);
    await runClients(riders, WARM_UP_MS, ride);
    measuring = true;
    const seconds = await runClients(riders, durationMs, ride);
    return { perSecond: Math.round(unlocked / seconds), unlocked, seconds, clients: Math.min(clients, vehicleCount), vehicles: vehicleCount, broker: 'mosquitto (MQTT 5)', latency: latencies.summary(), errors };
  } finally {
    await Promise.all(devices.map((device) => device.stop()));
    await server.stop();
    await mosquitto.dispose();
  }
}

/** The relay against KAFKA_BROKERS, or against a broker of its own (scripts/kafka.mjs, port 19292). */
async function relayBench() {
  if (process.env.KAFKA_BROKERS) return runRelayBench(process.env.KAFKA_BROKERS.split(','));
  const root = fileURLToPath(new URL('..', import.meta.url));
  // Its own port and data; the jars of the test broker (one download).
  const env = { ...process.env, KAFKA_PORT: '19292', KAFKA_HOME: join(root, '.kafka', 'bench'), KAFKA_LIB: join(root, '.kafka', 'test', 'lib') };
  const kafka = (command: string, ...args: string[]) => spawnSync(process.execPath, [join(root, 'scripts', 'kafka.mjs'), command, ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  if (kafka('start', '--fresh').status !== 0) throw new Error('could not start Kafka for the relay benchmark');
  try {
    return await runRelayBench(['127.0.0.1:19292']);
  } finally {
    kafka('stop');
  }
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    settings: { durationS: durationMs / 1000, clients },
  };
  if (only.has('journal')) results.journal = await runJournalBench();
  if (only.has('booking')) results.booking = await bookingBench();
  if (only.has('unlock')) results.unlock = await unlockBench();
  if (only.has('relay')) results.relay = await relayBench();
  const json = JSON.stringify(results, null, 2);
  console.log(json);
  const folder = fileURLToPath(new URL('./results', import.meta.url));
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, `${results.startedAt as string}.json`.replaceAll(':', '-')), `${json}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
