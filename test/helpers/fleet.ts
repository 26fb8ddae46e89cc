import Database from 'better-sqlite3';
import type { LightMyRequestResponse } from 'fastify';
import { signToken } from '../../actors/contract/tokens.js';
import { bookingIdFor } from '../../api/idempotency.js';
import { placeBookingId } from '../../server/fleet-service.js';
import { shardOfVehicle } from '../../runtime/kernel/placement.js';
import { loadConfig, type FleetConfig } from '../../server/config.js';
import { startFleet, type FleetOptions, type RunningFleet } from '../../server/fleet-app.js';
import type { DeviceCredentials } from '../../actors/contract/views.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { tempDbFile, type TempDbFile } from './temp-db.js';
import { LIMITS_OFF } from './limits-off.js';
import { traceFileOf } from '../../persistence/trace-file.js';

export interface TestFleet {
  readonly fleet: RunningFleet;
  readonly config: FleetConfig;
  /** The registry file (FLEET_DB); the shards' files are `fleet.shardFiles`. */
  readonly dbFile: string;
  /** Shard 0's database, for inline shards (the default of this helper). */
  readonly db: Database.Database;
  /** `SELECT count(*) AS n …` summed over every shard's file (read-only connections: works for worker shards too). */
  count(sql: string, ...params: unknown[]): number;
  /** The same count, shard by shard. */
  countPerShard(sql: string, ...params: unknown[]): number[];
  /** The rows of a query on every shard's file, shard after shard. */
  rows<T>(sql: string, ...params: unknown[]): T[];
  /** `count` on every shard's trace file (`trace_steps`: persistence/trace-file.ts). */
  countTraceSteps(sql: string, ...params: unknown[]): number;
  countTraceStepsPerShard(sql: string, ...params: unknown[]): number[];
  traceRows<T>(sql: string, ...params: unknown[]): T[];
  /** A request as `role` `sub`, through `app.inject` (no port needed). */
  request(options: { method: 'GET' | 'POST' | 'DELETE'; url: string; as?: string; role?: 'customer' | 'operator'; body?: unknown; headers?: Record<string, string> }): Promise<LightMyRequestResponse>;
  /** POST /vehicles as an operator; the credentials of a 201 are kept for `credentials(id)`. */
  registerVehicle(id: string, type?: 'car' | 'scooter' | 'bike', location?: { lat: number; lon: number }): Promise<LightMyRequestResponse>;
  /** The credentials the last registration or rotation of `id` answered (throws when there was none). */
  credentials(id: string): DeviceCredentials;
  book(customer: string, vehicleId: string, extra?: Record<string, unknown>, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  /** Stops the process's parts gracefully and starts a new one on the same database file. */
  restart(): Promise<TestFleet>;
  close(): Promise<void>;
}

/**
 * The whole system in-process on a temp SQLite file and, by default, the embedded MQTT broker on a
 * free port. `env` overrides any documented variable (e.g. MQTT_URL for Mosquitto).
 */
export async function startTestFleet(
  env: Record<string, string> = {},
  options: Partial<FleetOptions> = {},
  dbFile?: string,
  /** The temp folder a restarted fleet inherits, so that its close() still removes it. */
  inherited?: TempDbFile,
  /** Credentials issued before a restart: they stay valid (the store is in the same file). */
  inheritedCredentials?: ReadonlyMap<string, DeviceCredentials>,
): Promise<TestFleet> {
  const temp = inherited ?? (dbFile ? null : tempDbFile());
  const file = dbFile ?? temp!.file;
  const config = loadConfig({ FLEET_DB: file, FLEET_SHARDS: '1', MQTT_PORT: '0', PORT: '0', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', PAYMENT_LATENCY_MS: '2', ...LIMITS_OFF, ...env });
  const logger = options.logger ?? createLogger(config.logLevel);
  const fleet = await startFleet(config, { listen: false, shardRuntime: 'inline', ...options, logger });
  const onEveryShard = <T>(query: (db: Database.Database) => T, fileOf: (shardFile: string) => string = (shardFile) => shardFile): T[] =>
    fleet.shardFiles.map((shardFile) => {
      const db = new Database(fileOf(shardFile), { readonly: true });
      try {
        return query(db);
      } finally {
        db.close();
      }
    });
  const secret = config.auth.jwtSecret;
  const tokens = new Map<string, string>();
  const tokenFor = (sub: string, role: 'customer' | 'operator') => {
    const key = `${role}:${sub}`;
    let token = tokens.get(key);
    if (!token) {
      token = signToken({ sub, role, ttlSeconds: 3600 }, secret);
      tokens.set(key, token);
    }
    return token;
  };
  const issued = new Map<string, DeviceCredentials>();
  const testFleet: TestFleet = {
    fleet,
    config,
    dbFile: file,
    get db() {
      return fleet.local.db;
    },
    count: (sql, ...params) => testFleet.countPerShard(sql, ...params).reduce((sum, n) => sum + n, 0),
    countPerShard: (sql, ...params) => onEveryShard((db) => (db.prepare(sql).get(...params) as { n: number }).n),
    rows: <T>(sql: string, ...params: unknown[]) => onEveryShard((db) => db.prepare(sql).all(...params) as T[]).flat(),
    countTraceSteps: (sql, ...params) => testFleet.countTraceStepsPerShard(sql, ...params).reduce((sum, n) => sum + n, 0),
    countTraceStepsPerShard: (sql, ...params) => onEveryShard((db) => (db.prepare(sql).get(...params) as { n: number }).n, traceFileOf),
    traceRows: <T>(sql: string, ...params: unknown[]) => onEveryShard((db) => db.prepare(sql).all(...params) as T[], traceFileOf).flat(),
    request: ({ method, url, as = 'alice', role = 'customer', body, headers = {} }) =>
      fleet.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${tokenFor(as, role)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      }),
    registerVehicle: async (id, type = 'scooter', location = { lat: 52.52, lon: 13.405 }) => {
      const response = await testFleet.request({ method: 'POST', url: '/vehicles', as: 'ops', role: 'operator', body: { id, type, location } });
      if (response.statusCode === 201) issued.set(id, (response.json() as { credentials: DeviceCredentials }).credentials);
      return response;
    },
    credentials: (id) => {
      const credentials = issued.get(id) ?? inheritedCredentials?.get(id);
      if (!credentials) throw new Error(`test fleet: no credentials issued for ${id} (register it with t.registerVehicle first)`);
      return credentials;
    },
    book: (customer, vehicleId, extra = {}, headers = {}) =>
      testFleet.request({ method: 'POST', url: '/bookings', as: customer, body: { vehicleId, ...extra }, headers }),
    restart: async () => {
      await fleet.close();
      return startTestFleet(env, options, file, temp ?? undefined, new Map([...(inheritedCredentials ?? []), ...issued]));
    },
    close: async () => {
      await fleet.close();
      temp?.cleanup();
    },
  };
  return testFleet;
}

/**
 * The id a booking made with this customer and Idempotency-Key gets: derived from the key, placed on
 * its vehicle's shard (every vehicle is on shard 0 of a one-shard fleet).
 */
export function keyedBookingId(customerId: string, idempotencyKey: string, vehicleId = '', shards = 1): string {
  return placeBookingId(bookingIdFor(customerId, idempotencyKey), shardOfVehicle(vehicleId, shards));
}
