import { isStorageFull } from '../persistence/storage-full.js';
import { BOOKING, bookingBehaviour, type BookingMessage } from '../actors/booking/actor.js';
import { isPublicEventType } from '../actors/contract/event-catalog.js';
import { paymentBehaviour, PAYMENT } from '../actors/payment/actor.js';
import { SimulatedPaymentGateway, type PaymentGateway } from '../actors/payment/gateway.js';
import { reject } from '../actors/contract/rejections.js';
import { VEHICLE, vehicleBehaviour } from '../actors/vehicle/actor.js';
import type { VehicleFilter } from '../actors/contract/views.js';
import { SqliteCheckpointStore } from '../persistence/checkpoints.js';
import { SqliteJournalEngine } from '../persistence/journal-engine.js';
import { PUBLIC_TAG } from '../runtime/kernel/journal.js';
import { createProjectors } from '../persistence/projections.js';
import { openDatabase, type Db } from '../persistence/sqlite.js';
import { TraceStore } from '../persistence/trace-store.js';
import { TraceJournalReads } from '../persistence/trace-journal.js';
import { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import { BookingTimers } from '../persistence/booking-timers.js';
import { systemClock, type Clock } from '../runtime/ground/clock.js';
import { closerStack, type Closer } from '../runtime/ground/closers.js';
import { openSimulatedGatewayStore, simulatedGatewayFile } from '../persistence/simulated-gateway-store.js';
import type { FleetConfig } from './config.js';
import { MqttDeviceLink } from '../adapters/mqtt/device-link.js';
import { startEventRelayOnKafka, type EventRelay } from './event-relay-wiring.js';
import { housekeepTraces } from './housekeeping.js';
import { startActorSystem } from '../runtime/kernel/actor-system.js';
import { noAnswer } from '../actors/shared/no-answer.js';
import { ActorDirectory, type Message } from '../runtime/kernel/directory.js';
import { shardOfVehicle } from '../runtime/kernel/placement.js';
import type { ShardHandlers } from '../runtime/kernel/shard-host.js';

type FleetShardHandlers = ShardHandlers<ShardCall, ShardStats, ShardEvent>;
import type { ShardCall, ShardEvent, ShardRead, ShardStats } from './shard-calls.js';
import { LiveBookingCounter } from '../persistence/live-bookings.js';
import type { Logger } from '../runtime/ground/logger.js';
import { deriveCommandKey, signCommand } from '../actors/contract/command-signature.js';
import { housekeepRejectedBookings } from '../persistence/rejected-bookings.js';
import { MqttConnection } from '../adapters/mqtt/connection.js';
import { deviceSecretFrom } from '../actors/contract/device-secrets.js';
import type { UnsignedDeviceCommand } from '../actors/contract/device-protocol.js';
import { toShardEvents, traceSteps, bookingTraceSteps, vehicleCommands, watchCommandOutcomes } from './shard-reads.js';
import { registerInBulk } from './seed.js';
import { TelemetryPipeline } from '../adapters/telemetry/pipeline.js';
import { GbfsVehicleReads } from '../persistence/gbfs-vehicles.js';
import { gbfsVehicleChunk } from './gbfs/documents.js';
import { loadOperatingAreaFile } from './operating-area-file.js';
import type { OperatingArea } from '../actors/contract/operating-area.js';

/**
 * Everything a shard starts from: plain data, so that it can be handed to a worker thread (or, one
 * day, to another process) as it is.
 */
export interface ShardInit {
  readonly shard: number;
  readonly shardCount: number;
  readonly config: FleetConfig;
  /** This shard's own SQLite file (or `:memory:`). */
  readonly dbFile: string;
  /** The broker every shard connects to (the main thread's embedded one, or MQTT_URL). */
  readonly mqttUrl: string;
  readonly mqttClientId: string;
  /** The server's MQTT login (every shard the same; docs/mqtt-security.md). */
  readonly mqttLogin: { readonly username: string; readonly password: string };
  readonly kafkaTopicPrefix: string;
}

/** What only an in-process shard can be given (tests): things that do not survive a structured clone. */
export interface LocalShardOptions {
  readonly logger: Logger;
  readonly gateway?: PaymentGateway;
  /** Booking and payment time and the booking timers (a test's clock); default the wall clock. */
  readonly clock?: Clock;
}

/** One shard, running: its parts are reachable in-process (tests); across threads only `handlers` is. */
export interface RunningShard {
  readonly shard: number;
  readonly handlers: FleetShardHandlers;
  readonly db: Db;
  readonly journal: SqliteJournalEngine;
  readonly directory: ActorDirectory;
  readonly gateway: PaymentGateway;
  readonly telemetry: TelemetryPipeline;
  readonly mqtt: MqttConnection;
  readonly relay: EventRelay | null;
  close(): Promise<void>;
}

/**
 * The composition root of one shard (docs/architecture.md, "Shards"): its own journal file, actor system and
 * directory, its vehicle, booking and payment actors, its booking timers, its MQTT connection (the
 * vehicle actors' subscriptions and their unlock timeouts live here, on the vehicle's own thread), its
 * telemetry pipeline for its own vehicles, and its event relay to Kafka. `close` undoes it in reverse
 * order, journal last, so nothing acknowledged is lost on a graceful stop.
 */
export async function startShard(init: ShardInit, local: LocalShardOptions): Promise<RunningShard> {
  const { config, shard, shardCount } = init;
  const logger = local.logger.child({ shard });
  // Vehicles keep the wall clock: a device checks a command's expiresAt against its own clock.
  const clock = local.clock ?? systemClock;
  const { closers, close } = closerStack(logger, 'the shard');

  try {
    const db = openDatabase(init.dbFile, { synchronous: config.db.synchronous });
    closers.push(() => {
      db.close();
    });
    const journal = new SqliteJournalEngine(db, { projectors: createProjectors(db), logger });
    closers.push(() => journal.close());
    const traces = new TraceStore(db, { logger });
    closers.push(() => traces.close());
    const traceJournal = new TraceJournalReads(db);
    // Before the actor system: closers run in reverse, so the gateway's store outlives every payment
    // actor's last call (a Void in flight at shutdown found it closed).
    const gateway = local.gateway ?? simulatedGateway(init.dbFile, config.timing.paymentLatencyMs, closers);

    const system = startActorSystem(journal, logger);
    closers.push(() => system.stop());
    const directory = new ActorDirectory({
      system,
      logger,
      passivateAfterMs: config.timing.passivateAfterMs,
      askTimeoutMs: config.timing.askTimeoutMs,
      snapshotEvery: config.snapshotEvery,
      tagsFor: tagsForEvent,
      traces,
      traceSample: config.traceSample,
      startsFresh: createsItsActor,
      isStorageFull,
    });
    closers.push(() => directory.stopAll());

    const mqtt = await MqttConnection.connect({
      url: init.mqttUrl,
      protocolVersion: config.mqtt.protocolVersion,
      clientId: init.mqttClientId,
      username: init.mqttLogin.username,
      password: init.mqttLogin.password,
      logger,
      // The embedded broker lives in this process: nothing outlives a disconnect that a session could keep.
      persistentSession: config.mqtt.mode === 'external',
    });
    closers.push(() => mqtt.close());
    const ownVehicle = (vehicleId: string) => shardOfVehicle(vehicleId, shardCount) === shard;
    const vehicles = new VehicleReadModel(db);
    // The file is the truth a restarted shard starts from; an operator's replacement arrives as a call.
    let operatingArea: OperatingArea | null = config.operatingArea.file ? loadOperatingAreaFile(config.operatingArea.file) : null;
    const telemetry = await TelemetryPipeline.start({ source: mqtt, db, logger, accepts: ownVehicle });
    closers.push(() => telemetry.close());

    directory.register(
      VEHICLE,
      vehicleBehaviour({
        // Every command carries a signature the vehicle checks; the keys derive from plain configuration,
        // so signing needs nothing from another thread.
        device: new MqttDeviceLink(mqtt, logger.child({ component: 'device-link' }), commandSigner(config)),
        conditionsOf: (id) => vehicles.conditionsOf(id),
        notifyUnlocked: (ctx, bookingId, unlockedAt) => {
          const message: BookingMessage = { type: 'VehicleWasUnlocked', unlockedAt };
          ctx.tell({ kind: BOOKING, id: bookingId }, message);
        },
        notifyLocked: (ctx, bookingId, lockedAt) => {
          const message: BookingMessage = { type: 'VehicleWasLocked', lockedAt };
          ctx.tell({ kind: BOOKING, id: bookingId }, message);
        },
        unlockTimeoutMs: config.timing.unlockTimeoutMs,
        areaCheck: (id) => {
          const position = operatingArea && vehicles.positionOf(id);
          return operatingArea && position ? { policy: { area: operatingArea, maxFixAgeMs: config.operatingArea.maxFixAgeMs }, position } : null;
        },
      }),
    );
    directory.register(
      BOOKING,
      bookingBehaviour({
        reservationWindowMs: config.timing.reservationWindowMs,
        // Reserve + authorize each get an ask timeout; a saga still unconfirmed after both is abandoned.
        confirmWithinMs: 2 * config.timing.askTimeoutMs + config.timing.paymentTimeoutMs,
        unlockTimeoutMs: config.timing.unlockTimeoutMs,
        now: () => clock.now(),
      }),
    );
    directory.register(PAYMENT, paymentBehaviour({ gateway, timeoutMs: config.timing.paymentTimeoutMs, now: () => clock.now() }));

    const timers = new BookingTimers(db, directory, logger.child({ component: 'booking-timers' }), clock);
    const stopTimerFeed = journal.onCommit((rows) => timers.onCommit(rows));
    closers.push(() => {
      stopTimerFeed();
      timers.stop();
    });
    timers.start();
    const commandOutcomes = watchCommandOutcomes(db, journal);
    closers.push(commandOutcomes.stop);

    const relay = startEventRelayOnKafka(config, {
      system,
      journal,
      checkpoints: new SqliteCheckpointStore(db),
      logger,
      topicPrefix: init.kafkaTopicPrefix,
      clientId: `${config.kafka.mode === 'kafka' ? config.kafka.clientId : 'fleetactors'}-s${shard}`,
    });
    if (relay) closers.push(() => relay.stop());
    closers.push(housekeepTraces({ traces, retentionMs: config.traceRetentionMs, logger }));
    closers.push(housekeepRejectedBookings({ db, isActive: (address) => directory.isActive(address), logger }));

    let stopFollowing: (() => void) | null = null;
    closers.push(() => stopFollowing?.());

    const stats = (): ShardStats => {
      const actors = directory.stats();
      const journalStats = journal.stats();
      const link = mqtt.stats();
      const relayStats = relay?.stats();
      return {
        shard,
        actors: { active: actors.active, byKind: actors.byKind, activations: actors.activations, passivations: actors.passivations, mailboxDepth: actors.pendingMessages },
        journal: { commits: journalStats.commits, rows: journalStats.rows, position: journal.lastPosition() },
        mqtt: { connected: link.connected, reconnects: link.reconnects, subscriptions: link.subscriptions, url: init.mqttUrl },
        telemetry: { ...telemetry.stats() },
        timers: { woken: timers.stats().woken },
        relay: relay && relayStats
          ? { lag: relay.lag(), published: relayStats.published, failures: relayStats.failures, connected: relayStats.connected, lastError: relayStats.lastError }
          : null,
        memory: { heapUsedBytes: process.memoryUsage().heapUsed },
        commands: commandOutcomes.counts(),
      };
    };

    const liveBookings = new LiveBookingCounter(db);
    const gbfsVehicles = new GbfsVehicleReads(db);
    const read = (request: ShardRead): unknown => {
      switch (request.read) {
        case 'vehicle':
          return vehicles.get(request.id) ?? null;
        case 'vehicles':
          return vehicles.list(request.filter as unknown as VehicleFilter);
        case 'events': {
          const rows = journal.readAfter(request.after, request.limit, PUBLIC_TAG);
          // `scannedTo`: rows that are not events (a type no longer in the catalog) still move the cursor.
          return { events: toShardEvents(shard, rows), scannedTo: rows.at(-1)?.position ?? request.after };
        }
        case 'trace':
          return traceSteps(traces, request.traceId);
        case 'booking-traces':
          return bookingTraceSteps(traces, request.bookingId, request.limit);
        case 'vehicle-commands':
          return vehicleCommands(db, request.vehicleId, request.limit, Date.now());
        case 'trace-journal':
          return traceJournal.read(request.query);
        case 'live-bookings':
          return liveBookings.liveBookings(request.customerId, request.exceptBookingId);
        case 'gbfs-vehicles':
          return gbfsVehicleChunk(gbfsVehicles.read(request.afterId, request.limit));
      }
    };

    const handlers: FleetShardHandlers = {
      call: async (call: ShardCall): Promise<unknown> => {
        switch (call.op) {
          case 'ask': {
            // Placement is the main thread's job; a vehicle that is not ours does not exist here.
            if (call.target.kind === VEHICLE && !ownVehicle(call.target.id)) return reject({ type: 'VehicleNotFound', vehicleId: call.target.id });
            try {
              return await directory.ask(call.target, call.message, call.from, call.trace, call.timeoutMs);
            } catch (error) {
              const rejection = noAnswer(error);
              if (rejection) return reject(rejection);
              throw error;
            }
          }
          case 'read':
            return read(call.read);
          case 'seed':
            return registerInBulk(journal, vehicles, call.vehicles, logger);
          case 'stats':
            return stats();
          case 'operating-area':
            operatingArea = call.area;
            return null;
          case 'stop':
            await close();
            return null;
        }
      },
      stats,
      followEvents: (listener: ((events: readonly ShardEvent[]) => void) | null) => {
        stopFollowing?.();
        stopFollowing = listener
          ? journal.onCommit((rows) => {
              const events = toShardEvents(shard, rows.filter((row) => row.tags.includes(PUBLIC_TAG)));
              if (events.length > 0) listener(events);
            })
          : null;
      },
    };
    logger.debug({ db: init.dbFile, mqtt: init.mqttUrl }, 'shard started');
    return { shard, handlers, db, journal, directory, gateway, telemetry, mqtt, relay, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Journal tags of an event: `public` for those that leave the process (Kafka, GET /events). */
const tagsForEvent = (event: Message): string[] => (isPublicEventType(event.type) ? [PUBLIC_TAG] : []);

/**
 * The commands that create their actor and persist before they answer: a new booking, its one payment
 * authorization. Their activation reads no journal; a retried create finds out (NotNewAfterAll).
 */
const createsItsActor = (kind: string, command: Message): boolean =>
  (kind === BOOKING && command.type === 'CreateBooking') || (kind === PAYMENT && command.type === 'Authorize');

function commandSigner(config: FleetConfig): (vehicleId: string, command: UnsignedDeviceCommand) => string {
  const deviceSecret = deviceSecretFrom(config.mqttSecurity.deviceSecret ?? undefined, config.auth.jwtSecret);
  return (vehicleId, command) => signCommand(deriveCommandKey(deviceSecret, vehicleId), vehicleId, command);
}

/** The built-in stand-in processor; outside `:memory:` it remembers its authorizations across restarts. */
function simulatedGateway(dbFile: string, latencyMs: number, closers: Closer[]): SimulatedPaymentGateway {
  if (dbFile === ':memory:') return new SimulatedPaymentGateway({ latencyMs });
  const store = openSimulatedGatewayStore(simulatedGatewayFile(dbFile));
  closers.push(() => store.close());
  return new SimulatedPaymentGateway({ latencyMs, store });
}
