import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { DEV_JWT_SECRET } from '../actors/contract/device-secrets.js';
import type { LogFormat } from '../runtime/ground/logger.js';

/**
 * The whole configuration, parsed once at start-up (docs/contract.md, "Configuration").
 * Nothing below server/main.ts reads process.env: it receives this typed object.
 */
const port = z.coerce.number().int().min(0).max(65535);
const positiveMs = z.coerce.number().int().positive();

/** Node and cluster ids: they end up in Kafka topic names, MQTT client ids and file names. */
const safeId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$/, 'expected 1-48 letters, digits, . _ - (starting with a letter or digit)');
const httpUrl = z.string().url().regex(/^https?:\/\//, 'expected an http:// URL').transform((url) => url.replace(/\/+$/, ''));

const brokerList = z
  .string()
  .trim()
  .min(1)
  .transform((value) => value.split(',').map((broker) => broker.trim()).filter(Boolean))
  .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port')).min(1));

export const configSchema = z.object({
  PORT: port.default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  FLEET_DB: z.string().min(1).default('./data/fleet.db'),
  /** Actor shards on worker threads; fixed when the data is created (server/registry.ts refuses another count). */
  FLEET_SHARDS: z.coerce.number().int().min(1).max(64).optional(),
  /** `FULL` keeps an acknowledged booking across power loss; `NORMAL` only across a process crash. */
  FLEET_DB_SYNC: z.enum(['FULL', 'NORMAL']).default('FULL'),
  MQTT_URL: z.string().url().regex(/^(mqtts?|wss?|tcp):\/\//, 'expected an mqtt:// URL').optional(),
  MQTT_PORT: port.default(1884),
  /** 4 = MQTT 3.1.1, 5 = MQTT 5. Unset: 5 for an external broker, 4 for the embedded one (aedes speaks 3.1.1 only). */
  MQTT_PROTOCOL_VERSION: z.coerce.number().pipe(z.union([z.literal(4), z.literal(5)])).optional(),
  /** Stable id for the server's MQTT session; unset: a new one per process (several servers may share a broker). */
  MQTT_CLIENT_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 letters, digits, . _ -').optional(),
  /** The server's own MQTT login. Unset with the embedded broker: a random secret made at start-up. */
  MQTT_USERNAME: z.string().min(1).max(256).optional(),
  MQTT_PASSWORD: z.string().min(1).max(256).optional(),
  /** `dynsec`: the server creates each vehicle's client and role on Mosquitto's dynamic-security plugin. */
  MQTT_PROVISIONING: z.enum(['none', 'dynsec']).default('none'),
  /** Keys command signatures and credential hashes; unset: derived from FLEET_JWT_SECRET (dev runs work). */
  FLEET_DEVICE_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  KAFKA_BROKERS: brokerList.optional(),
  KAFKA_CLIENT_ID: z.string().min(1).default('fleetactors'),
  KAFKA_TOPIC_PARTITIONS: z.coerce.number().int().positive().default(3),
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().positive().default(1),
  /**
   * Cluster mode: `min.insync.replicas` of the journal of record's topic (docs/cluster.md): how many
   * replicas must hold a batch before it is acknowledged. Unset: the broker's default (1 on a dev box).
   */
  KAFKA_MIN_INSYNC_REPLICAS: z.coerce.number().int().positive().optional(),
  FLEET_JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  UNLOCK_TIMEOUT_MS: positiveMs.default(5000),
  /** How long a confirmed booking may wait for its unlock before it expires and frees the vehicle. */
  RESERVATION_WINDOW_MS: positiveMs.default(15 * 60_000),
  /** How long the payment actor waits for the gateway before it treats the attempt as declined. */
  PAYMENT_TIMEOUT_MS: positiveMs.default(3000),
  /** Latency of the built-in simulated payment gateway. */
  PAYMENT_LATENCY_MS: z.coerce.number().int().min(0).default(20),
  /** How long the API waits for an actor to answer before it gives up with 503. */
  ASK_TIMEOUT_MS: positiveMs.default(15_000),
  /** Idle actors are passivated after this long; state comes back from snapshot + journal. */
  PASSIVATE_AFTER_MS: positiveMs.default(10 * 60_000),
  SNAPSHOT_EVERY: z.coerce.number().int().positive().default(50),
  /** Recorded actor traces older than this are deleted (the journal itself is kept forever). */
  TRACE_RETENTION_MS: positiveMs.default(7 * 24 * 60 * 60_000),
  /** Ride violation episodes (GET /operating-area/violations) whose last reading is older than this are deleted, open ones too. */
  AREA_VIOLATION_RETENTION_MS: positiveMs.default(90 * 24 * 60 * 60_000),
  /** Share of requests whose actor deliveries are traced (failed and slow ones always are). */
  TRACE_SAMPLE: z.coerce.number().min(0).max(1).default(1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `pretty`: one readable line per entry; `json`: one JSON object per line. Unset: pretty on a terminal. */
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
  /** Register this many demo vehicles at start-up (ids demo-0001 …), for a first run. */
  FLEET_SEED: z.coerce.number().int().min(0).max(100_000).default(0),
  BODY_LIMIT_BYTES: z.coerce.number().int().positive().default(64 * 1024),
  /** Requests per second per signed-in customer; 0 = no limit (api/rate-limits.ts says why 20). */
  RATE_LIMIT_PER_CUSTOMER: z.coerce.number().int().min(0).default(20),
  /** Requests per second per client address (before sign-in); 0 = no limit. */
  RATE_LIMIT_PER_IP: z.coerce.number().int().min(0).default(200),
  /** Live (not finished) bookings one customer may hold at once; 0 = no limit. */
  MAX_ACTIVE_BOOKINGS_PER_CUSTOMER: z.coerce.number().int().min(0).default(1),
  /** Where clients reach this API (scheme, host, port, optional path): links the API hands out (viewer links, GBFS) are built from it, never from a request's Host header. Unset: the address the API listens on (http://HOST:PORT). */
  PUBLIC_BASE_URL: z.string().url().regex(/^https?:\/\/[^?#]+$/, 'expected an http(s):// URL without query or fragment').optional(),
  /** A request (headers and body) must have arrived within this long, or it is answered 408 and closed. */
  HTTP_REQUEST_TIMEOUT_MS: positiveMs.default(30_000),
  /** A socket with no traffic either way for this long is closed (an SSE stream's heartbeat keeps it busy). */
  HTTP_IDLE_TIMEOUT_MS: positiveMs.default(60_000),
  /** How long an idle keep-alive connection is kept between requests. */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveMs.default(72_000),
  /** Open live streams (GET /events and /traces/:id/view/stream) per token (a viewer link is one token); 0 = no limit. */
  STREAMS_PER_TOKEN: z.coerce.number().int().min(0).default(4),
  /** Open live streams per client address; 0 = no limit. */
  STREAMS_PER_IP: z.coerce.number().int().min(0).default(32),
  /** A ride still going this long past its booked end (unlock + booked minutes) is flagged to operators (metric fleet_rides_overdue, a warning). */
  OVERDUE_RIDE_AFTER_MS: positiveMs.default(30 * 60_000),
  /** Steps one trace may record; later deliveries in it are not recorded, whatever traceparent a client sends. */
  TRACE_MAX_STEPS: z.coerce.number().int().positive().default(200),
  /** Bearer token Prometheus sends for GET /metrics (besides an operator's JWT); at least 16 characters. */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** A second listener for /metrics and detailed /health, with no token (bind it where only Prometheus reaches). Unset: none. */
  METRICS_PORT: port.optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** On SIGTERM/SIGINT: how long requests in flight may take to finish before their connections are cut. */
  SHUTDOWN_GRACE_MS: positiveMs.default(20_000),
  /** GBFS feeds (docs/gbfs.md): `ttl` of every feed; vehicle_status is rebuilt at most this often. */
  GBFS_TTL_SECONDS: z.coerce.number().int().min(0).max(3600).default(30),
  GBFS_SYSTEM_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 letters, digits, . _ -').default('fleetactors'),
  GBFS_SYSTEM_NAME: z.string().min(1).max(200).default('fleetactors'),
  GBFS_LANGUAGE: z.string().regex(/^[a-z]{2,3}(-[A-Z]{2})?$/, 'expected an IETF BCP 47 language code such as en or de-DE').default('en'),
  GBFS_TIMEZONE: z.string().refine(isTimeZone, 'expected an IANA time zone such as Europe/Berlin').default('Europe/Berlin'),
  GBFS_FEED_CONTACT_EMAIL: z.email().default('gbfs@fleetactors.dev'),
  /** OSM opening_hours syntax. */
  GBFS_OPENING_HOURS: z.string().min(1).default('24/7'),
  /** A GBFS geofencing_zones document (docs/gbfs.md): where rides may start and end. Unset: no restriction. */
  FLEET_OPERATING_AREA: z.string().min(1).optional(),
  /** An end of trip inside an operating area is judged on a position fix at most this old. */
  OPERATING_AREA_MAX_FIX_AGE_MS: positiveMs.default(120_000),
  /** `on`: SIGUSR2 crashes one shard worker (round robin), for the chaos harness (server/chaos-hooks.ts). */
  FLEET_CHAOS_HOOKS: z.enum(['off', 'on']).default('off'),
  /** `kafka`: this process is one node of a fleet on several machines (docs/cluster.md); unset: the single process. */
  FLEET_CLUSTER: z.enum(['kafka']).optional(),
  /** Names the cluster's Kafka topics and MQTT sessions: two clusters on one Kafka or broker never meet. */
  FLEET_CLUSTER_NAME: safeId.default('fleet'),
  /** This node's stable id (unique in the cluster, the same across restarts). */
  FLEET_NODE_ID: safeId.optional(),
  /** How the other nodes reach this one (http://host:port). */
  FLEET_ADVERTISED_URL: httpUrl.optional(),
  /** Gone (issue 17): the nodes learn each other from the shard group. Read only to refuse it by name. */
  FLEET_CLUSTER_NODES: z.string().optional(),
  /**
   * Cluster mode: the shard group's session timeout, how long a node that stopped answering keeps its
   * shards (docs/cluster.md, "Failover"). The broker refuses one below its `group.min.session.timeout.ms`
   * (6000 by default; scripts/kafka.mjs allows 1000).
   */
  FLEET_GROUP_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(6000),
  /**
   * Cluster mode: `on`, a node whose channel to a peer ends without a goodbye, and whose address then
   * refuses connections, has the group drop that peer's member at once (server/cluster/peer-watch.ts).
   * `off` where a refused connection does not mean a dead process (FLEET_ADVERTISED_URL behind a proxy
   * or a service address that refuses while the node lives): the session decides alone.
   */
  FLEET_PEER_EVICTION: z.enum(['on', 'off']).default('on'),
});

export type RawConfig = z.infer<typeof configSchema>;

export interface FleetConfig {
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimitBytes: number;
    /** PUBLIC_BASE_URL without a trailing slash (`${publicBaseUrl}/traces/...`); null: the address the API listens on. */
    readonly publicBaseUrl: string | null;
    readonly requestTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
  };
  /** Open live streams; 0 turns a cap off. */
  readonly streams: { readonly perToken: number; readonly perIp: number };
  /** GET /metrics: its bearer token (null: operators' JWTs only), and its own listener (null: none). */
  readonly metrics: { readonly token: string | null; readonly listener: { readonly host: string; readonly port: number } | null };
  readonly traceMaxSteps: number;
  readonly overdueRideAfterMs: number;
  readonly shutdownGraceMs: number;
  readonly db: { readonly file: string; readonly synchronous: 'FULL' | 'NORMAL' };
  /** FLEET_SHARDS, or the cores when unset (`explicit: false`: existing data then keeps its own count). */
  readonly shards: { readonly count: number; readonly explicit: boolean };
  readonly mqtt:
    | { readonly mode: 'embedded'; readonly port: number; readonly protocolVersion: 4 | 5; readonly clientId: string | null }
    | { readonly mode: 'external'; readonly url: string; readonly protocolVersion: 4 | 5; readonly clientId: string | null };
  readonly mqttSecurity: {
    /** Both set, or both null (then the embedded broker gets a random server login per process). */
    readonly serverLogin: { readonly username: string; readonly password: string } | null;
    readonly provisioning: 'none' | 'dynsec';
    readonly deviceSecret: string | null;
  };
  readonly kafka:
    | { readonly mode: 'local' }
    | {
        readonly mode: 'kafka';
        readonly brokers: readonly string[];
        readonly clientId: string;
        readonly partitions: number;
        readonly replicationFactor: number;
        /** null: the broker's default. */
        readonly minInsyncReplicas: number | null;
      };
  readonly auth: { readonly jwtSecret: string; readonly usingDevSecret: boolean };
  readonly timing: {
    readonly unlockTimeoutMs: number;
    readonly reservationWindowMs: number;
    readonly paymentTimeoutMs: number;
    readonly paymentLatencyMs: number;
    readonly askTimeoutMs: number;
    readonly passivateAfterMs: number;
  };
  readonly snapshotEvery: number;
  readonly traceRetentionMs: number;
  readonly areaViolationRetentionMs: number;
  readonly traceSample: number;
  readonly logLevel: RawConfig['LOG_LEVEL'];
  /** Resolved in the main thread, where stdout can be asked whether it is a terminal; shards log the same way. */
  readonly logFormat: LogFormat;
  readonly seedVehicles: number;
  /** Requests per second; 0 turns a limit off. */
  readonly rateLimits: { readonly perCustomer: number; readonly perIp: number };
  /** 0: no limit. */
  readonly maxActiveBookingsPerCustomer: number;
  /** FLEET_CHAOS_HOOKS: off unless a chaos run asks for it. */
  readonly chaosHooks: boolean;
  readonly gbfs: {
    readonly ttlSeconds: number;
    readonly systemId: string;
    readonly name: string;
    readonly language: string;
    readonly timezone: string;
    readonly feedContactEmail: string;
    readonly openingHours: string;
  };
  /** FLEET_OPERATING_AREA (read and checked at start-up: server/operating-area-file.ts); file null: no area. */
  readonly operatingArea: { readonly file: string | null; readonly maxFixAgeMs: number };
  /** FLEET_CLUSTER=kafka: this node of a fleet on several machines; null: the single process (docs/cluster.md). */
  readonly cluster: ClusterConfig | null;
}

export interface ClusterNode {
  readonly id: string;
  /** Where the other nodes reach it, without a trailing slash. */
  readonly url: string;
}

export interface ClusterConfig {
  readonly name: string;
  /** This node. The others are learned from the shard group's members (server/cluster/node-directory.ts), not configured. */
  readonly node: ClusterNode;
  /** FLEET_GROUP_SESSION_TIMEOUT_MS: the shard group's session timeout. */
  readonly sessionTimeoutMs: number;
  /** FLEET_PEER_EVICTION: whether a dead peer's member is dropped at once. */
  readonly peerEviction: boolean;
}


/** What loadConfig cannot read from the environment: whether stdout is a terminal (main.ts asks). */
export interface Terminal {
  readonly stdoutIsTTY: boolean;
}

/** Publicly known on purpose: it only exists so that a first run works without set-up. */


export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly variable: string, readonly reason: string) {
    super(`Invalid configuration: ${variable} ${reason}`);
  }
}

/** Parses the environment; throws one ConfigError that names the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined>, terminal: Terminal = { stdoutIsTTY: false }): FleetConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    throw new ConfigError(variable, `${issue.message} (got ${shown(variable, present[variable])})`);
  }
  const raw = parsed.data;
  checkTogether(raw);
  const cluster = clusterOf(raw);
  return {
    http: httpOf(raw),
    streams: { perToken: raw.STREAMS_PER_TOKEN, perIp: raw.STREAMS_PER_IP },
    metrics: { token: raw.METRICS_TOKEN ?? null, listener: raw.METRICS_PORT === undefined ? null : { host: raw.METRICS_HOST, port: raw.METRICS_PORT } },
    traceMaxSteps: raw.TRACE_MAX_STEPS,
    overdueRideAfterMs: raw.OVERDUE_RIDE_AFTER_MS,
    shutdownGraceMs: raw.SHUTDOWN_GRACE_MS,
    db: { file: raw.FLEET_DB, synchronous: raw.FLEET_DB_SYNC },
    shards: { count: raw.FLEET_SHARDS ?? availableParallelism(), explicit: raw.FLEET_SHARDS !== undefined },
    mqtt: mqttOf(raw),
    mqttSecurity: mqttSecurityOf(raw),
    kafka: kafkaOf(raw),
    auth: { jwtSecret: raw.FLEET_JWT_SECRET ?? DEV_JWT_SECRET, usingDevSecret: raw.FLEET_JWT_SECRET === undefined },
    timing: {
      unlockTimeoutMs: raw.UNLOCK_TIMEOUT_MS,
      reservationWindowMs: raw.RESERVATION_WINDOW_MS,
      paymentTimeoutMs: raw.PAYMENT_TIMEOUT_MS,
      paymentLatencyMs: raw.PAYMENT_LATENCY_MS,
      askTimeoutMs: raw.ASK_TIMEOUT_MS,
      passivateAfterMs: raw.PASSIVATE_AFTER_MS,
    },
    snapshotEvery: raw.SNAPSHOT_EVERY,
    traceRetentionMs: raw.TRACE_RETENTION_MS,
    areaViolationRetentionMs: raw.AREA_VIOLATION_RETENTION_MS,
    traceSample: raw.TRACE_SAMPLE,
    logLevel: raw.LOG_LEVEL,
    logFormat: logFormatOf(raw.LOG_FORMAT, terminal, present.NO_COLOR !== undefined),
    seedVehicles: raw.FLEET_SEED,
    rateLimits: { perCustomer: raw.RATE_LIMIT_PER_CUSTOMER, perIp: raw.RATE_LIMIT_PER_IP },
    maxActiveBookingsPerCustomer: raw.MAX_ACTIVE_BOOKINGS_PER_CUSTOMER,
    chaosHooks: raw.FLEET_CHAOS_HOOKS === 'on',
    gbfs: gbfsOf(raw),
    operatingArea: { file: raw.FLEET_OPERATING_AREA ?? null, maxFixAgeMs: raw.OPERATING_AREA_MAX_FIX_AGE_MS },
    cluster,
  };
}

/** Settings that only make sense together, checked once every variable parsed on its own. */
function checkTogether(raw: RawConfig): void {
  if (raw.PASSIVATE_AFTER_MS < 2 * raw.UNLOCK_TIMEOUT_MS) {
    // A vehicle actor waiting for UNLOCKED must still be alive when the answer or the timeout comes.
    throw new ConfigError('PASSIVATE_AFTER_MS', `must be at least twice UNLOCK_TIMEOUT_MS (${raw.UNLOCK_TIMEOUT_MS})`);
  }
  if ((raw.MQTT_USERNAME === undefined) !== (raw.MQTT_PASSWORD === undefined)) {
    const missing = raw.MQTT_USERNAME === undefined ? 'MQTT_USERNAME' : 'MQTT_PASSWORD';
    throw new ConfigError(missing, 'must be set together with ' + (missing === 'MQTT_USERNAME' ? 'MQTT_PASSWORD' : 'MQTT_USERNAME'));
  }
  if (raw.MQTT_PROVISIONING === 'dynsec' && (!raw.MQTT_URL || raw.MQTT_USERNAME === undefined)) {
    throw new ConfigError('MQTT_PROVISIONING', 'dynsec needs MQTT_URL, MQTT_USERNAME and MQTT_PASSWORD of a Mosquitto with the dynamic-security plugin');
  }
  if (raw.FLEET_JWT_SECRET === undefined && !isLoopback(raw.HOST)) {
    // The development secret is public: anyone could mint an operator token for a reachable server.
    throw new ConfigError('FLEET_JWT_SECRET', `must be set to listen on HOST ${raw.HOST}: the development secret is public and is only allowed on a loopback address`);
  }
}

function httpOf(raw: RawConfig): FleetConfig['http'] {
  return {
    host: raw.HOST,
    port: raw.PORT,
    bodyLimitBytes: raw.BODY_LIMIT_BYTES,
    publicBaseUrl: raw.PUBLIC_BASE_URL === undefined ? null : raw.PUBLIC_BASE_URL.replace(/\/+$/, ''),
    requestTimeoutMs: raw.HTTP_REQUEST_TIMEOUT_MS,
    idleTimeoutMs: raw.HTTP_IDLE_TIMEOUT_MS,
    keepAliveTimeoutMs: raw.HTTP_KEEP_ALIVE_TIMEOUT_MS,
  };
}

function mqttOf(raw: RawConfig): FleetConfig['mqtt'] {
  return raw.MQTT_URL
    ? { mode: 'external', url: raw.MQTT_URL, protocolVersion: raw.MQTT_PROTOCOL_VERSION ?? 5, clientId: raw.MQTT_CLIENT_ID ?? null }
    : { mode: 'embedded', port: raw.MQTT_PORT, protocolVersion: raw.MQTT_PROTOCOL_VERSION ?? 4, clientId: raw.MQTT_CLIENT_ID ?? null };
}

function mqttSecurityOf(raw: RawConfig): FleetConfig['mqttSecurity'] {
  return {
    serverLogin: raw.MQTT_USERNAME !== undefined && raw.MQTT_PASSWORD !== undefined ? { username: raw.MQTT_USERNAME, password: raw.MQTT_PASSWORD } : null,
    provisioning: raw.MQTT_PROVISIONING,
    deviceSecret: raw.FLEET_DEVICE_SECRET ?? null,
  };
}

function kafkaOf(raw: RawConfig): FleetConfig['kafka'] {
  return raw.KAFKA_BROKERS
    ? {
        mode: 'kafka',
        brokers: raw.KAFKA_BROKERS,
        clientId: raw.KAFKA_CLIENT_ID,
        partitions: raw.KAFKA_TOPIC_PARTITIONS,
        replicationFactor: raw.KAFKA_REPLICATION_FACTOR,
        minInsyncReplicas: minInsyncReplicas(raw),
      }
    : { mode: 'local' };
}

/** More in-sync replicas than replicas would refuse every acknowledgement: refused here, by name. */
function minInsyncReplicas(raw: RawConfig): number | null {
  const wanted = raw.KAFKA_MIN_INSYNC_REPLICAS ?? null;
  if (wanted !== null && wanted > raw.KAFKA_REPLICATION_FACTOR) {
    throw new ConfigError('KAFKA_MIN_INSYNC_REPLICAS', `is ${wanted}, more than KAFKA_REPLICATION_FACTOR (${raw.KAFKA_REPLICATION_FACTOR}): no batch could ever be acknowledged`);
  }
  return wanted;
}

function gbfsOf(raw: RawConfig): FleetConfig['gbfs'] {
  return {
    ttlSeconds: raw.GBFS_TTL_SECONDS,
    systemId: raw.GBFS_SYSTEM_ID,
    name: raw.GBFS_SYSTEM_NAME,
    language: raw.GBFS_LANGUAGE,
    timezone: raw.GBFS_TIMEZONE,
    feedContactEmail: raw.GBFS_FEED_CONTACT_EMAIL,
    openingHours: raw.GBFS_OPENING_HOURS,
  };
}

/** FLEET_CLUSTER=kafka and what it requires; null when unset (the single process, as before). */
function clusterOf(raw: RawConfig): ClusterConfig | null {
  if (raw.FLEET_CLUSTER === undefined) return null;
  const required = (variable: keyof RawConfig, why: string): void => {
    if (raw[variable] === undefined) throw new ConfigError(variable, `must be set with FLEET_CLUSTER=kafka: ${why}`);
  };
  required('KAFKA_BROKERS', 'the cluster\'s shared log and public events live in Kafka');
  if (raw.MQTT_URL === undefined) {
    throw new ConfigError('MQTT_URL', 'must be set with FLEET_CLUSTER=kafka: the embedded MQTT broker lives inside one process, and every node must reach the same broker (start one with `npm run mosquitto -- start`)');
  }
  required('FLEET_NODE_ID', 'each node needs a stable id, unique in the cluster');
  required('FLEET_ADVERTISED_URL', 'the other nodes forward calls for this node\'s shards to it');
  required('FLEET_SHARDS', 'the shard count is fixed with the cluster and must be the same on every node');
  if (raw.FLEET_CLUSTER_NODES !== undefined) {
    // Refused rather than ignored: a list that silently did nothing would mislead whoever set it.
    throw new ConfigError('FLEET_CLUSTER_NODES', 'is no longer used: the nodes learn each other (id and FLEET_ADVERTISED_URL) from the cluster\'s Kafka consumer group; remove it');
  }
  return { name: raw.FLEET_CLUSTER_NAME, node: { id: raw.FLEET_NODE_ID!, url: raw.FLEET_ADVERTISED_URL! }, sessionTimeoutMs: raw.FLEET_GROUP_SESSION_TIMEOUT_MS, peerEviction: raw.FLEET_PEER_EVICTION === 'on' };
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return zone.includes('/') || zone === 'UTC';
  } catch {
    return false;
  }
}

/** Secrets are never echoed, not even a bad one: logs and terminals are read by others. */
const SECRET_VARIABLES: ReadonlySet<string> = new Set(['FLEET_JWT_SECRET', 'FLEET_DEVICE_SECRET', 'MQTT_PASSWORD']);

function shown(variable: string, value: string | undefined): string {
  if (SECRET_VARIABLES.has(variable) && value !== undefined) return `a value of ${value.length} character${value.length === 1 ? '' : 's'}, not shown`;
  return JSON.stringify(value);
}

/** 127.0.0.0/8, ::1 and `localhost`: where nobody else can reach the server. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare);
}

function logFormatOf(format: RawConfig['LOG_FORMAT'], terminal: Terminal, noColor: boolean): LogFormat {
  const pretty = format === undefined ? terminal.stdoutIsTTY : format === 'pretty';
  return { pretty, colors: pretty && terminal.stdoutIsTTY && !noColor };
}
