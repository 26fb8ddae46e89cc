import { writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import type { parseArgs } from 'node:util';
import { BAD_ARGUMENTS, badArgumentLine, parseCommandLine, UsageError } from '../runtime/ground/command-line.js';
import { pino } from 'pino';
import { signToken, type Role } from '../actors/contract/tokens.js';
import type { VehicleType } from '../actors/contract/views.js';
import { createLogger } from '../runtime/ground/logger.js';
import { serverEnvOrExit } from './server-env.js';
import { ApiClient, isRecord, type TokenSource } from '../simulator/api-client.js';
import type { DeviceActivity } from '../simulator/fleet.js';
import { seededRandom } from '../simulator/random.js';
import { mixTotal, parseRideDistribution } from '../simulator/arrivals.js';
import { Dashboard } from '../simulator/dashboard.js';
import { reportTable } from '../simulator/report.js';
import { DEFAULT_SIMULATION, runSimulation, type SimulationSettings, type SimulationView, InvalidSimulation } from '../simulator/simulation.js';

/**
 * `npm run sim -- [options]`: a load run against a running fleetactors, report as JSON on stdout.
 * `npm run sim -- vehicle <id>`: one virtual vehicle until Ctrl-C, printing the commands it answers.
 * Only argument parsing and printing live here; the work is in fleet.ts, customers.ts, simulation.ts.
 */
// PORT, HOST, MQTT_PORT (or MQTT_URL) and FLEET_JWT_SECRET as `npm start` reads them: flags still win.
const server = serverEnvOrExit();
const d: SimulationSettings = { ...DEFAULT_SIMULATION, apiUrl: server.apiUrl, mqttUrl: server.mqttUrl, protocolVersion: server.mqttProtocolVersion };
const USAGE = `usage:
  npm run sim -- [options]                 devices over MQTT + customers over HTTP, live dashboard, report
  npm run sim -- vehicle <id> [options]    one virtual vehicle until Ctrl-C

connections:
  --api URL                 HTTP API (default ${d.apiUrl})
  --mqtt-url URL            MQTT broker (default ${d.mqttUrl})
  --protocol 4|5            MQTT 3.1.1 or 5 (default ${d.protocolVersion}; the embedded broker speaks 4)
  --no-register             do not register the vehicles through the API first: demo-0001 … (FLEET_SEED,
                            --id-prefix demo-) then log in with credentials derived from the dev secret
devices (light devices: one raw MQTT connection each, many thousands per thread):
  --vehicles N              devices (default ${d.vehicles})
  --id-prefix P             vehicle ids P0001 … (default ${d.idPrefix})
  --workers N               device threads (default: the number of cores; 0 = the main thread)
  --connect-rate R          new MQTT connections a second, ramp-up and reconnects (default ${d.connectRate})
  --settle-s S              at most this long for the server to show the devices online before customers
                            start (default ${d.settleMs / 1000})
  --telemetry-s S           telemetry period per device, QoS 0; 0 = off (default ${d.telemetryMs / 1000})
  --keepalive-s S           MQTT keepalive (default ${d.keepaliveS})
  --reply-delay-ms MS       delay before answering UNLOCK/LOCK (default ${d.replyDelayMs})
  --slow-reply-ms MS        delay of the slow devices (default ${d.slowReplyMs})
  --flap-every-s S          mean time a flapping device stays connected (default ${d.flapEveryMs / 1000})
  --source-addresses A,B    loopback source addresses for the connections (e.g. 127.0.0.2,127.0.0.3)
  --silent-ratio R          share of devices that never answer            (defaults: 0)
  --slow-ratio R            share that answer after --slow-reply-ms
  --flapping-ratio R        share whose link drops every so often (last will, reconnect)
  --duplicate-ratio R       share that send every answer twice
  --reject-ratio R          share that answer REJECTED
customers:
  --rate R                  open loop: journeys a second, Poisson arrivals (default ${d.rate})
  --customers M             closed loop: customers riding one journey after another (default ${d.customers})
  --duration-s S            how long journeys arrive (default ${d.durationMs / 1000})
  --ride-s D                ride length: 3, 2-8 (uniform) or exp:5 (default ${d.ride})
  --cancel-ratio R          share of journeys that book and cancel (default ${d.journeyMix.cancel})
  --retry-ratio R           share that send their booking twice with one Idempotency-Key (default 0)
  --race-ratio R            share where --race-size customers book one vehicle at once (default 0)
  --race-size N             (default ${d.raceSize})
  --outside-ratio R         share whose rider rides out of the operating area, tries to end there (must
                            get 409 ride-end-not-allowed), rides back in and ends (default 0). Where the
                            server's area (/gbfs/geofencing_zones.json) restricts ends, every rider ends
                            at a place where the vehicle's type may; counted under "operating area"
  --radius-m M              devices and customers within M of Alexanderplatz (default ${d.radiusM})
  --search-m M              a customer looks for a vehicle within M (default ${d.searchRadiusM})
  --drain-s S               after the end, how long running journeys get to finish (default ${d.drainMs / 1000})
output:
  --json                    only the JSON report on stdout (use npm run -s sim -- … --json)
  --report FILE             also write the JSON report to FILE
  --quiet                   no dashboard on stderr
  --seed N                  random seed (default ${d.seed})
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
Exit code: 0 when every invariant held, 1 when one broke (double booking, an unlock never delivered,
an UNLOCK for another vehicle's booking, a 5xx outside the contract, a journey that did not end in a
contract answer, a ride ended where the operating area forbids it) or the run could not start, 2 for bad arguments.`;


const OPTIONS = {
  api: { type: 'string' },
  'mqtt-url': { type: 'string' },
  protocol: { type: 'string' },
  register: { type: 'boolean' },
  'no-register': { type: 'boolean' },
  vehicles: { type: 'string' },
  'id-prefix': { type: 'string' },
  workers: { type: 'string' },
  'connect-rate': { type: 'string' },
  'settle-s': { type: 'string' },
  'telemetry-s': { type: 'string' },
  'keepalive-s': { type: 'string' },
  'reply-delay-ms': { type: 'string' },
  'slow-reply-ms': { type: 'string' },
  'flap-every-s': { type: 'string' },
  'source-addresses': { type: 'string' },
  'silent-ratio': { type: 'string' },
  'slow-ratio': { type: 'string' },
  'flapping-ratio': { type: 'string' },
  'duplicate-ratio': { type: 'string' },
  'reject-ratio': { type: 'string' },
  rate: { type: 'string' },
  customers: { type: 'string' },
  'duration-s': { type: 'string' },
  'ride-s': { type: 'string' },
  'cancel-ratio': { type: 'string' },
  'retry-ratio': { type: 'string' },
  'race-ratio': { type: 'string' },
  'race-size': { type: 'string' },
  'outside-ratio': { type: 'string' },
  'radius-m': { type: 'string' },
  'search-m': { type: 'string' },
  'drain-s': { type: 'string' },
  json: { type: 'boolean' },
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
const isPositive = (value: number) => value > 0;
const isNonNegative = (value: number) => value >= 0;

function settingsFrom(values: Values): SimulationSettings {
  const protocol = numberOption(values, 'protocol', d.protocolVersion, (value) => value === 4 || value === 5, '4 or 5');
  if (values.register && values['no-register']) throw new UsageError('--register and --no-register exclude each other');
  const ratio = (name: keyof Values, fallback = 0) => numberOption(values, name, fallback, isRatio, 'a ratio 0…1');
  const ride = values['ride-s'] ?? d.ride;
  try {
    parseRideDistribution(ride);
  } catch (error) {
    throw new UsageError(`--ride-s: ${(error as Error).message}`);
  }
  const addresses = (values['source-addresses'] ?? '').split(',').map((address) => address.trim()).filter(Boolean);
  for (const address of addresses) if (isIP(address) === 0) throw new UsageError(`--source-addresses expects IP addresses, got ${JSON.stringify(address)}`);
  const settings: SimulationSettings = {
    apiUrl: values.api ?? d.apiUrl,
    mqttUrl: values['mqtt-url'] ?? d.mqttUrl,
    protocolVersion: protocol as 4 | 5,
    vehicles: numberOption(values, 'vehicles', d.vehicles, isCount, 'a whole number ≥ 0'),
    idPrefix: values['id-prefix'] ?? d.idPrefix,
    register: !values['no-register'],
    registerConcurrency: d.registerConcurrency,
    workers: numberOption(values, 'workers', availableParallelism(), isCount, 'a whole number ≥ 0'),
    connectRate: numberOption(values, 'connect-rate', d.connectRate, isPositive, 'connections a second > 0'),
    connectWaitMs: d.connectWaitMs,
    settleMs: numberOption(values, 'settle-s', d.settleMs / 1000, isNonNegative, 'seconds ≥ 0') * 1000,
    telemetryMs: numberOption(values, 'telemetry-s', d.telemetryMs / 1000, isNonNegative, 'seconds ≥ 0') * 1000,
    keepaliveS: numberOption(values, 'keepalive-s', d.keepaliveS, (value) => Number.isInteger(value) && value > 0 && value <= 65535, 'whole seconds 1…65535'),
    replyDelayMs: numberOption(values, 'reply-delay-ms', d.replyDelayMs, isNonNegative, 'milliseconds ≥ 0'),
    slowReplyMs: numberOption(values, 'slow-reply-ms', d.slowReplyMs, isNonNegative, 'milliseconds ≥ 0'),
    flapEveryMs: numberOption(values, 'flap-every-s', d.flapEveryMs / 1000, isPositive, 'seconds > 0') * 1000,
    sourceAddresses: addresses,
    deviceMix: { silent: ratio('silent-ratio'), slow: ratio('slow-ratio'), flapping: ratio('flapping-ratio'), duplicate: ratio('duplicate-ratio'), reject: ratio('reject-ratio') },
    rate: numberOption(values, 'rate', d.rate, isNonNegative, 'journeys a second ≥ 0'),
    customers: numberOption(values, 'customers', d.customers, isCount, 'a whole number ≥ 0'),
    durationMs: numberOption(values, 'duration-s', d.durationMs / 1000, isPositive, 'seconds > 0') * 1000,
    ride,
    journeyMix: { cancel: ratio('cancel-ratio', d.journeyMix.cancel), retry: ratio('retry-ratio'), race: ratio('race-ratio'), outside: ratio('outside-ratio') },
    raceSize: numberOption(values, 'race-size', d.raceSize, (value) => Number.isInteger(value) && value >= 2, 'a whole number ≥ 2'),
    radiusM: numberOption(values, 'radius-m', d.radiusM, isPositive, 'metres > 0'),
    searchRadiusM: numberOption(values, 'search-m', d.searchRadiusM, (value) => value > 0 && value <= 100_000, 'metres 1…100000'),
    drainMs: numberOption(values, 'drain-s', d.drainMs / 1000, isNonNegative, 'seconds ≥ 0') * 1000,
    seed: numberOption(values, 'seed', d.seed, Number.isInteger, 'an integer'),
  };
  if (mixTotal(settings.deviceMix) > 1) throw new UsageError('the device ratios (--silent-ratio … --reject-ratio) add up to more than 1');
  if (mixTotal(settings.journeyMix) > 1) throw new UsageError('--cancel-ratio, --retry-ratio, --race-ratio and --outside-ratio add up to more than 1');
  return settings;
}

function tokenSource(): TokenSource {
  const secret = server.jwtSecret;
  // Customers are new on every journey: a cache would only grow. The operator's token is asked for once.
  return (sub: string, role: Role) => signToken({ sub, role, ttlSeconds: 24 * 3600 }, secret);
}

const stderrLogger = (values: Values) => createLogger((values['log-level'] ?? 'warn') as Parameters<typeof createLogger>[0], pino.destination(2));

async function runLoad(values: Values): Promise<number> {
  const settings = settingsFrom(values);
  const stop = new AbortController();
  let interrupted = 0;
  process.on('SIGINT', () => {
    interrupted += 1;
    if (interrupted > 1) process.exit(130);
    console.error('stopping: no new journeys, running ones finish, devices go offline (Ctrl-C again to quit at once)');
    stop.abort();
  });
  const dashboard = values.quiet ? null : new Dashboard(process.stderr);
  const report = await runSimulation({
    ...settings,
    tokens: tokenSource(),
    logger: stderrLogger(values),
    signal: stop.signal,
    ...(dashboard && { onView: (view: SimulationView) => dashboard.update(view) }),
  });
  const json = JSON.stringify(report, null, 2);
  if (values.json) console.log(json);
  else console.log(reportTable(report));
  if (values.report) writeFileSync(values.report, `${json}\n`);
  return report.ok ? 0 : 1;
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
  // Loaded here only: the full `mqtt` client is for this one vehicle, not for the light devices of a load run.
  const { startSimulatedFleet, watchDevice } = await import('../simulator/fleet.js');
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
  // A second Ctrl-C ends it at once; so does a broker that is gone (a clean MQTT goodbye may wait for
  // it): the process never outlives its terminal (seen: orphans of the README walkthrough's test).
  const forceExit = () => process.exit(130);
  process.once('SIGINT', forceExit);
  process.once('SIGTERM', forceExit);
  unwatch();
  const stopped = await Promise.race([fleet.stop().then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), STOP_GRACE_MS).unref())]);
  console.log(stopped ? `vehicle ${id} went offline` : `vehicle ${id} stopped without a goodbye (the broker did not answer within ${STOP_GRACE_MS / 1000} s)`);
  return 0;
}

/** How long `vehicle` mode waits for its goodbye to the broker after Ctrl-C. */
const STOP_GRACE_MS = 3_000;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine('sim', USAGE, { options: OPTIONS, allowPositionals: true, strict: true });
  try {
    if (positionals[0] === 'vehicle') {
      if (positionals.length !== 2) throw new UsageError('vehicle mode takes exactly one vehicle id: npm run sim -- vehicle <id>');
      return await runOneVehicle(positionals[1]!, values);
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    return await runLoad(values);
  } catch (error) {
    if (error instanceof UsageError || error instanceof InvalidSimulation) {
      console.error(badArgumentLine('sim', error.message));
      return BAD_ARGUMENTS;
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
