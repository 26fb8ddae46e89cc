import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { signToken, type Role } from '../api/auth.js';
import type { VehicleType } from '../actors/vehicle/decider.js';
import { createLogger } from '../runtime/logger.js';
import { serverEnvOrExit } from '../scripts/server-env.js';
import { ApiClient, isRecord, type TokenSource } from './api-client.js';
import { startSimulatedFleet, watchDevice, type DeviceActivity } from './fleet.js';
import { seededRandom } from './random.js';
import { DEFAULT_SIMULATION, runSimulation, type SimulationProgress, type SimulationSettings } from './simulation.js';

/**
 * `npm run sim -- [options]`: a load run against a running fleetactors, report as JSON on stdout.
 * `npm run sim -- vehicle <id>`: one virtual vehicle until Ctrl-C, printing the commands it answers.
 * Only argument parsing and printing live here; the work is in fleet.ts, customers.ts, simulation.ts.
 */
// PORT, HOST, MQTT_PORT (or MQTT_URL) and FLEET_JWT_SECRET as `npm start` reads them: flags still win.
const server = serverEnvOrExit();
const d: SimulationSettings = { ...DEFAULT_SIMULATION, apiUrl: server.apiUrl, mqttUrl: server.mqttUrl, protocolVersion: server.mqttProtocolVersion };
const USAGE = `usage:
  npm run sim -- [options]                 vehicles over MQTT + customers over HTTP, JSON report
  npm run sim -- vehicle <id> [options]    one virtual vehicle until Ctrl-C

connections:
  --api URL                 HTTP API (default ${d.apiUrl})
  --mqtt-url URL            MQTT broker (default ${d.mqttUrl})
  --protocol 4|5            MQTT 3.1.1 or 5 (default ${d.protocolVersion}; the embedded broker speaks 4)
  --no-register             do not register the vehicles through the API first (--register is the default)
vehicles:
  --vehicles N              virtual vehicles, one MQTT client each (default ${d.vehicles})
  --id-prefix P             vehicle ids P0001 … (default ${d.idPrefix})
  --telemetry-ms MS         telemetry period per vehicle, QoS 0; 0 = off (default ${d.telemetryMs})
  --reply-delay-ms MS       mean delay before answering UNLOCK/LOCK (default ${d.replyDelayMs})
  --silent-ratio R          share of vehicles that never answer (default ${d.silentRatio})
  --offline-ratio R         share of vehicles that go offline at once (default ${d.offlineRatio})
  --connect-concurrency N   MQTT connections set up at once (default ${d.connectConcurrency})
customers:
  --customers M             virtual customers over HTTP (default ${d.customers})
  --duration-s S            how long customers keep booking (default ${d.durationMs / 1000})
  --ride-ms MS              ride length between unlock and end (default ${d.rideMs})
  --cancel-ratio R          share of confirmed bookings cancelled instead of ridden (default ${d.cancelRatio})
  --think-ms MS             pause between two bookings of a customer (default ${d.thinkMs})
output:
  --report FILE             also write the JSON report to FILE
  --seed N                  random seed (default ${d.seed})
  --quiet                   no progress lines on stderr
  --log-level L             pino level for simulator logs on stderr (default warn)
vehicle mode:
  --type car|scooter|bike   type when it registers itself (default scooter)
  --lat, --lon              position (default: where the server has it, else Alexanderplatz)
  --silent                  receive commands and never answer
  --password P              the vehicle's MQTT password (from POST /vehicles or /vehicles/:id/credentials)
  --command-key K           the vehicle's command key, checked against each command's sig (with --password)
                            Without them: credentials from registering the vehicle (an already registered
                            one gets new ones), or, for demo-0001 … on the dev secret, derived ones.

Tokens are signed with FLEET_JWT_SECRET, or the dev secret as the server does without it.
Exit code: 0, or 1 when the run saw unexpected errors (network failures, 5xx, 4xx outside the contract).`;

class UsageError extends Error {}

const OPTIONS = {
  api: { type: 'string' },
  'mqtt-url': { type: 'string' },
  protocol: { type: 'string' },
  register: { type: 'boolean' },
  'no-register': { type: 'boolean' },
  vehicles: { type: 'string' },
  'id-prefix': { type: 'string' },
  'telemetry-ms': { type: 'string' },
  'reply-delay-ms': { type: 'string' },
  'silent-ratio': { type: 'string' },
  'offline-ratio': { type: 'string' },
  'connect-concurrency': { type: 'string' },
  customers: { type: 'string' },
  'duration-s': { type: 'string' },
  'ride-ms': { type: 'string' },
  'cancel-ratio': { type: 'string' },
  'think-ms': { type: 'string' },
  report: { type: 'string' },
  seed: { type: 'string' },
  quiet: { type: 'boolean' },
  'log-level': { type: 'string' },
  type: { type: 'string' },
  lat: { type: 'string' },
  lon: { type: 'string' },
  silent: { type: 'boolean' },
  password: { type: 'string' },
  'command-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function numberOption(values: Values, name: keyof Values, fallback: number, check: (value: number) => boolean, expected: string): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value) || !check(value)) throw new UsageError(`--${name} expects ${expected}, got ${JSON.stringify(raw)}`);
  return value;
}

const isCount = (value: number) => Number.isInteger(value) && value >= 0;
const isRatio = (value: number) => value >= 0 && value <= 1;

function settingsFrom(values: Values): SimulationSettings {
  const protocol = numberOption(values, 'protocol', d.protocolVersion, (value) => value === 4 || value === 5, '4 or 5');
  if (values.register && values['no-register']) throw new UsageError('--register and --no-register exclude each other');
  return {
    apiUrl: values.api ?? d.apiUrl,
    mqttUrl: values['mqtt-url'] ?? d.mqttUrl,
    protocolVersion: protocol as 4 | 5,
    vehicles: numberOption(values, 'vehicles', d.vehicles, isCount, 'a whole number ≥ 0'),
    customers: numberOption(values, 'customers', d.customers, isCount, 'a whole number ≥ 0'),
    durationMs: numberOption(values, 'duration-s', d.durationMs / 1000, (value) => value > 0, 'seconds > 0') * 1000,
    register: !values['no-register'],
    telemetryMs: numberOption(values, 'telemetry-ms', d.telemetryMs, isCount, 'milliseconds ≥ 0'),
    replyDelayMs: numberOption(values, 'reply-delay-ms', d.replyDelayMs, isCount, 'milliseconds ≥ 0'),
    silentRatio: numberOption(values, 'silent-ratio', d.silentRatio, isRatio, 'a ratio 0…1'),
    offlineRatio: numberOption(values, 'offline-ratio', d.offlineRatio, isRatio, 'a ratio 0…1'),
    rideMs: numberOption(values, 'ride-ms', d.rideMs, isCount, 'milliseconds ≥ 0'),
    cancelRatio: numberOption(values, 'cancel-ratio', d.cancelRatio, isRatio, 'a ratio 0…1'),
    thinkMs: numberOption(values, 'think-ms', d.thinkMs, isCount, 'milliseconds ≥ 0'),
    idPrefix: values['id-prefix'] ?? d.idPrefix,
    connectConcurrency: numberOption(values, 'connect-concurrency', d.connectConcurrency, (value) => Number.isInteger(value) && value > 0, 'a whole number > 0'),
    seed: numberOption(values, 'seed', d.seed, Number.isInteger, 'an integer'),
  };
}

function tokenSource(): TokenSource {
  const secret = server.jwtSecret;
  const cache = new Map<string, string>();
  return (sub: string, role: Role) => {
    const key = `${role}:${sub}`;
    let token = cache.get(key);
    if (!token) {
      token = signToken({ sub, role, ttlSeconds: 24 * 3600 }, secret);
      cache.set(key, token);
    }
    return token;
  };
}

const stderrLogger = (values: Values) => createLogger((values['log-level'] ?? 'warn') as Parameters<typeof createLogger>[0], pino.destination(2));

function describeProgress(progress: SimulationProgress): string {
  const time = `[${(progress.elapsedMs / 1000).toFixed(1).padStart(6)} s]`;
  if (progress.customers) {
    const c = progress.customers;
    return `${time} riding: ${c.bookings.confirmed}/${c.bookings.attempted} booked, ${c.unlocks.ok} unlocked, ${c.ends.completed} ended, ${c.cancels.cancelled} cancelled, ${c.errors.count} errors`;
  }
  if (progress.total !== undefined) return `${time} ${progress.phase} ${progress.done}/${progress.total}`;
  return `${time} ${progress.phase}`;
}

async function runLoad(values: Values): Promise<number> {
  const settings = settingsFrom(values);
  const stop = new AbortController();
  let interrupted = 0;
  process.on('SIGINT', () => {
    interrupted += 1;
    if (interrupted > 1) process.exit(130);
    console.error('stopping: customers end their rides, vehicles go offline (Ctrl-C again to quit at once)');
    stop.abort();
  });
  let lastPhaseLine = 0;
  const report = await runSimulation({
    ...settings,
    tokens: tokenSource(),
    logger: stderrLogger(values),
    signal: stop.signal,
    onProgress: (progress) => {
      if (values.quiet) return;
      // Registration and connection report every item: one line a second is enough for a console.
      if (progress.phase !== 'riding' && progress.done !== progress.total && Date.now() - lastPhaseLine < 1000) return;
      lastPhaseLine = Date.now();
      console.error(describeProgress(progress));
    },
  });
  const json = JSON.stringify(report, null, 2);
  console.log(json);
  if (values.report) writeFileSync(values.report, `${json}\n`);
  return report.errors > 0 ? 1 : 0;
}

const clock = () => new Date().toISOString().slice(11, 23);

function describeActivity(activity: DeviceActivity): string {
  switch (activity.kind) {
    case 'command':
      return `${activity.command.issuedAt.slice(11, 23)}  ← ${activity.command.type} (command ${activity.command.commandId}, booking ${activity.command.bookingId})`;
    case 'reply':
      return `${activity.reply.at.slice(11, 23)}  → ${activity.reply.type}${activity.reply.reason ? ` (${activity.reply.reason})` : ''} (command ${activity.reply.commandId})`;
    case 'dropped':
      return `${clock()}  ✗ dropped a ${activity.dropped.reason} command${activity.dropped.command ? ` ${activity.dropped.command.commandId}` : ''}`;
    default: {
      const never: never = activity;
      return String(never);
    }
  }
}

async function knownLocation(api: ApiClient, id: string, token: string): Promise<{ lat: number; lon: number } | null> {
  try {
    const result = await api.request('GET', `/vehicles/${encodeURIComponent(id)}`, token);
    const location = isRecord(result.body) && isRecord(result.body.location) ? result.body.location : null;
    return result.status === 200 && location && typeof location.lat === 'number' && typeof location.lon === 'number' ? { lat: location.lat, lon: location.lon } : null;
  } catch {
    // The API may be down or elsewhere: the vehicle still runs, from the default position.
    return null;
  }
}

async function runOneVehicle(id: string, values: Values): Promise<number> {
  const settings = settingsFrom(values);
  const type = values.type ?? 'scooter';
  if (type !== 'car' && type !== 'scooter' && type !== 'bike') throw new UsageError(`--type expects car, scooter or bike, got ${JSON.stringify(type)}`);
  const api = new ApiClient({ baseUrl: settings.apiUrl, timeoutMs: 10_000 });
  const operatorToken = tokenSource()('sim-operator', 'operator');
  // A vehicle that is already registered (FLEET_SEED) starts where the server has it, not at a default.
  const known = await knownLocation(api, id, operatorToken);
  const lat = numberOption(values, 'lat', known?.lat ?? 52.5219, (value) => value >= -90 && value <= 90, 'a latitude');
  const lon = numberOption(values, 'lon', known?.lon ?? 13.4132, (value) => value >= -180 && value <= 180, 'a longitude');
  if ((values.password === undefined) !== (values['command-key'] === undefined)) throw new UsageError('--password and --command-key go together');
  const given = values.password !== undefined && values['command-key'] !== undefined ? new Map([[id, { password: values.password, commandKey: values['command-key'] }]]) : undefined;
  const fleet = await startSimulatedFleet({
    vehicles: 1,
    ids: [id],
    ...(given && { credentials: given }),
    // FLEET_SEED vehicles of a server on the dev secret log in with derived credentials.
    deriveDemoCredentials: server.usingDevSecret,
    vehicleType: type as VehicleType,
    mqttUrl: settings.mqttUrl,
    protocolVersion: settings.protocolVersion,
    registration: settings.register ? { api, operatorToken } : null,
    telemetryMs: settings.telemetryMs,
    replyDelayMs: values['reply-delay-ms'] === undefined ? 0 : settings.replyDelayMs,
    silentRatio: values.silent ? 1 : 0,
    offlineRatio: 0,
    centre: { lat, lon },
    radiusM: 0,
    random: seededRandom(settings.seed),
    logger: stderrLogger(values),
  });
  const stats = fleet.stats();
  const registration = !settings.register
    ? 'not registered by the simulator (--no-register)'
    : stats.registered === 1
      ? `registered through ${settings.apiUrl}`
      : stats.alreadyRegistered === 1
        ? `already registered at ${settings.apiUrl}`
        : `NOT registered: ${settings.apiUrl} refused or did not answer (see the log)`;
  console.log(`vehicle ${id}${stats.registered === 1 ? ` (${type})` : ''} is online at ${settings.mqttUrl} (MQTT ${settings.protocolVersion === 5 ? '5' : '3.1.1'}); ${registration}`);
  console.log(`${values.silent ? 'receives commands and never answers' : 'answers UNLOCK and LOCK'}; telemetry ${settings.telemetryMs > 0 ? `every ${settings.telemetryMs} ms` : 'off'}. Ctrl-C to stop.`);
  const device = fleet.devices.get(id)!;
  const unwatch = watchDevice(device, (activity) => console.log(describeActivity(activity)));
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  unwatch();
  await fleet.stop();
  console.log(`vehicle ${id} went offline`);
  return 0;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    if (positionals[0] === 'vehicle') {
      if (positionals.length !== 2) throw new UsageError('vehicle mode takes exactly one vehicle id: npm run sim -- vehicle <id>');
      return await runOneVehicle(positionals[1]!, values);
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    return await runLoad(values);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${USAGE}`);
      return 2;
    }
    console.error(`sim: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

// Exits explicitly: thousands of MQTT clients and keep-alive sockets must not hold the process open.
main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
