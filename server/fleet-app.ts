import { isStorageFull } from '../persistence/storage-full.js';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { PaymentGateway } from '../actors/payment/gateway.js';
import type { DeviceAccess } from '../actors/contract/views.js';
import { buildApp } from '../api/app.js';
import { buildOpsApp } from '../api/ops-app.js';
import type { HealthCheck, HealthReport } from '../api/ports.js';
import { IdempotencyStore } from '../persistence/idempotency-store.js';
import { claimLeaseMs, ShardedIdempotency } from './idempotency-claims.js';
import type { Db } from '../persistence/sqlite.js';
import type { Clock } from '../runtime/ground/clock.js';
import { closerStack, type Closer } from '../runtime/ground/closers.js';
import type { FleetConfig } from './config.js';
import { lockDataFolder } from '../persistence/data-folder-lock.js';
import { ShardedCustomerBookings, ShardedEvents, ShardedTraces, ShardedVehicleCommands } from './fleet-reads.js';
import { ShardedFleetService } from './fleet-service.js';
import { housekeepIdempotency } from './housekeeping.js';
import { drainOnClose } from './http-drain.js';
import { listenOn } from './listen-errors.js';
import { shardOfVehicle } from '../runtime/kernel/placement.js';
import type { ShardStats } from './shard-calls.js';
import type { Logger } from '../runtime/ground/logger.js';
import { createMetrics, type Metrics } from '../runtime/ground/metrics.js';
import { MqttConnection } from '../adapters/mqtt/connection.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../adapters/mqtt/embedded-broker.js';
import { createDeviceAccess, createDeviceSecurity, createProvisioner, seedDemoCredentials, type DeviceSecurity } from './device-security.js';
import { openRegistry, type Registry } from './registry.js';
import { demoFleet, demoVehicleIds } from './seed.js';
import type { RunningShard, ShardInit } from './shard.js';
import { ShardSupervisor, type ShardRuntime } from './shard-supervisor.js';
import { GbfsFeeds } from './gbfs/feeds.js';
import { loadOperatingAreaFile } from './operating-area-file.js';
import { OperatingAreaService } from './operating-area.js';
import type { OperatingArea } from '../actors/contract/operating-area.js';
import { fleetNode, type FleetNode } from './cluster/cluster-node.js';
import type { ShardLinks } from './fleet-service.js';

export interface FleetOptions {
  readonly logger: Logger;
  /** Default true: bind HTTP on config.http. Tests may use `app.inject` instead. */
  readonly listen?: boolean;
  readonly metrics?: Metrics;
  /** Prepended to Kafka topic names (tests isolate themselves with it). */
  readonly kafkaTopicPrefix?: string;
  /**
   * `worker` (default): each shard in its own worker thread. `inline`: the shards in this thread,
   * over the same message protocol, with their parts reachable (tests).
   */
  readonly shardRuntime?: ShardRuntime;
  /** Inline shards only (a test's gateway); workers use the simulated gateway with PAYMENT_LATENCY_MS. */
  readonly gateway?: PaymentGateway;
  /** Inline shards only: booking time and timers (a test drives it); workers use the wall clock. */
  readonly clock?: Clock;
}

export interface RunningFleet {
  readonly app: FastifyInstance;
  /** `http://host:port` when listening. */
  readonly url: string | null;
  /** The broker the shards talk to (embedded or external). */
  readonly mqttUrl: string;
  /** The main thread's registry (shard count, idempotency keys). */
  readonly registry: Db;
  readonly shards: ShardSupervisor;
  /** The SQLite file of each shard (`:memory:` for throw-away runs). */
  readonly shardFiles: readonly string[];
  /** Shard 0's parts when the shards run inline (tests); throws for worker shards. */
  readonly local: RunningShard;
  /** Fresh stats of every shard (a shard that is down: null). */
  shardStats(): Promise<Array<ShardStats | null>>;
  close(): Promise<void>;
}

/**
 * The main thread's composition root (docs/architecture.md, "Shards"): the registry, the embedded MQTT broker,
 * the shards (worker threads, supervised), the demo fleet, and HTTP in front of a router to the
 * shards. `close` undoes it in reverse order: HTTP first, then every shard flushes its journal.
 */
export async function startFleet(config: FleetConfig, options: FleetOptions): Promise<RunningFleet> {
  const { logger } = options;
  const { closers, close } = closerStack(logger, 'the fleet');

  try {
    const started = Date.now();
    // Configuration a file holds: checked before any data is touched (a bad zone file names itself, exit 2).
    const initialArea = config.operatingArea.file ? loadOperatingAreaFile(config.operatingArea.file) : null;
    // One process per FLEET_DB: locked before the registry or a shard file is opened (a refused server
    // touches no data), released last, after every shard has flushed and closed its file.
    const lock = lockDataFolder(config.db.file);
    if (lock) closers.push(() => lock.release());
    const registry = openRegistry(config.db.file, config.shards, config.db.synchronous);
    closers.push(() => registry.close());
    // FLEET_CLUSTER=kafka: this process runs only the shards it owns and forwards the rest (docs/cluster.md).
    const node = fleetNode(config, registry.shardCount);
    await node.prepare(logger);
    if (registry.convertedFromSingleFile) logger.warn({ db: config.db.file, shardFile: registry.shardFiles[0] }, 'single-file database opened as a one-shard fleet (its journal moved to the shard file)');

    // Device logins, ACLs and command signatures (docs/mqtt-security.md): checked here, on the main
    // thread, against the registry's credential store, without waking an actor.
    const deviceSecurity = createDeviceSecurity({ db: registry.db, config, logger });
    const { url: mqttUrl, broker } = await startBroker(config, deviceSecurity, logger, closers);
    // Without MQTT_CLIENT_ID, one id per process: two servers on one broker must not take over each
    // other's sessions. Each shard has its own connection, named after the shard. In a cluster a shard's
    // session is named after the cluster: the same on whichever node owns it.
    const mqtt: MainMqtt = { url: mqttUrl, clientIdPrefix: config.mqtt.clientId ?? node.mqttClientIdPrefix ?? `fleetactors-${randomUUID().slice(0, 8)}`, login: deviceSecurity.serverLogin };
    const shards = await startShards(config, options, { registry, node, mqtt }, closers);
    const links = node.links(shards);
    // In a cluster each shard seeds itself when it starts (server/shard.ts), wherever the group places it.
    if (config.seedVehicles > 0 && !node.clustered) await seed(links, config, logger);
    const devices = await startDeviceAccess(config, { security: deviceSecurity, broker, mqtt, node, logger }, closers);
    const { app, url } = await startHttp(config, options, { registry, shards, links, node, devices, mqttUrl, initialArea }, closers);
    if (url) lock?.announce(url);
    const ownShards = node.clustered ? { node: node.self.id, ownShards: shards.links.map((link) => link.shard) } : {};
    logger.info({ url, mqtt: mqttUrl, db: config.db.file, shards: registry.shardCount, ...ownShards, kafka: config.kafka.mode, startupMs: Date.now() - started }, 'fleetactors ready');

    return {
      app,
      url,
      mqttUrl,
      registry: registry.db,
      shards,
      shardFiles: registry.shardFiles,
      get local(): RunningShard {
        const local = shards.local(0);
        if (!local) throw new Error('the shards run in worker threads: their parts are not reachable from here');
        return local;
      },
      shardStats: () => Promise.all(shards.links.map((link) => link.call({ op: 'stats' }, 5000).catch(() => null))),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** How the main thread and its shards reach the broker. */
interface MainMqtt {
  readonly url: string;
  readonly clientIdPrefix: string;
  readonly login: { readonly username: string; readonly password: string };
}

/** One shard per file of the registry (in a cluster, those this node owns), each with its own MQTT client id, supervised. */
async function startShards(config: FleetConfig, options: FleetOptions, parts: { registry: Registry; node: FleetNode; mqtt: MainMqtt }, closers: Closer[]): Promise<ShardSupervisor> {
  const { registry, node, mqtt } = parts;
  const allInits: ShardInit[] = registry.shardFiles.map((dbFile, shard) => ({
    shard,
    shardCount: registry.shardCount,
    config,
    dbFile,
    mqttUrl: mqtt.url,
    mqttClientId: `${mqtt.clientIdPrefix}-s${shard}`,
    mqttLogin: mqtt.login,
    kafkaTopicPrefix: options.kafkaTopicPrefix ?? node.kafkaTopicPrefix ?? '',
  }));
  const inits = allInits.filter((init) => node.startsWith(init.shard));
  const shards = await ShardSupervisor.start({
    inits,
    runtime: options.shardRuntime ?? 'worker',
    // A cluster node gains shards when another dies: a spare thread takes the start off the failover's path.
    spareWorker: node.clustered,
    logger: options.logger,
    local: { ...(options.gateway && { gateway: options.gateway }), ...(options.clock && { clock: options.clock }) },
  });
  closers.push(() => shards.close());
  // In a cluster the group places the shards; the node leaves it after its shards flushed (closers run last first).
  const leave = await node.place(shards, allInits, options.logger);
  closers.splice(closers.length - 1, 0, leave);
  return shards;
}

/**
 * The main thread's own MQTT session: provisioning on Mosquitto's dynamic security, and presence
 * an operator clears. The vehicles' topics are the shards' business.
 */
async function startDeviceAccess(
  config: FleetConfig,
  parts: { security: DeviceSecurity; broker: EmbeddedBroker | null; mqtt: MainMqtt; node: FleetNode; logger: Logger },
  closers: Closer[],
): Promise<DeviceAccess> {
  const { security, broker, mqtt, node, logger } = parts;
  const control = await MqttConnection.connect({
    url: mqtt.url,
    protocolVersion: config.mqtt.protocolVersion,
    clientId: node.controlClientId(mqtt.clientIdPrefix),
    username: mqtt.login.username,
    password: mqtt.login.password,
    logger,
    persistentSession: false,
  });
  closers.push(() => control.close());
  const provisioner = createProvisioner(config, { mqtt: control, broker, logger });
  const devices = createDeviceAccess({ security, provisioner, mqtt: control });
  await seedDemoCredentials({ security, provisioner, config, logger }, demoVehicleIds(config.seedVehicles));
  return devices;
}

/** HTTP in front of the router to the shards; listening unless the caller injects requests (tests). */
async function startHttp(
  config: FleetConfig,
  options: FleetOptions,
  parts: { registry: Registry; shards: ShardSupervisor; links: ShardLinks; node: FleetNode; devices: DeviceAccess; mqttUrl: string; initialArea: OperatingArea | null },
  closers: Closer[],
): Promise<{ app: FastifyInstance; url: string | null }> {
  const { logger } = options;
  const { registry, shards, links, node, devices, mqttUrl, initialArea } = parts;
  // Claims and stored answers of Idempotency-Keys live on the shards (claim actors, in the group
  // commit): no disk on this thread per request. The registry's table only ages out what an older
  // version stored there. Through `links`: in a cluster a claim on another node's shard is asked there.
  closers.push(housekeepIdempotency({ idempotency: new IdempotencyStore(registry.db), logger }));
  // Each start is a new holder of claims: in a cluster the claims of other nodes' requests are theirs
  // while their lease runs; alone, a claim of an earlier start died with it (actors/idempotency/decider.ts).
  const idempotency = new ShardedIdempotency(links, config.timing.askTimeoutMs, {
    holder: `${node.self.id}/${randomUUID()}`,
    leaseMs: claimLeaseMs(config.timing.askTimeoutMs),
    othersMayRun: node.clustered,
  });
  const metrics = options.metrics ?? createMetrics();
  registerShardMetrics(metrics, shards);
  const events = new ShardedEvents(links);
  closers.push(() => events.close());
  // The open-data feeds and the operating area (docs/gbfs.md).
  let url: string | null = null;
  const operatingArea = new OperatingAreaService({ file: config.operatingArea.file, initial: initialArea, shards: links, own: shards, peers: node.areaPeers(logger), logger });
  const gbfs = new GbfsFeeds({
    shards: links,
    config,
    baseUrl: () => config.http.publicBaseUrl ?? url ?? `http://${config.http.host}:${config.http.port}`,
    area: () => operatingArea.area(),
    readTimeoutMs: config.timing.askTimeoutMs,
  });
  metrics.observedCounter({ name: 'fleet_gbfs_vehicle_status_rebuilds_total', help: 'Rebuilds of the GBFS vehicle_status.json snapshot (at most one per ttl).', read: () => gbfs.rebuildStats().count });
  metrics.gauge({ name: 'fleet_gbfs_vehicle_status_rebuild_seconds', help: 'How long the last rebuild of vehicle_status.json took: every shard read in pages, merged, serialized and gzipped.', collect: () => gbfs.rebuildStats().lastMs / 1000 });
  const app = buildApp({
    isStorageFull,
    fleet: new ShardedFleetService(links, config.timing, config.maxActiveBookingsPerCustomer),
    devices,
    config,
    logger,
    idempotency,
    metrics,
    health: () => {
      const report = healthOf(shards, mqttUrl, config.kafka.mode === 'kafka');
      return node.clustered ? { checks: { ...report.checks, cluster: { ok: true, detail: node.describe() } } } : report;
    },
    events,
    traces: new ShardedTraces(links),
    vehicleCommands: new ShardedVehicleCommands(links),
    gbfs,
    operatingArea,
    customerBookings: new ShardedCustomerBookings(links),
  });
  const metricsListener = config.metrics.listener;
  if (metricsListener && (options.listen ?? true)) {
    // Prometheus-style: a port of its own, bound where only the scraper reaches (METRICS_HOST), no token.
    const opsApp = buildOpsApp({ logger, metrics, health: () => healthOf(shards, mqttUrl, config.kafka.mode === 'kafka'), config });
    closers.push(() => opsApp.close());
    const metricsUrl = await listenOn({ port: 'METRICS_PORT', host: 'METRICS_HOST' }, metricsListener.host, metricsListener.port, () => opsApp.listen({ host: metricsListener.host, port: metricsListener.port }));
    logger.info({ url: metricsUrl }, 'metrics listener ready');
  }
  node.installRoutes(app, shards, () => url, operatingArea);
  closers.push(drainOnClose(app, config.shutdownGraceMs, logger));
  if (!(options.listen ?? true)) {
    await app.ready();
    return { app, url: null };
  }
  url = await listenOn({ port: 'PORT', host: 'HOST' }, config.http.host, config.http.port, () => app.listen({ host: config.http.host, port: config.http.port }));
  return { app, url };
}

async function startBroker(
  config: FleetConfig,
  security: DeviceSecurity,
  logger: Logger,
  closers: Closer[],
): Promise<{ url: string; broker: EmbeddedBroker | null }> {
  if (config.mqtt.mode === 'external') return { url: config.mqtt.url, broker: null };
  const { port } = config.mqtt;
  const broker = await listenOn({ port: 'MQTT_PORT' }, '127.0.0.1', port, () => startEmbeddedBroker({ port, logger, security }));
  closers.push(() => broker.close());
  return { url: broker.url, broker };
}

/** FLEET_SEED demo vehicles, each registered in bulk on its own shard: start-up stays seconds at 100,000. */
async function seed(shards: ShardLinks, config: FleetConfig, logger: Logger): Promise<void> {
  const perShard = Array.from({ length: shards.count }, () => [] as ReturnType<typeof demoFleet>);
  for (const vehicle of demoFleet(config.seedVehicles)) perShard[shardOfVehicle(vehicle.id, shards.count)]!.push(vehicle);
  const started = Date.now();
  const results = await Promise.all(perShard.map((vehicles, shard) => shards.link(shard).call({ op: 'seed', vehicles }, 300_000)));
  const registered = results.reduce((sum, result) => sum + result.registered, 0);
  if (registered > 0) logger.info({ registered, ms: Date.now() - started }, 'demo fleet seeded');
}

function healthOf(shards: ShardSupervisor, mqttUrl: string, withKafka: boolean): HealthReport {
  const checks: Record<string, HealthCheck> = {};
  for (const link of shards.links) {
    const stats = link.stats();
    const name = `shard-${link.shard}`;
    if (link.state !== 'up' || !stats) {
      checks[name] = { ok: false, detail: `shard ${link.shard} is ${link.state} (restarts: ${shards.restarts(link.shard)})` };
      continue;
    }
    checks[name] = { ok: true, detail: `journal position ${stats.journal.position}; ${stats.actors.active} active actors` };
    checks[`${name}-mqtt`] = { ok: stats.mqtt.connected, detail: stats.mqtt.connected ? mqttUrl : `not connected to ${mqttUrl}` };
    // Kafka being down never stops bookings: the journal keeps the events, the relay catches up.
    if (withKafka && stats.relay) {
      const relay = stats.relay;
      checks[`${name}-kafka`] = { ok: true, detail: `${relay.connected ? 'connected' : `not connected${relay.lastError ? `: ${relay.lastError}` : ''}`}; lag ${relay.lag} journal positions` };
    }
  }
  return { checks };
}

/** Every shard's figures, labelled `shard`, from the stats each shard pushes every second. */
function registerShardMetrics(metrics: Metrics, shards: ShardSupervisor): void {
  const perShard = <L extends string>(read: (stats: ShardStats) => number | Array<{ labels: Record<L, string>; value: number }>) =>
    shards.links.flatMap((link) => {
      const stats = link.stats();
      if (!stats) return [];
      const value = read(stats);
      const shard = String(link.shard);
      return typeof value === 'number' ? [{ labels: { shard } as Record<'shard' | L, string>, value }] : value.map((sample) => ({ labels: { ...sample.labels, shard }, value: sample.value }));
    });
  metrics.gauge<'shard'>({ name: 'fleet_shard_up', help: '1 when the shard serves, 0 while it is down or restarting.', labelNames: ['shard'], collect: () => shards.links.map((link) => ({ labels: { shard: String(link.shard) }, value: link.state === 'up' ? 1 : 0 })) });
  metrics.observedCounter<'shard'>({ name: 'fleet_shard_restarts_total', help: 'Times a shard worker died and was started again.', labelNames: ['shard'], read: () => shards.links.map((link) => ({ labels: { shard: String(link.shard) }, value: shards.restarts(link.shard) })) });
  metrics.gauge<'shard' | 'kind'>({
    name: 'fleet_actors_active',
    help: 'Activated (not passivated) actors by kind.',
    labelNames: ['shard', 'kind'],
    collect: () => perShard<'kind'>((stats) => Object.entries(stats.actors.byKind).map(([kind, value]) => ({ labels: { kind }, value }))),
  });
  metrics.gauge<'shard'>({ name: 'fleet_actor_mailbox_depth', help: 'Messages sent to actors and not yet handled.', labelNames: ['shard'], collect: () => perShard((stats) => stats.actors.mailboxDepth) });
  metrics.observedCounter<'shard'>({ name: 'fleet_actor_activations_total', help: 'Actor activations (recoveries from the journal).', labelNames: ['shard'], read: () => perShard((stats) => stats.actors.activations) });
  metrics.observedCounter<'shard'>({ name: 'fleet_journal_commits_total', help: 'Group commits of the journal.', labelNames: ['shard'], read: () => perShard((stats) => stats.journal.commits) });
  metrics.observedCounter<'shard'>({ name: 'fleet_journal_events_total', help: 'Events committed to the journal.', labelNames: ['shard'], read: () => perShard((stats) => stats.journal.rows) });
  metrics.gauge<'shard'>({ name: 'fleet_journal_position', help: 'Last committed journal position.', labelNames: ['shard'], collect: () => perShard((stats) => stats.journal.position) });
  metrics.observedCounter<'shard'>({ name: 'fleet_booking_wakeups_total', help: 'Booking timer wake-ups (deadlines, compensation retries).', labelNames: ['shard'], read: () => perShard((stats) => stats.timers.woken) });
  metrics.gauge<'shard'>({ name: 'fleet_mqtt_connected', help: '1 when the shard\'s MQTT client is connected.', labelNames: ['shard'], collect: () => perShard((stats) => (stats.mqtt.connected ? 1 : 0)) });
  metrics.observedCounter<'shard'>({ name: 'fleet_mqtt_reconnects_total', help: 'Times a shard\'s MQTT client lost its broker and connected again.', labelNames: ['shard'], read: () => perShard((stats) => stats.mqtt.reconnects) });
  metrics.observedCounter<'shard' | 'outcome'>({
    name: 'fleet_telemetry_messages_total',
    help: 'Telemetry and presence messages by outcome.',
    labelNames: ['shard', 'outcome'],
    read: () => perShard<'outcome'>((stats) => Object.entries(stats.telemetry).filter(([outcome]) => outcome !== 'batches').map(([outcome, value]) => ({ labels: { outcome }, value }))),
  });
  metrics.gauge<'shard'>({ name: 'fleet_event_relay_lag', help: 'Journal positions between the newest public event and what Kafka acknowledged.', labelNames: ['shard'], collect: () => perShard((stats) => stats.relay?.lag ?? 0) });
  metrics.observedCounter<'shard'>({ name: 'fleet_event_relay_published_total', help: 'Records Kafka acknowledged.', labelNames: ['shard'], read: () => perShard((stats) => stats.relay?.published ?? 0) });
  metrics.observedCounter<'shard'>({ name: 'fleet_event_relay_failures_total', help: 'Failed publish attempts.', labelNames: ['shard'], read: () => perShard((stats) => stats.relay?.failures ?? 0) });
  metrics.gauge<'shard'>({ name: 'fleet_kafka_connected', help: '1 when the shard\'s relay reaches Kafka.', labelNames: ['shard'], collect: () => perShard((stats) => (stats.relay?.connected ? 1 : 0)) });
  metrics.observedCounter<'shard' | 'state'>({
    name: 'fleet_vehicle_commands_total',
    help: 'Device commands (UNLOCK, LOCK) by the state they reached: SENT for every command issued, then SUCCEEDED, REJECTED, TIMED_OUT, EXPIRED or LATE_SUCCESS.',
    labelNames: ['shard', 'state'],
    read: () => perShard((stats) => Object.entries(stats.commands).map(([state, value]) => ({ labels: { state }, value }))),
  });
  metrics.observedCounter<'shard' | 'kind'>({
    name: 'fleet_operating_area_violations_total',
    help: 'Operating-area violations during rides (docs/gbfs.md, "During a ride"), one per episode: ride-through-not-allowed or speed-limit-exceeded.',
    labelNames: ['shard', 'kind'],
    read: () => perShard<'kind'>((stats) => Object.entries(stats.areaViolations).map(([kind, value]) => ({ labels: { kind }, value }))),
  });
  metrics.gauge<'shard'>({ name: 'fleet_rides_overdue', help: 'Rides still going more than OVERDUE_RIDE_AFTER_MS past their booked end (each is also logged once).', labelNames: ['shard'], collect: () => perShard((stats) => stats.overdueRides) });
  // Cluster mode only (docs/cluster.md): each shard's journal of record in Kafka.
  const ofRecord = (read: (record: NonNullable<ShardStats['journalOfRecord']>) => number) => perShard((stats) => (stats.journalOfRecord ? [{ labels: {}, value: read(stats.journalOfRecord) }] : []));
  metrics.observedCounter<'shard'>({ name: 'fleet_journal_of_record_transactions_total', help: 'Cluster mode: Kafka transactions this owner committed for the shard (one per group-commit batch).', labelNames: ['shard'], read: () => ofRecord((record) => record.transactions) });
  metrics.observedCounter<'shard'>({ name: 'fleet_journal_of_record_commit_seconds_total', help: 'Cluster mode: time spent in those transactions (send + commit); divided by the transactions, the mean commit latency.', labelNames: ['shard'], read: () => ofRecord((record) => record.commitMsTotal / 1000) });
  metrics.gauge<'shard'>({ name: 'fleet_journal_of_record_offset', help: 'Cluster mode: the Kafka offset of the shard\'s journal partition its file applied up to.', labelNames: ['shard'], collect: () => ofRecord((record) => record.offset) });
  metrics.gauge<'shard'>({ name: 'fleet_shard_restore_seconds', help: 'Cluster mode: how long the shard took to catch up from its journal of record when it last started.', labelNames: ['shard'], collect: () => ofRecord((record) => record.restoreMs / 1000) });
  metrics.gauge<'shard'>({ name: 'fleet_shard_heap_used_bytes', help: 'Heap in use by the shard\'s thread.', labelNames: ['shard'], collect: () => perShard((stats) => stats.memory.heapUsedBytes) });
}
