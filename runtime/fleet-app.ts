import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { BOOKING, bookingBehaviour, type BookingMessage } from '../actors/booking/actor.js';
import { ALL_TOPICS, isPublicEventType } from '../actors/event-relay/catalog.js';
import { startEventRelay, type EventRelay } from '../actors/event-relay/relay.js';
import { paymentBehaviour, PAYMENT } from '../actors/payment/actor.js';
import { SimulatedPaymentGateway, type PaymentGateway } from '../actors/payment/gateway.js';
import { VEHICLE, vehicleBehaviour } from '../actors/vehicle/actor.js';
import { buildApp } from '../api/app.js';
import type { HealthReport } from '../api/ports.js';
import { SqliteCheckpointStore } from '../persistence/checkpoints.js';
import { IDEMPOTENCY_TTL_MS, IdempotencyStore } from '../persistence/idempotency-store.js';
import { SqliteJournalEngine } from '../persistence/journal-engine.js';
import { PUBLIC_TAG } from '../persistence/journal-types.js';
import { createProjectors } from '../persistence/projections.js';
import { openDatabase, type Db } from '../persistence/sqlite.js';
import { TraceStore } from '../persistence/trace-store.js';
import { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import { startActorSystem } from './actor-system.js';
import { BookingTimers } from './booking-timers.js';
import type { FleetConfig } from './config.js';
import { MqttDeviceLink } from './device-link.js';
import { createDeviceAccess, createDeviceSecurity, createProvisioner, seedDemoCredentials, type DeviceSecurity } from './device-security.js';
import { ActorDirectory } from './directory.js';
import { ActorFleetService } from './fleet-service.js';
import type { Logger } from './logger.js';
import { createKafkaClient } from './kafka/client.js';
import { ResilientProducer } from './kafka/producer.js';
import { createMetrics, type Metrics } from './metrics.js';
import { MqttConnection } from './mqtt/connection.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './mqtt/embedded-broker.js';
import { JournalEvents, JournalTraces } from './read-ports.js';
import { TelemetryPipeline } from './telemetry/pipeline.js';
import { demoVehicleIds, seedDemoFleet } from './seed.js';

export interface FleetOptions {
  readonly logger: Logger;
  /** Default: the simulated gateway with PAYMENT_LATENCY_MS. */
  readonly gateway?: PaymentGateway;
  /** Default true: bind HTTP on config.http. Tests may use `app.inject` instead. */
  readonly listen?: boolean;
  readonly metrics?: Metrics;
  /** Prepended to Kafka topic names (tests isolate themselves with it). */
  readonly kafkaTopicPrefix?: string;
}

export interface RunningFleet {
  readonly app: FastifyInstance;
  /** `http://host:port` when listening. */
  readonly url: string | null;
  /** The broker the process talks to (embedded or external). */
  readonly mqttUrl: string;
  readonly db: Db;
  readonly journal: SqliteJournalEngine;
  readonly directory: ActorDirectory;
  readonly gateway: PaymentGateway;
  readonly telemetry: TelemetryPipeline;
  readonly mqtt: MqttConnection;
  /** Null when KAFKA_BROKERS is unset: events then stay in the journal (GET /events). */
  readonly relay: EventRelay | null;
  close(): Promise<void>;
}

/**
 * The composition root: opens the journal, starts the actor system and the brokers' clients, wires
 * the actors to their ports and serves HTTP. `close` undoes it in reverse order, journal last, so that
 * nothing acknowledged is lost on a graceful stop.
 */
export async function startFleet(config: FleetConfig, options: FleetOptions): Promise<RunningFleet> {
  const { logger } = options;
  const closers: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const closer of closers.reverse()) {
      try {
        await closer();
      } catch (error) {
        logger.error({ err: error }, 'error while shutting down');
      }
    }
    closers.length = 0;
  };

  try {
    const db = openDatabase(config.db.file, { synchronous: config.db.synchronous });
    closers.push(() => {
      db.close();
    });
    const journal = new SqliteJournalEngine(db, { projectors: createProjectors(db), logger });
    closers.push(() => journal.close());
    const traces = new TraceStore(db, { logger });
    closers.push(() => traces.close());

    const system = startActorSystem(journal, logger);
    closers.push(() => system.stop());
    const directory = new ActorDirectory({
      system,
      logger,
      passivateAfterMs: config.timing.passivateAfterMs,
      askTimeoutMs: config.timing.askTimeoutMs,
      snapshotEvery: config.snapshotEvery,
      tagsFor: (event) => (isPublicEventType(event.type) ? [PUBLIC_TAG] : []),
      traces,
    });
    closers.push(() => directory.stopAll());

    // Device security (issue 10): logins checked against the credential store, signed commands, provisioning.
    const deviceSecurity = createDeviceSecurity({ db, config, logger });
    const { mqtt, mqttUrl, broker } = await connectMqtt(config, deviceSecurity, logger, closers);
    const provisioner = createProvisioner(config, { mqtt, broker, logger });
    const devices = createDeviceAccess({ security: deviceSecurity, provisioner, mqtt });
    const vehicles = new VehicleReadModel(db);
    // Position, battery and presence of the whole fleet, without waking a single vehicle actor.
    const telemetry = await TelemetryPipeline.start({ source: mqtt, db, logger });
    closers.push(() => telemetry.close());
    const gateway = options.gateway ?? new SimulatedPaymentGateway({ latencyMs: config.timing.paymentLatencyMs });

    directory.register(
      VEHICLE,
      vehicleBehaviour({
        device: new MqttDeviceLink(mqtt, logger.child({ component: 'device-link' }), deviceSecurity.sign),
        conditionsOf: (id) => vehicles.conditionsOf(id),
        notifyUnlocked: (ctx, bookingId, unlockedAt) => {
          const message: BookingMessage = { type: 'VehicleWasUnlocked', unlockedAt };
          ctx.tell({ kind: BOOKING, id: bookingId }, message);
        },
        unlockTimeoutMs: config.timing.unlockTimeoutMs,
      }),
    );
    directory.register(
      BOOKING,
      bookingBehaviour({
        reservationWindowMs: config.timing.reservationWindowMs,
        // Reserve + authorize each get an ask timeout; a saga still unconfirmed after both is abandoned.
        confirmWithinMs: 2 * config.timing.askTimeoutMs + config.timing.paymentTimeoutMs,
        unlockTimeoutMs: config.timing.unlockTimeoutMs,
      }),
    );
    directory.register(PAYMENT, paymentBehaviour({ gateway, timeoutMs: config.timing.paymentTimeoutMs }));

    const timers = new BookingTimers(db, directory, logger.child({ component: 'booking-timers' }));
    const stopTimerFeed = journal.onCommit((rows) => timers.onCommit(rows));
    closers.push(() => {
      stopTimerFeed();
      timers.stop();
    });
    timers.start();

    const relay = startKafkaRelay(config, { system, journal, checkpoints: new SqliteCheckpointStore(db), logger, topicPrefix: options.kafkaTopicPrefix ?? '' });
    if (relay) closers.push(() => relay.stop());

    if (config.seedVehicles > 0) await seedDemoFleet(directory, vehicles, config.seedVehicles, logger);
    await seedDemoCredentials({ security: deviceSecurity, provisioner, config, logger }, demoVehicleIds(config.seedVehicles));

    const idempotency = new IdempotencyStore(db);
    closers.push(startHousekeeping({ idempotency, traces, traceRetentionMs: config.traceRetentionMs, logger }));
    const metrics = options.metrics ?? createMetrics();
    registerRuntimeMetrics(metrics, { journal, directory, timers, mqtt, telemetry, relay });
    const health = (): HealthReport => ({
      checks: {
        journal: { ok: true, detail: `position ${journal.lastPosition()}` },
        mqtt: { ok: mqtt.stats().connected, detail: mqtt.stats().connected ? mqttUrl : `not connected to ${mqttUrl}` },
        // Kafka being down never stops bookings: the journal keeps the events, the relay catches up.
        ...(relay && { kafka: { ok: true, detail: relayDetail(relay) } }),
      },
    });
    const app = buildApp({
      fleet: new ActorFleetService(directory, vehicles, config.timing),
      devices,
      config,
      logger,
      idempotency,
      metrics,
      health,
      events: new JournalEvents(journal),
      traces: new JournalTraces(traces),
    });
    closers.push(() => app.close());
    let url: string | null = null;
    if (options.listen ?? true) url = await app.listen({ host: config.http.host, port: config.http.port });
    else await app.ready();
    logger.info({ url, mqtt: mqttUrl, db: config.db.file, kafka: config.kafka.mode }, 'fleetactors ready');

    return { app, url, mqttUrl, db, journal, directory, gateway, telemetry, mqtt, relay, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function connectMqtt(config: FleetConfig, security: DeviceSecurity, logger: Logger, closers: Array<() => Promise<void> | void>) {
  let broker: EmbeddedBroker | null = null;
  if (config.mqtt.mode === 'embedded') {
    broker = await startEmbeddedBroker({ port: config.mqtt.port, logger, security });
    const embedded = broker;
    closers.push(() => embedded.close());
  }
  const mqttUrl = broker ? broker.url : config.mqtt.mode === 'external' ? config.mqtt.url : '';
  // Without MQTT_CLIENT_ID, one id per process: two servers on one broker must not take over each
  // other's session (the connection discards a previous process's session either way).
  const mqtt = await MqttConnection.connect({
    url: mqttUrl,
    protocolVersion: config.mqtt.protocolVersion,
    clientId: config.mqtt.clientId ?? `fleetactors-${randomUUID().slice(0, 8)}`,
    username: security.serverLogin.username,
    password: security.serverLogin.password,
    logger,
    // The embedded broker lives in this process: nothing outlives a disconnect that a session could keep.
    persistentSession: config.mqtt.mode === 'external',
  });
  closers.push(() => mqtt.close());
  return { mqtt, mqttUrl, broker };
}

/** Trace steps deleted per transaction: a few milliseconds of work between two turns of the event loop. */
const TRACE_PURGE_CHUNK = 5000;

/** Hourly: stored idempotent responses past their 24 h, and traces past their retention. */
function startHousekeeping(parts: { idempotency: IdempotencyStore; traces: TraceStore; traceRetentionMs: number; logger: Logger }): () => void {
  let stopped = false;
  const sweep = async () => {
    const now = Date.now();
    const responses = parts.idempotency.purgeOlderThan(now - IDEMPOTENCY_TTL_MS);
    let steps = 0;
    for (let deleted = TRACE_PURGE_CHUNK; deleted === TRACE_PURGE_CHUNK && !stopped; ) {
      deleted = parts.traces.purgeOlderThan(now - parts.traceRetentionMs, TRACE_PURGE_CHUNK);
      steps += deleted;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (responses + steps > 0) parts.logger.info({ responses, steps }, 'housekeeping: expired idempotency responses and trace steps deleted');
  };
  const run = () => void sweep().catch((error: unknown) => parts.logger.error({ err: error }, 'housekeeping failed'));
  run();
  const timer = setInterval(run, 60 * 60_000);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function startKafkaRelay(
  config: FleetConfig,
  parts: Omit<Parameters<typeof startEventRelay>[0], 'producer'> & { topicPrefix: string },
): EventRelay | null {
  if (config.kafka.mode !== 'kafka') return null;
  const kafka = createKafkaClient({ brokers: config.kafka.brokers, clientId: config.kafka.clientId, logger: parts.logger.child({ component: 'kafka' }) });
  const producer = new ResilientProducer(kafka, parts.logger, {
    topics: { names: ALL_TOPICS.map((topic) => `${parts.topicPrefix}${topic}`), partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor },
  });
  const relay = startEventRelay({ ...parts, producer });
  // Topics exist from start-up on (consumers can subscribe before the first event), and a Kafka that
  // is down shows on /health at once; the relay retries on its own when this fails.
  producer.connect().catch((error: unknown) => parts.logger.warn({ err: error }, 'Kafka not reachable at start-up; events wait in the journal'));
  return {
    lag: () => relay.lag(),
    stats: () => relay.stats(),
    stop: async () => {
      await relay.stop();
      await producer.disconnect();
    },
  };
}

function relayDetail(relay: EventRelay): string {
  const stats = relay.stats();
  const link = stats.connected ? 'connected' : `not connected${stats.lastError ? `: ${stats.lastError}` : ''}`;
  return `${link}; lag ${relay.lag()} journal positions`;
}

function registerRuntimeMetrics(
  metrics: Metrics,
  parts: { journal: SqliteJournalEngine; directory: ActorDirectory; timers: BookingTimers; mqtt: MqttConnection; telemetry: TelemetryPipeline; relay: EventRelay | null },
): void {
  const { journal, directory, timers, mqtt, telemetry, relay } = parts;
  if (relay) {
    metrics.gauge({ name: 'fleet_event_relay_lag', help: 'Journal positions between the newest public event and what Kafka acknowledged.', collect: () => relay.lag() });
    metrics.observedCounter({ name: 'fleet_event_relay_published_total', help: 'Records Kafka acknowledged.', read: () => relay.stats().published });
    metrics.observedCounter({ name: 'fleet_event_relay_failures_total', help: 'Failed publish attempts.', read: () => relay.stats().failures });
    metrics.gauge({ name: 'fleet_kafka_connected', help: '1 when the relay reaches Kafka.', collect: () => (relay.stats().connected ? 1 : 0) });
  }
  metrics.observedCounter<'outcome'>({
    name: 'fleet_telemetry_messages_total',
    help: 'Telemetry and presence messages by outcome.',
    labelNames: ['outcome'],
    read: () => {
      const stats = telemetry.stats();
      return (['received', 'applied', 'rejected', 'superseded', 'ignored', 'dropped'] as const).map((outcome) => ({ labels: { outcome }, value: stats[outcome] }));
    },
  });
  metrics.gauge<'kind'>({
    name: 'fleet_actors_active',
    help: 'Activated (not passivated) actors by kind.',
    labelNames: ['kind'],
    collect: () => Object.entries(directory.stats().byKind).map(([kind, value]) => ({ labels: { kind }, value })),
  });
  metrics.gauge({ name: 'fleet_actor_mailbox_depth', help: 'Messages sent to actors and not yet handled.', collect: () => directory.stats().pendingMessages });
  metrics.observedCounter({ name: 'fleet_actor_activations_total', help: 'Actor activations (recoveries from the journal).', read: () => directory.stats().activations });
  metrics.observedCounter({ name: 'fleet_journal_commits_total', help: 'Group commits of the journal.', read: () => journal.stats().commits });
  metrics.observedCounter({ name: 'fleet_journal_events_total', help: 'Events committed to the journal.', read: () => journal.stats().rows });
  metrics.gauge({ name: 'fleet_journal_position', help: 'Last committed journal position.', collect: () => journal.lastPosition() });
  metrics.observedCounter({ name: 'fleet_booking_wakeups_total', help: 'Booking timer wake-ups (deadlines, compensation retries).', read: () => timers.stats().woken });
  metrics.gauge({ name: 'fleet_mqtt_connected', help: '1 when the MQTT client is connected.', collect: () => (mqtt.stats().connected ? 1 : 0) });
  metrics.observedCounter({ name: 'fleet_mqtt_reconnects_total', help: 'Times the MQTT client lost its broker and connected again.', read: () => mqtt.stats().reconnects });
}
