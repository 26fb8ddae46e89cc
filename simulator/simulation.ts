import type { Logger } from '../runtime/ground/logger.js';
import { createLogger } from '../runtime/ground/logger.js';
import { demoDeviceCredentials, isDemoVehicleId } from '../actors/contract/demo-credentials.js';
import { endAllowedEverywhere, parseOperatingArea } from '../actors/contract/operating-area.js';
import { areaPlaces, type AreaPlaces } from './area-places.js';
import { ApiClient, isRecord, type TokenSource } from './api-client.js';
import { assignBehaviours, mixTotal, parseRideDistribution, type DeviceMix, type JourneyMix } from './arrivals.js';
import { startDeviceFleet, type DeviceFleetStats } from './device-fleet.js';
import type { DeviceSpec } from './device-pool.js';
import { vehicleId } from './fleet-ids.js';
import { InvariantMonitor, invariantsHold } from './invariants.js';
import { startJourneys, type JourneySnapshot } from './journeys.js';
import type { DeviceBehaviour } from './light-device.js';
import { seededRandom } from './random.js';
import { registerVehicles, type DeviceSecrets } from './registration.js';
import { LatencyRecorder, type SimulationReport } from './report.js';
import { pause } from './timing.js';

/** Everything a run is made of; `DEFAULT_SIMULATION` has the CLI's defaults. */
export interface SimulationSettings {
  readonly apiUrl: string;
  readonly mqttUrl: string;
  readonly protocolVersion: 4 | 5;
  readonly vehicles: number;
  readonly idPrefix: string;
  /** Register the vehicles through the API first; without it, `demo-` ids log in with derived credentials. */
  readonly register: boolean;
  readonly registerConcurrency: number;
  /** Device threads; 0 = on the main thread. */
  readonly workers: number;
  /** New MQTT connections a second, for the ramp-up and for every reconnect storm. */
  readonly connectRate: number;
  /** How long the devices get to come online before the customers start anyway. */
  readonly connectWaitMs: number;
  /**
   * Then, how long the server gets to take in the connect storm (presence of every device) before the
   * customers start anyway: the run measures the steady state, the storm has its own figures.
   */
  readonly settleMs: number;
  readonly telemetryMs: number;
  readonly keepaliveS: number;
  readonly replyDelayMs: number;
  readonly slowReplyMs: number;
  readonly flapEveryMs: number;
  /** Loopback source addresses for the device connections (more ephemeral ports towards one broker). */
  readonly sourceAddresses: readonly string[];
  readonly deviceMix: DeviceMix;
  /** Open loop: journeys a second (Poisson arrivals). */
  readonly rate: number;
  /** Closed loop: customers riding one journey after the other. */
  readonly customers: number;
  readonly durationMs: number;
  /** `3`, `2-8` or `exp:5` seconds. */
  readonly ride: string;
  readonly journeyMix: JourneyMix;
  readonly raceSize: number;
  readonly radiusM: number;
  readonly searchRadiusM: number;
  readonly drainMs: number;
  readonly seed: number;
}

export const DEFAULT_SIMULATION: SimulationSettings = {
  apiUrl: 'http://127.0.0.1:3000',
  mqttUrl: 'mqtt://127.0.0.1:1884',
  protocolVersion: 4,
  vehicles: 100,
  idPrefix: 'sim-',
  register: true,
  registerConcurrency: 16,
  workers: 0,
  connectRate: 1000,
  connectWaitMs: 120_000,
  settleMs: 120_000,
  telemetryMs: 5000,
  keepaliveS: 60,
  replyDelayMs: 20,
  slowReplyMs: 3000,
  flapEveryMs: 20_000,
  sourceAddresses: [],
  deviceMix: { silent: 0, slow: 0, flapping: 0, duplicate: 0, reject: 0 },
  rate: 5,
  customers: 0,
  durationMs: 30_000,
  ride: '1-3',
  journeyMix: { cancel: 0.1, retry: 0, race: 0, outside: 0 },
  raceSize: 3,
  radiusM: 2000,
  searchRadiusM: 300,
  drainMs: 30_000,
  seed: 1,
};

/** Berlin Alexanderplatz: where FLEET_SEED puts the demo vehicles (server/seed.ts). */
const CENTRE = { lat: 52.5219, lon: 13.4132 };
const METRES_PER_DEGREE = 111_320;

export type SimulationPhase = 'registering' | 'connecting' | 'settling' | 'riding' | 'draining' | 'stopping';

export interface SimulationView {
  readonly phase: SimulationPhase;
  readonly elapsedMs: number;
  readonly devices: DeviceFleetStats | null;
  readonly registered?: { readonly done: number; readonly total: number };
  readonly journeys: JourneySnapshot | null;
  readonly roundTrip: LatencyRecorder;
}

export interface SimulationOptions extends SimulationSettings {
  readonly tokens: TokenSource;
  readonly logger?: Logger;
  /** Ends the customer phase early (Ctrl-C); journeys under way still finish and the run reports. */
  readonly signal?: AbortSignal;
  /** About once a second, for the dashboard. */
  readonly onView?: (view: SimulationView) => void;
}

/** The run cannot go on: no device could connect. */
export class SimulationFailed extends Error {
  override readonly name = 'SimulationFailed';
}

/** A setting that cannot make a run (the CLI turns it into a usage error). */
export class InvalidSimulation extends Error {
  override readonly name = 'InvalidSimulation';
}

/**
 * A whole run: register and connect the devices, offer journeys for `durationMs`, let the last ones
 * finish, take the devices offline, check the invariants and report.
 */
export async function runSimulation(options: SimulationOptions): Promise<SimulationReport> {
  const log = (options.logger ?? createLogger('silent')).child({ component: 'simulation' });
  if (mixTotal(options.deviceMix) > 1) throw new InvalidSimulation('the device behaviour shares add up to more than 1');
  if (mixTotal(options.journeyMix) > 1) throw new InvalidSimulation('the journey kind shares add up to more than 1');
  const ride = parseRideDistribution(options.ride);
  const started = Date.now();
  const random = seededRandom(options.seed);
  const api = new ApiClient({ baseUrl: options.apiUrl });
  const broker = new URL(options.mqttUrl);
  const ids = Array.from({ length: options.vehicles }, (_, index) => vehicleId(options.idPrefix, index));
  const behaviours = assignBehaviours(ids.length, options.deviceMix, random);
  const roundTrip = new LatencyRecorder();
  const delivery = new LatencyRecorder();
  const monitor = new InvariantMonitor();
  let phase: SimulationPhase = 'registering';
  let registered = { done: 0, total: ids.length };
  let journeys: ReturnType<typeof startJourneys> | null = null;
  let fleet: ReturnType<typeof startDeviceFleet> | null = null;
  const view = (): SimulationView => ({ phase, elapsedMs: Date.now() - started, devices: fleet?.stats() ?? null, registered, journeys: journeys?.snapshot() ?? null, roundTrip });
  const viewer = options.onView ? setInterval(() => options.onView!(view()), 1000) : undefined;

  try {
    let secrets = new Map<string, DeviceSecrets>();
    let registration = { registered: 0, alreadyRegistered: 0, failed: 0 };
    if (options.register) {
      const result = await registerVehicles({
        api,
        operatorToken: options.tokens('sim-operator', 'operator'),
        ids,
        locationOf: () => randomPoint(random, options.radiusM),
        concurrency: options.registerConcurrency,
        logger: log,
        onProgress: (done, total) => (registered = { done, total }),
      });
      secrets = result.secrets;
      registration = result;
    }
    const specs: DeviceSpec[] = [];
    ids.forEach((id, index) => {
      const known = secrets.get(id) ?? (isDemoVehicleId(id) ? demoDeviceCredentials(id) : undefined);
      if (known) specs.push({ id, password: known.password, commandKey: known.commandKey, behaviour: behaviours[index]! });
    });
    if (specs.length < ids.length) log.warn({ withoutCredentials: ids.length - specs.length }, 'vehicles without credentials are left out (register them, or use demo- ids on the dev secret)');

    phase = 'connecting';
    const rssBefore = process.memoryUsage().rss;
    const connectStarted = Date.now();
    fleet = startDeviceFleet({
      specs,
      workers: options.workers,
      seed: options.seed,
      sink: {
        command: (record) => {
          monitor.deviceCommand(record);
          if (record.deliveryMs !== null) delivery.recordUs(record.deliveryMs * 1000);
        },
        roundTrip: (ms) => roundTrip.recordUs(ms * 1000),
      },
      settings: {
        host: broker.hostname,
        port: Number(broker.port || 1883),
        protocolVersion: options.protocolVersion,
        keepaliveS: options.keepaliveS,
        sessionExpiryS: 3600,
        connectTimeoutMs: 30_000,
        replyDelayMs: options.replyDelayMs,
        slowReplyMs: options.slowReplyMs,
        connectRate: options.connectRate,
        reconnectMinMs: 500,
        reconnectMaxMs: 30_000,
        telemetryMs: options.telemetryMs,
        flapEveryMs: options.flapEveryMs,
        localAddresses: options.sourceAddresses,
        centre: CENTRE,
        radiusM: options.radiusM,
      },
    });
    const connectDeadline = Date.now() + options.connectWaitMs;
    while (fleet.stats().online < specs.length && Date.now() < connectDeadline && !options.signal?.aborted) await pause(100, options.signal);
    const connected = fleet.stats();
    const secondsToConnect = (Date.now() - connectStarted) / 1000;
    // Measured with every device online: the threads' share of the process is what a device costs.
    const rss = process.memoryUsage().rss;
    log.info({ online: connected.online, seconds: secondsToConnect }, 'devices online');
    if (specs.length > 0 && connected.online === 0) throw new SimulationFailed(`no device could connect to ${options.mqttUrl} within ${options.connectWaitMs / 1000} s (${connected.refused} refused, ${connected.connectFailures} failed attempts)`);

    phase = 'settling';
    const settleStarted = Date.now();
    const serverSawThemOnline = await serverSeesOnline(api, options.tokens('sim-operator', 'operator'), specs, options.settleMs, options.signal);
    const secondsToSettle = (Date.now() - settleStarted) / 1000;

    phase = 'riding';
    const places = await placesOf(api, options.tokens('sim-operator', 'operator'), options.radiusM, seededRandom(options.seed + 1), log);
    let minOnline = connected.online;
    const watchOnline = setInterval(() => (minOnline = Math.min(minOnline, fleet!.stats().online)), 250);
    journeys = startJourneys(
      {
        ratePerS: options.rate,
        customers: options.customers,
        durationMs: options.durationMs,
        ride,
        mix: options.journeyMix,
        raceSize: options.raceSize,
        centre: CENTRE,
        radiusM: options.radiusM,
        searchRadiusM: options.searchRadiusM,
        vehiclePrefix: options.idPrefix,
        drainMs: options.drainMs,
        places,
      },
      { api, tokens: options.tokens, random, monitor, rideTo: fleet.rideTo, logger: log, ...(options.signal && { signal: options.signal }) },
    );
    const riding = Date.now();
    setTimeout(() => (phase = 'draining'), options.durationMs).unref();
    const customers = await journeys.done;
    const ridingS = (Date.now() - riding) / 1000;
    clearInterval(watchOnline);
    const onlineAtEnd = fleet.stats().online;

    phase = 'stopping';
    const final = await fleet.stop();
    const invariants = monitor.finish();
    const behaviourCounts: Partial<Record<DeviceBehaviour, number>> = {};
    for (const spec of specs) behaviourCounts[spec.behaviour] = (behaviourCounts[spec.behaviour] ?? 0) + 1;
    const offeredS = Math.max(0.001, Math.min(ridingS, options.durationMs / 1000));
    const succeeded = (customers.outcomes.completed ?? 0) + (customers.outcomes.cancelled ?? 0);
    const { tokens: _tokens, logger: _logger, signal: _signal, onView: _onView, ...settings } = options;
    return {
      startedAt: new Date(started).toISOString(),
      durationS: round3((Date.now() - started) / 1000),
      settings,
      devices: {
        requested: ids.length,
        withCredentials: specs.length,
        registered: registration.registered,
        alreadyRegistered: registration.alreadyRegistered,
        registrationFailed: registration.failed,
        behaviours: behaviourCounts,
        threads: final.threads,
        onlineAtStart: connected.online,
        secondsToConnect: round3(secondsToConnect),
        secondsUntilServerSawThemOnline: serverSawThemOnline ? round3(secondsToSettle) : null,
        minOnlineWhileRiding: minOnline,
        onlineAtEnd,
        connects: final.connects,
        reconnects: final.reconnects,
        drops: final.drops,
        connectFailures: final.connectFailures,
        refused: final.refused,
        commands: final.commands,
        replies: final.replies,
        telemetrySent: final.telemetrySent,
        rssBytes: rss,
        rssPerDeviceBytes: specs.length > 0 ? Math.round(rss / specs.length) : 0,
        rssAddedPerDeviceBytes: specs.length > 0 ? Math.round((rss - rssBefore) / specs.length) : 0,
      },
      journeys: {
        offered: customers.offered,
        offeredPerS: round3(customers.offered / offeredS),
        finished: customers.finished,
        succeededPerS: round3(succeeded / ridingS),
        inFlightAtEnd: customers.inFlight,
        outcomes: customers.outcomes,
      },
      area: customers.area,
      latency: { ...customers.steps, mqttRoundTrip: roundTrip.summary(), commandDelivery: delivery.summary() },
      errors: customers.errors,
      invariants,
      ok: invariantsHold(invariants),
    };
  } finally {
    clearInterval(viewer);
    await fleet?.stop();
  }
}

/**
 * Until the server shows a sample of the devices (spread over the fleet, all answering ones) online,
 * or `settleMs` passed. False when it did not get there.
 */
async function serverSeesOnline(api: ApiClient, token: string, specs: readonly DeviceSpec[], settleMs: number, signal: AbortSignal | undefined): Promise<boolean> {
  const steady = specs.filter((spec) => spec.behaviour !== 'flapping');
  const sample = Array.from(new Set(Array.from({ length: Math.min(10, steady.length) }, (_, index) => steady[Math.floor((index * steady.length) / Math.min(10, steady.length))]!.id)));
  const deadline = Date.now() + settleMs;
  let pending = sample;
  while (pending.length > 0 && Date.now() < deadline && !signal?.aborted) {
    const seen = await Promise.all(
      pending.map((id) =>
        api.request('GET', `/vehicles/${encodeURIComponent(id)}`, token).then(
          (result) => isRecord(result.body) && result.body.online === true,
          () => false,
        ),
      ),
    );
    pending = pending.filter((_, index) => !seen[index]);
    if (pending.length > 0) await pause(500, signal);
  }
  return pending.length === 0;
}

/**
 * The operating area the server publishes (`/gbfs/geofencing_zones.json`, public), turned into places
 * to end rides at. null: no feed there (another server), or an area that lets every type end anywhere.
 */
async function placesOf(api: ApiClient, token: string, radiusM: number, random: () => number, log: Logger): Promise<AreaPlaces | null> {
  const answer = await api.request('GET', '/gbfs/geofencing_zones.json', token).catch(() => null);
  if (answer?.status !== 200 || !isRecord(answer.body)) return null;
  const parsed = parseOperatingArea(answer.body);
  if (!parsed.ok) {
    log.warn({ errors: parsed.errors }, 'the published operating area cannot be read: riders end where they are');
    return null;
  }
  if ((['car', 'scooter', 'bike'] as const).every((type) => endAllowedEverywhere(parsed.area, type))) return null;
  return areaPlaces(parsed.area, CENTRE, radiusM, random);
}

function randomPoint(random: () => number, radiusM: number): { lat: number; lon: number } {
  const angle = random() * 2 * Math.PI;
  const distance = radiusM * Math.sqrt(random());
  return {
    lat: round6(CENTRE.lat + (distance * Math.cos(angle)) / METRES_PER_DEGREE),
    lon: round6(CENTRE.lon + (distance * Math.sin(angle)) / (METRES_PER_DEGREE * Math.cos((CENTRE.lat * Math.PI) / 180))),
  };
}

const round3 = (value: number): number => Math.round(value * 1000) / 1000;
const round6 = (value: number): number => Math.round(value * 1e6) / 1e6;
