import type { VehicleType } from '../actors/contract/views.js';
import { createLogger, type Logger } from '../runtime/ground/logger.js';
import { ApiUnreachable, isRecord, type ApiClient } from './api-client.js';
import { seededRandom, shuffledIndices, type Random } from './random.js';
import { LatencyRecorder, type VehicleFleetReport } from './report.js';
import { demoDeviceCredentials, isDemoVehicleId } from '../actors/contract/demo-credentials.js';
import { VirtualVehicle, type VehicleSecrets } from './virtual-vehicle.js';
import { forEachLimited } from './concurrency.js';
import { vehicleId } from './fleet-ids.js';

export interface GeoPoint {
  readonly lat: number;
  readonly lon: number;
}

export interface FleetRegistration {
  readonly api: ApiClient;
  readonly operatorToken: string;
  /** Registrations in flight at once (default 16). */
  readonly concurrency?: number;
}

export interface SimulatedFleetOptions {
  readonly vehicles: number;
  readonly mqttUrl: string;
  readonly protocolVersion: 4 | 5;
  /** Vehicle ids are `${idPrefix}0001` …; default `sim-`. */
  readonly idPrefix?: string;
  /** Exactly these ids instead (`vehicles` is then ignored): `npm run sim -- vehicle <id>`. */
  readonly ids?: readonly string[];
  /** Every vehicle of this type; default scooter, car, bike in turn. */
  readonly vehicleType?: VehicleType;
  /**
   * Register every vehicle through the API first and log in with the credentials it answers. A taken id
   * counts as already registered; its credentials are then rotated through the API (the old ones are
   * shown only once), unless they come from `credentials` or the demo derivation. null: skip.
   */
  readonly registration: FleetRegistration | null;
  /** Credentials given by hand (`npm run sim -- vehicle <id> --password …`), by vehicle id. */
  readonly credentials?: ReadonlyMap<string, VehicleSecrets>;
  /**
   * `demo-0001` … log in with credentials derived from the development secret (actors/contract/demo-credentials.ts):
   * true when the server runs without FLEET_JWT_SECRET, as FLEET_SEED vehicles then have them.
   */
  readonly deriveDemoCredentials?: boolean;
  /** Period of each vehicle's telemetry (QoS 0); 0 turns telemetry off. */
  readonly telemetryMs: number;
  /** Mean delay before a vehicle answers UNLOCK/LOCK; each vehicle gets 0.5–1.5 × this. */
  readonly replyDelayMs: number;
  /** Share of vehicles that receive commands and never answer (the unlock times out). */
  readonly silentRatio: number;
  /** Share of vehicles that announce themselves offline and leave (bookings fail fast with 503). */
  readonly offlineRatio: number;
  /** Default: Berlin Alexanderplatz, where `FLEET_SEED` puts its vehicles too. */
  readonly centre?: GeoPoint;
  /** Vehicles start within this distance of the centre (default 2000 m). */
  readonly radiusM?: number;
  /**
   * Connections being set up at once (default 50). A broker handshake is cheap, a thousand of them
   * in the same tick are not: they would all time out together on two cores.
   */
  readonly connectConcurrency?: number;
  readonly random?: Random;
  readonly logger?: Logger;
  /** Called as registration and connection progress (for a CLI's status line). */
  readonly onProgress?: (phase: 'registering' | 'connecting', done: number, total: number) => void;
}

export interface SimulatedFleet {
  /** Every simulated vehicle id, whatever its behaviour. */
  readonly ids: readonly string[];
  readonly silentIds: ReadonlySet<string>;
  readonly offlineIds: ReadonlySet<string>;
  /** The connected devices by id (offline ones are not in it). */
  readonly devices: ReadonlyMap<string, VirtualVehicle>;
  stats(): VehicleFleetReport;
  /** Stops telemetry and takes every device offline (retained `{online: false}`, then DISCONNECT). */
  stop(): Promise<void>;
}

const TYPES: readonly VehicleType[] = ['scooter', 'car', 'bike'];
const ALEXANDERPLATZ: GeoPoint = { lat: 52.5219, lon: 13.4132 };
const METRES_PER_DEGREE = 111_320;
/** Riding speed while unlocked; a parked vehicle drifts slowly (GPS wander), as the brief asks. */
const RIDE_KMH = 15;
const PARKED_KMH = 1;
/** Battery swap below this: a drained vehicle (< 15 %) is not bookable and would end the simulation. */
const SWAP_BELOW = 20;

/** Registration or connection cannot work for any vehicle (API or broker unreachable, token refused). */
export class FleetStartFailed extends Error {
  override readonly name = 'FleetStartFailed';
}

export { vehicleId } from './fleet-ids.js';

interface Motion {
  angle: number;
  readonly radiusM: number;
  battery: number;
}

/**
 * Starts `vehicles` virtual devices, one MQTT client each, after registering them through the API.
 * Connections are staggered (`connectConcurrency`) and telemetry is spread evenly over its period by
 * one timer for the whole fleet, so 1000–2000 vehicles run on two cores.
 */
export async function startSimulatedFleet(options: SimulatedFleetOptions): Promise<SimulatedFleet> {
  const log = (options.logger ?? createLogger('silent')).child({ component: 'sim-fleet' });
  const random = options.random ?? seededRandom(Date.now());
  const prefix = options.idPrefix ?? 'sim-';
  const centre = options.centre ?? ALEXANDERPLATZ;
  const ids = options.ids ? [...options.ids] : Array.from({ length: options.vehicles }, (_, index) => vehicleId(prefix, index));
  // One shuffle, two disjoint shares: an offline vehicle never gets a command to be silent about.
  const order = shuffledIndices(ids.length, random);
  const silentCount = Math.round(ids.length * clampRatio(options.silentRatio));
  const offlineCount = Math.min(ids.length - silentCount, Math.round(ids.length * clampRatio(options.offlineRatio)));
  const silentIds = new Set(order.slice(0, silentCount).map((index) => ids[index]!));
  const offlineIds = new Set(order.slice(silentCount, silentCount + offlineCount).map((index) => ids[index]!));

  const counters = { registered: 0, alreadyRegistered: 0, registrationFailed: 0, connectFailed: 0, telemetrySent: 0, telemetryFailed: 0 };
  const secrets = new Map<string, VehicleSecrets>(options.credentials ?? []);
  const knownSecrets = (id: string): VehicleSecrets | undefined =>
    secrets.get(id) ?? (options.deriveDemoCredentials && isDemoVehicleId(id) ? demoDeviceCredentials(id) : undefined);
  const connectLatency = new LatencyRecorder();
  const motions = new Map<string, Motion>();
  for (const id of ids) {
    const radiusM = (options.radiusM ?? 2000) * Math.sqrt(random());
    motions.set(id, { angle: random() * 2 * Math.PI, radiusM: Math.max(options.radiusM === 0 ? 1 : 50, radiusM), battery: 60 + Math.floor(random() * 40) });
  }
  const positionOf = (motion: Motion): GeoPoint => ({
    lat: round6(centre.lat + (motion.radiusM * Math.cos(motion.angle)) / METRES_PER_DEGREE),
    lon: round6(centre.lon + (motion.radiusM * Math.sin(motion.angle)) / (METRES_PER_DEGREE * Math.cos((centre.lat * Math.PI) / 180))),
  });

  if (options.registration) {
    const { api, operatorToken } = options.registration;
    let done = 0;
    await forEachLimited(ids, options.registration.concurrency ?? 16, async (id, index) => {
      try {
        const result = await api.request('POST', '/vehicles', operatorToken, { id, type: options.vehicleType ?? TYPES[index % TYPES.length], location: positionOf(motions.get(id)!) });
        if (result.status === 201) {
          counters.registered += 1;
          const issued = secretsIn(result.body);
          if (issued) secrets.set(id, issued);
        } else if (result.status === 409) {
          counters.alreadyRegistered += 1;
          const known = knownSecrets(id);
          if (known) secrets.set(id, known);
          else {
            const rotated = await api.request('POST', `/vehicles/${encodeURIComponent(id)}/credentials`, operatorToken);
            const issued = rotated.status === 200 && isRecord(rotated.body) ? secretsIn(rotated.body) : null;
            if (issued) secrets.set(id, issued);
            else log.warn({ vehicleId: id, status: rotated.status, problem: rotated.problem }, 'credentials of an already registered vehicle could not be rotated');
          }
        } else if (result.status === 401 || result.status === 403) {
          throw new FleetStartFailed(`the API refused the operator token (${result.status} ${result.problem}): sign it with the server's FLEET_JWT_SECRET`);
        } else {
          counters.registrationFailed += 1;
          log.warn({ vehicleId: id, status: result.status, problem: result.problem }, 'vehicle registration refused');
        }
      } catch (error) {
        if (error instanceof FleetStartFailed) throw error;
        // Unreachable for one is unreachable for all: say so once instead of once per vehicle.
        if (error instanceof ApiUnreachable && counters.registered + counters.alreadyRegistered === 0) {
          throw new FleetStartFailed(`cannot register vehicles: ${error.message} (is the server running?)`, { cause: error });
        }
        counters.registrationFailed += 1;
        log.warn({ vehicleId: id, error: error instanceof Error ? error.message : String(error) }, 'vehicle registration failed');
      }
      options.onProgress?.('registering', ++done, ids.length);
    });
    if (counters.registrationFailed === ids.length && ids.length > 0) throw new FleetStartFailed('no vehicle could be registered through the API (see the log)');
  }

  const devices = new Map<string, VirtualVehicle>();
  let firstConnectError: unknown;
  let attempted = 0;
  const concurrency = options.connectConcurrency ?? 50;
  const connecting = forEachLimited(ids, concurrency, async (id) => {
    const started = process.hrtime.bigint();
    try {
      const credentials = secrets.get(id) ?? knownSecrets(id);
      if (!credentials) throw new Error(`no credentials for ${id}: register it through the API, or give --password and --command-key`);
      const device = await VirtualVehicle.start({
        id,
        url: options.mqttUrl,
        protocolVersion: options.protocolVersion,
        credentials,
        behaviour: { mode: silentIds.has(id) ? 'silent' : 'answer', replyDelayMs: Math.round(options.replyDelayMs * (0.5 + random())) },
        logger: log,
      });
      connectLatency.recordUs(Number((process.hrtime.bigint() - started) / 1000n));
      if (offlineIds.has(id)) await device.goOffline();
      else devices.set(id, device);
    } catch (error) {
      counters.connectFailed += 1;
      firstConnectError ??= error;
      log.warn({ vehicleId: id, error: error instanceof Error ? error.message : String(error) }, 'vehicle could not connect');
      // A whole first wave failed and none got through: the broker is not there, stop trying.
      if (connectLatency.count === 0 && counters.connectFailed >= Math.min(concurrency, ids.length)) {
        throw new FleetStartFailed(`no vehicle could connect to ${options.mqttUrl}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    }
    options.onProgress?.('connecting', ++attempted, ids.length);
  });
  try {
    await connecting;
  } catch (error) {
    // Devices already online must not outlive a failed start.
    await forEachLimited([...devices.values()], 100, (device) => device.goOffline().catch(() => undefined));
    throw error;
  }
  if (ids.length > 0 && counters.connectFailed === ids.length) {
    throw new FleetStartFailed(`no vehicle could connect to ${options.mqttUrl}: ${firstConnectError instanceof Error ? firstConnectError.message : String(firstConnectError)}`);
  }

  const stopTelemetry = options.telemetryMs > 0 ? startTelemetry(devices, motions, options.telemetryMs, positionOf, counters) : () => undefined;
  let stopped: Promise<void> | null = null;

  return {
    ids,
    silentIds,
    offlineIds,
    devices,
    stats: () => {
      let commandsReceived = 0;
      let repliesSent = 0;
      for (const device of devices.values()) {
        commandsReceived += device.received.length;
        repliesSent += device.replies.length;
      }
      return {
        requested: ids.length,
        registered: counters.registered,
        alreadyRegistered: counters.alreadyRegistered,
        registrationFailed: counters.registrationFailed,
        connected: connectLatency.count,
        connectFailed: counters.connectFailed,
        silent: silentIds.size,
        offline: offlineIds.size,
        connectMs: connectLatency.summary(),
        telemetrySent: counters.telemetrySent,
        telemetryFailed: counters.telemetryFailed,
        commandsReceived,
        repliesSent,
      };
    },
    stop: () => {
      stopped ??= (async () => {
        stopTelemetry();
        await forEachLimited([...devices.values()], 100, (device) => device.goOffline().catch((error: unknown) => log.debug({ err: error }, 'going offline failed')));
      })();
      return stopped;
    },
  };
}

/**
 * One timer for the whole fleet: every tick publishes for one slice of the vehicles, so the broker
 * sees an even stream instead of a burst of a thousand readings once per period.
 */
function startTelemetry(
  devices: ReadonlyMap<string, VirtualVehicle>,
  motions: ReadonlyMap<string, Motion>,
  periodMs: number,
  positionOf: (motion: Motion) => GeoPoint,
  counters: { telemetrySent: number; telemetryFailed: number },
): () => void {
  const tickMs = Math.min(periodMs, 100);
  const slices = Math.max(1, Math.round(periodMs / tickMs));
  const fleet = [...devices.values()];
  let tick = 0;
  const timer = setInterval(() => {
    const slice = tick % slices;
    tick += 1;
    for (let index = slice; index < fleet.length; index += slices) {
      const device = fleet[index]!;
      if (!device.isConnected) continue;
      const motion = motions.get(device.id)!;
      const speedKmh = device.locked ? PARKED_KMH : RIDE_KMH;
      motion.angle += ((speedKmh / 3.6) * (periodMs / 1000)) / motion.radiusM;
      motion.battery -= device.locked ? 0.01 : 0.2;
      if (motion.battery < SWAP_BELOW) motion.battery = 100;
      const reading = { ...positionOf(motion), battery: Math.round(motion.battery * 10) / 10, speedKmh: device.locked ? 0 : RIDE_KMH };
      device.publishTelemetry(reading, 0).then(
        () => {
          counters.telemetrySent += 1;
        },
        () => {
          counters.telemetryFailed += 1;
        },
      );
    }
  }, tickMs);
  return () => clearInterval(timer);
}

export type DeviceActivity =
  | { readonly kind: 'command'; readonly command: VirtualVehicle['received'][number] }
  | { readonly kind: 'reply'; readonly reply: VirtualVehicle['replies'][number] }
  | { readonly kind: 'dropped'; readonly dropped: VirtualVehicle['dropped'][number] };

/**
 * Reports every command a device received, dropped and answered, in order, by polling its logs (the
 * device has no event hooks; for one vehicle on a console a 100 ms poll is plenty). Returns a stop function.
 */
export function watchDevice(device: VirtualVehicle, listener: (activity: DeviceActivity) => void, intervalMs = 100): () => void {
  const seen = { received: 0, replies: 0, dropped: 0 };
  const timer = setInterval(() => {
    for (; seen.received < device.received.length; seen.received += 1) listener({ kind: 'command', command: device.received[seen.received]! });
    for (; seen.dropped < device.dropped.length; seen.dropped += 1) listener({ kind: 'dropped', dropped: device.dropped[seen.dropped]! });
    for (; seen.replies < device.replies.length; seen.replies += 1) listener({ kind: 'reply', reply: device.replies[seen.replies]! });
  }, intervalMs);
  return () => clearInterval(timer);
}

export { forEachLimited } from './concurrency.js';

/** `credentials: {password, commandKey}` of a POST /vehicles (201) or a rotation (200) answer. */
function secretsIn(body: unknown): VehicleSecrets | null {
  const credentials = isRecord(body) ? body.credentials : undefined;
  if (!isRecord(credentials) || typeof credentials.password !== 'string' || typeof credentials.commandKey !== 'string') return null;
  return { password: credentials.password, commandKey: credentials.commandKey };
}

const clampRatio = (ratio: number): number => Math.min(1, Math.max(0, ratio));
const round6 = (value: number): number => Math.round(value * 1e6) / 1e6;
