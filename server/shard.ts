import { isStorageFull } from '../persistence/storage-full.js';
import { SimulatedPaymentGateway, type PaymentGateway } from '../actors/payment/gateway.js';
import { SqliteCheckpointStore } from '../persistence/checkpoints.js';
import { SqliteJournalEngine } from '../persistence/journal-engine.js';
import { PUBLIC_TAG } from '../runtime/kernel/journal.js';
import { createProjectors } from '../persistence/projections.js';
import { startWalCheckpointer } from '../persistence/wal-checkpointer.js';
import { openWalSync } from '../persistence/wal-sync.js';
import { openDatabase, type Db } from '../persistence/sqlite.js';
import { TraceStore } from '../persistence/trace-store.js';
import { openTraceFile } from '../persistence/trace-file.js';
import { TraceJournalReads } from '../persistence/trace-journal.js';
import { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import { BookingTimers } from '../persistence/booking-timers.js';
import { systemClock, type Clock } from '../runtime/ground/clock.js';
import { closerStack, type Closer } from '../runtime/ground/closers.js';
import { openSimulatedGatewayStore, simulatedGatewayFile } from '../persistence/simulated-gateway-store.js';
import type { FleetConfig } from './config.js';
import { startEventRelayOnKafka, type EventRelay } from './event-relay-wiring.js';
import { housekeepAreaViolations, housekeepTraces } from './housekeeping.js';
import { startActorSystem, type ActorSystem } from '../runtime/kernel/actor-system.js';
import { ActorDirectory } from '../runtime/kernel/directory.js';
import { shardOfVehicle } from '../runtime/kernel/placement.js';
import type { ShardHandlers } from '../runtime/kernel/shard-host.js';
import type { FleetExchange, ShardEvent, ShardStats } from './shard-calls.js';
import { LiveBookingCounter } from '../persistence/live-bookings.js';
import { CustomerBookings } from '../persistence/customer-bookings.js';
import type { Logger } from '../runtime/ground/logger.js';
import { housekeepRejectedBookings } from '../persistence/rejected-bookings.js';
import { housekeepIdempotencyClaims } from '../persistence/idempotency-claims-purge.js';
import { MqttConnection } from '../adapters/mqtt/connection.js';
import { toShardEvents, watchCommandOutcomes } from './shard-reads.js';
import { demoFleet, registerInBulk } from './seed.js';
import { TelemetryPipeline } from '../adapters/telemetry/pipeline.js';
import { areaViolationPurge, AreaViolationReads, AreaViolationRecorder } from '../persistence/area-violations.js';
import { GbfsVehicleReads } from '../persistence/gbfs-vehicles.js';
import { loadOperatingAreaFile } from './operating-area-file.js';
import type { OperatingArea } from '../actors/contract/operating-area.js';
import { createsItsActor, isStrangersRefusal, registerShardActors, tagsForEvent } from './shard-actors.js';
import { BookingReadModel } from '../persistence/booking-read-model.js';
import { OverdueRides } from '../persistence/overdue-rides.js';
import { BOOKING } from '../actors/booking/actor.js';
import type { ActorAddress, Message } from '../runtime/kernel/directory.js';
import { dispatchCall, shardCallHandlers } from './shard-call-dispatch.js';
import { shardReadHandlers } from './shard-read-dispatch.js';
import { createKafkaClient } from '../adapters/kafka/client.js';
import { isFencedError, journalTopic, JournalOfRecord, readPartition } from '../adapters/kafka/journal-of-record.js';
import { decodeRecord } from '../persistence/journal-replication.js';
import { EventOutbox } from '../actors/event-relay/outbox.js';

type FleetShardHandlers = ShardHandlers<FleetExchange, ShardStats, ShardEvent>;

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
  /** Cluster mode: the shard stopped for good (its journal of record refused a batch); `fenced` when another producer took its id. */
  onHalt(listener: (halt: ShardHalt) => void): void;
  close(): Promise<void>;
}

export interface ShardHalt {
  readonly fenced: boolean;
  readonly reason: string;
}

/**
 * The composition root of one shard (docs/architecture.md, "Shards"): its own journal file, actor system and
 * directory, its vehicle, booking and payment actors, its booking timers, its MQTT connection (the
 * vehicle actors' subscriptions and their unlock timeouts live here, on the vehicle's own thread), its
 * telemetry pipeline for its own vehicles, and its event relay to Kafka (in cluster mode, the outbox of
 * its journal of record instead). `close` undoes it in reverse
 * order, journal last, so nothing acknowledged is lost on a graceful stop.
 */
export async function startShard(init: ShardInit, local: LocalShardOptions): Promise<RunningShard> {
  const { config, shard, shardCount } = init;
  const logger = local.logger.child({ shard });
  // Vehicles keep the wall clock: a device checks a command's expiresAt against its own clock.
  const clock = local.clock ?? systemClock;
  const { closers, close } = closerStack(logger, 'the shard');

  try {
    const files = openStorage(init, local, logger, closers);
    const { db, journal, gateway } = files;
    // Before anything can persist or read a read model: the file catches up with its journal of record.
    const ofRecord = await restoreFromJournalOfRecord(init, journal, logger, closers);
    // After the restore, whose refusals leave the file as it was: the trace file may move old steps out of it.
    const storage: ShardStorage = { ...files, traces: openTraces(init, db, logger, closers) };
    const { system, directory } = startDirectory(config, storage, logger, closers);
    const mqtt = await connectMqtt(init, logger, closers);
    const ownsVehicle = (vehicleId: string) => shardOfVehicle(vehicleId, shardCount) === shard;
    const vehicles = new VehicleReadModel(db);
    // Cluster mode: a shard seeds its FLEET_SEED share itself, on whichever node starts it, after its
    // restore and before it serves (registerInBulk's rule). The main thread cannot: the group may move a
    // shard while it starts, and other nodes forward calls to it as soon as its owner record is out.
    if (ofRecord && config.seedVehicles > 0) await registerInBulk(journal, vehicles, demoFleet(config.seedVehicles).filter((vehicle) => ownsVehicle(vehicle.id)), logger);
    // The file is the truth a restarted shard starts from; an operator's replacement arrives as a call.
    let operatingArea: OperatingArea | null = config.operatingArea.file ? loadOperatingAreaFile(config.operatingArea.file) : null;
    const violations = new AreaViolationRecorder(db, () => operatingArea);
    const telemetry = await TelemetryPipeline.start({ source: mqtt, db, logger, accepts: ownsVehicle, violations });
    closers.push(() => telemetry.close());
    registerShardActors(directory, { config, mqtt, vehicles, gateway, clock, logger, operatingArea: () => operatingArea });
    // Cluster mode: the public events go out in each batch's own Kafka transaction (the outbox), so no relay runs.
    const { timers, commandOutcomes, relay } = startBackgroundWork(init, { storage, system, directory, clock, logger, withRelay: ofRecord === null }, closers);

    const overdueRides = overdueRideCheck(db, clock, config.overdueRideAfterMs, logger);
    const bookingIds = new BookingReadModel(db);
    /**
     * A booking command (not a create) for an id with no row in the read model and no live actor: no
     * such booking, answered without an activation. The order matters for a booking being created right
     * now: its activation is recorded synchronously when CreateBooking is sent and stays until well
     * after the create committed its row, so a concurrent request finds one or the other.
     */
    const isUnknownBooking = (target: ActorAddress, message: Message): boolean =>
      target.kind === BOOKING && !createsItsActor(target.kind, message) && !directory.isActive(target) && !bookingIds.exists(target.id);
    const readStats = (): ShardStats => ({
      shard,
      actors: actorStats(directory),
      journal: journalStats(journal),
      mqtt: { ...mqttStats(mqtt), url: init.mqttUrl },
      telemetry: { ...telemetry.stats() },
      timers: { woken: timers.stats().woken },
      relay: ofRecord ? outboxStats(ofRecord.record) : relayStats(relay),
      memory: { heapUsedBytes: process.memoryUsage().heapUsed },
      commands: commandOutcomes.counts(),
      overdueRides: overdueRides(),
      areaViolations: violations.stats(),
      journalOfRecord: ofRecord && { ...ofRecord.record.stats(), restoreMs: ofRecord.restoreMs },
    });
    // The host's stats timer runs until the port is let go, which is after a stop closed the journal:
    // from the stop on, the last figures stand (pushed last, so the first closer to run).
    let lastStats: ShardStats | null = null;
    let stopping = false;
    closers.push(() => {
      stopping = true;
    });
    const stats = (): ShardStats => (stopping && lastStats ? lastStats : (lastStats = readStats()));
    const reads = shardReadHandlers({ shard, db, journal, vehicles, traces: storage.traces, traceJournal: storage.traceJournal, liveBookings: new LiveBookingCounter(db), customerBookings: new CustomerBookings(db), gbfsVehicles: new GbfsVehicleReads(db), areaViolations: new AreaViolationReads(db) });
    const calls = shardCallHandlers({ directory, ownsVehicle, isUnknownBooking, reads, seed: (seed) => registerInBulk(journal, vehicles, seed, logger), stats, replaceOperatingArea: (area) => (operatingArea = area), stop: close });
    const handlers: FleetShardHandlers = { call: (call) => dispatchCall(calls, call), stats, followEvents: eventFollower(shard, journal, closers) };
    logger.debug({ db: init.dbFile, mqtt: init.mqttUrl }, 'shard started');
    const onHalt = (listener: (halt: ShardHalt) => void): void => {
      journal.onHalt((error) => listener({ fenced: isFencedError(error), reason: error instanceof Error ? error.message : String(error) }));
    };
    return { shard, handlers, db, journal, directory, gateway, telemetry, mqtt, relay, onHalt, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * Cluster mode (docs/cluster.md): opens the shard's journal of record (its transactional producer
 * fences any earlier owner and writes an owner mark), replays the partition from the offset this file
 * recorded (from the start on an empty file) up to that mark, read_committed, through the journal's
 * own write path (read models and wake_at included), and from then on commits every batch there
 * first. Single-process mode: nothing.
 */
async function restoreFromJournalOfRecord(init: ShardInit, journal: SqliteJournalEngine, logger: Logger, closers: Closer[]): Promise<{ record: JournalOfRecord; restoreMs: number } | null> {
  const { config, shard } = init;
  const cluster = config.cluster;
  if (cluster === null || config.kafka.mode !== 'kafka') return null;
  const recorded = journal.replicatedOffset();
  if (recorded === null && journal.lastPosition() > 0) {
    throw new Error(`shard ${shard}: ${init.dbFile} holds a journal that no journal of record covers (written outside cluster mode); move it away and the shard restores from Kafka`);
  }
  const kafka = createKafkaClient({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-${cluster.node.id}-s${shard}-journal`, logger });
  const started = Date.now();
  // The relay's record builder decides what of each batch goes out as public events, in the batch's transaction.
  const outbox = new EventOutbox(init.kafkaTopicPrefix, logger);
  const record = await JournalOfRecord.open({ kafka, clusterName: cluster.name, shard, nodeId: cluster.node.id, nodeUrl: cluster.node.url, logger, outbox });
  // The producer outlives the journal's last batch: closers run in reverse, so this one closes both.
  closers.push(async () => {
    await journal.close();
    await record.close();
  });
  if (recorded !== null && recorded >= record.ownerMarkOffset) {
    // Kafka lost what this file applied (its topic was deleted and created again): the file cannot be trusted as a copy.
    throw new Error(`shard ${shard}: ${init.dbFile} has applied offset ${recorded} of ${journalTopic(cluster.name)}, but the partition ends at ${record.ownerMarkOffset}; move the file away and the shard restores from Kafka`);
  }
  const applied = await readPartition({
    kafka,
    topic: journalTopic(cluster.name),
    partition: shard,
    fromOffset: (recorded ?? -1) + 1,
    untilOffset: record.ownerMarkOffset,
    groupIdPrefix: `${cluster.name}.restore.shard-${shard}`,
    logger,
    apply: (value, offset) => journal.applyReplicated(decodeRecord(value), offset),
  });
  journal.applyReplicated({ v: 1, type: 'owner', node: cluster.node.id, at: started }, record.ownerMarkOffset);
  const restoreMs = Date.now() - started;
  logger.info({ from: recorded, applied, ownerMark: record.ownerMarkOffset, ms: restoreMs }, 'shard restored from its journal of record');
  journal.replicateTo(record);
  return { record, restoreMs };
}

/** Counted with the stats each second; each ride that becomes overdue is logged once, for operators. */
function overdueRideCheck(db: Db, clock: Clock, overdueAfterMs: number, logger: Logger): () => number {
  const overdue = new OverdueRides(db);
  const overdueLog = logger.child({ component: 'overdue-rides' });
  return () => {
    const { count, newlyOverdue } = overdue.check(clock.now(), overdueAfterMs);
    for (const ride of newlyOverdue) {
      overdueLog.warn({ ...ride, minutesPastBookedEnd: Math.floor((clock.now() - ride.dueBackAt) / 60_000) }, 'ride far past its booked end');
    }
    return count;
  };
}

interface ShardStorage {
  readonly db: Db;
  readonly journal: SqliteJournalEngine;
  readonly traces: TraceStore;
  readonly traceJournal: TraceJournalReads;
  readonly gateway: PaymentGateway;
}

/**
 * In cluster mode the shard's file is a copy of its journal of record (docs/cluster.md): a batch is in
 * Kafka before it is written here, and the file records the offset it applied in the same transaction
 * as the rows. A power loss can then cost the file only its last commits, never its consistency (WAL),
 * and the next start replays them from Kafka: an fsync per commit would buy nothing. A single process
 * keeps FLEET_DB_SYNC: its file is the journal.
 */
function shardFileSync(config: ShardInit['config']): 'FULL' | 'NORMAL' {
  return config.cluster !== null && config.kafka.mode === 'kafka' ? 'NORMAL' : config.db.synchronous;
}

/** The shard's SQLite file: its journal (with the read models' projectors) and the payment gateway's store. */
function openStorage(init: ShardInit, local: LocalShardOptions, logger: Logger, closers: Closer[]): Omit<ShardStorage, 'traces'> {
  const { config } = init;
  const onDisk = init.dbFile !== ':memory:';
  const synchronous = shardFileSync(config);
  // FULL on disk: the connection commits at NORMAL and the journal's WAL sync runs off this thread
  // (persistence/wal-sync.ts): FULL's guarantee, without the shard's loop waiting for the disk.
  const syncOffThread = onDisk && synchronous === 'FULL';
  const db = openDatabase(init.dbFile, { synchronous: syncOffThread ? 'NORMAL' : synchronous });
  closers.push(() => {
    db.close();
  });
  if (onDisk) {
    // Stopped before the connection closes (closers run in reverse), so the shard's close checkpoints last.
    const checkpointer = startWalCheckpointer({ db, file: init.dbFile, logger });
    closers.push(() => checkpointer.stop());
  }
  const walSync = syncOffThread ? openWalSync(init.dbFile) : undefined;
  if (walSync) closers.push(() => walSync.close());
  const journal = new SqliteJournalEngine(db, { projectors: createProjectors(db), logger, ...(walSync && { walSync }) });
  closers.push(() => journal.close());
  const traceJournal = new TraceJournalReads(db);
  // Before the actor system: closers run in reverse, so the gateway's store outlives every payment
  // actor's last call (a Void in flight at shutdown found it closed).
  const gateway = local.gateway ?? simulatedGateway(init.dbFile, config.timing.paymentLatencyMs, closers);
  return { db, journal, traceJournal, gateway };
}

/**
 * Trace steps in their own file (persistence/trace-file.ts), with their own checkpoint thread: the
 * journal's WAL sync and checkpoints no longer carry them. Closed before the journal (closers run in
 * reverse): the store writes what it buffered, then its checkpointer stops, then its connection closes.
 */
function openTraces(init: ShardInit, journalDb: Db, logger: Logger, closers: Closer[]): TraceStore {
  const traceFile = openTraceFile(journalDb, init.dbFile, logger);
  closers.push(() => {
    traceFile.db.close();
  });
  if (traceFile.file !== ':memory:') {
    const checkpointer = startWalCheckpointer({ db: traceFile.db, file: traceFile.file, logger });
    closers.push(() => checkpointer.stop());
  }
  const traces = new TraceStore(traceFile.db, { logger, maxStepsPerTrace: init.config.traceMaxSteps });
  closers.push(() => traces.close());
  return traces;
}

function startDirectory(config: FleetConfig, { journal, traces }: ShardStorage, logger: Logger, closers: Closer[]): { system: ActorSystem; directory: ActorDirectory } {
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
    untracedRefusal: isStrangersRefusal,
    isStorageFull,
  });
  closers.push(() => directory.stopAll());
  return { system, directory };
}

async function connectMqtt(init: ShardInit, logger: Logger, closers: Closer[]): Promise<MqttConnection> {
  const { config } = init;
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
  return mqtt;
}

interface BackgroundParts {
  readonly storage: ShardStorage;
  readonly system: ActorSystem;
  readonly directory: ActorDirectory;
  readonly clock: Clock;
  readonly logger: Logger;
  /** False in cluster mode: the journal of record's transactions publish the public events (its outbox). */
  readonly withRelay: boolean;
}

/** What runs besides the actors: the booking timers, the command outcome counts, the relay to Kafka, the hourly housekeeping. */
function startBackgroundWork(init: ShardInit, { storage, system, directory, clock, logger, withRelay }: BackgroundParts, closers: Closer[]) {
  const { config, shard } = init;
  const { db, journal, traces } = storage;
  const timers = new BookingTimers(db, directory, logger.child({ component: 'booking-timers' }), clock);
  const stopTimerFeed = journal.onCommit((rows) => timers.onCommit(rows));
  closers.push(() => {
    stopTimerFeed();
    timers.stop();
  });
  timers.start();
  const commandOutcomes = watchCommandOutcomes(db, journal);
  closers.push(commandOutcomes.stop);

  const relay = withRelay
    ? startEventRelayOnKafka(config, {
        system,
        journal,
        checkpoints: new SqliteCheckpointStore(db),
        logger,
        topicPrefix: init.kafkaTopicPrefix,
        clientId: `${config.kafka.mode === 'kafka' ? config.kafka.clientId : 'fleetactors'}-s${shard}`,
      })
    : null;
  if (relay) closers.push(() => relay.stop());
  closers.push(housekeepTraces({ traces, retentionMs: config.traceRetentionMs, logger }));
  closers.push(housekeepAreaViolations({ purge: areaViolationPurge(db), retentionMs: config.areaViolationRetentionMs, logger }));
  closers.push(housekeepRejectedBookings({ db, isActive: (address) => directory.isActive(address), logger }));
  closers.push(housekeepIdempotencyClaims({ db, isActive: (address) => directory.isActive(address), logger }));
  return { timers, commandOutcomes, relay };
}

/** While the main thread follows GET /events live: the shard's public events as they commit. */
function eventFollower(shard: number, journal: SqliteJournalEngine, closers: Closer[]): FleetShardHandlers['followEvents'] {
  let stopFollowing: (() => void) | null = null;
  closers.push(() => stopFollowing?.());
  return (listener) => {
    stopFollowing?.();
    stopFollowing = listener
      ? journal.onCommit((rows) => {
          const events = toShardEvents(shard, rows.filter((row) => row.tags.includes(PUBLIC_TAG)));
          if (events.length > 0) listener(events);
        })
      : null;
  };
}

function actorStats(directory: ActorDirectory): ShardStats['actors'] {
  const actors = directory.stats();
  return { active: actors.active, byKind: actors.byKind, activations: actors.activations, passivations: actors.passivations, mailboxDepth: actors.pendingMessages };
}

function journalStats(journal: SqliteJournalEngine): ShardStats['journal'] {
  const { commits, rows } = journal.stats();
  return { commits, rows, position: journal.lastPosition() };
}

function mqttStats(mqtt: MqttConnection): Omit<ShardStats['mqtt'], 'url'> {
  const link = mqtt.stats();
  return { connected: link.connected, reconnects: link.reconnects, subscriptions: link.subscriptions };
}

function relayStats(relay: EventRelay | null): ShardStats['relay'] {
  const stats = relay?.stats();
  if (!relay || !stats) return null;
  return { lag: relay.lag(), published: stats.published, failures: stats.failures, connected: stats.connected, lastError: stats.lastError };
}

/**
 * Cluster mode: the outbox publishes with every committed batch, so nothing waits (lag 0), and a
 * transaction that fails halts the shard rather than being retried (docs/cluster.md).
 */
function outboxStats(record: JournalOfRecord): ShardStats['relay'] {
  return { lag: 0, published: record.stats().events, failures: 0, connected: true, lastError: null };
}

/** The built-in stand-in processor; outside `:memory:` it remembers its authorizations across restarts. */
function simulatedGateway(dbFile: string, latencyMs: number, closers: Closer[]): SimulatedPaymentGateway {
  if (dbFile === ':memory:') return new SimulatedPaymentGateway({ latencyMs });
  const store = openSimulatedGatewayStore(simulatedGatewayFile(dbFile));
  closers.push(() => store.close());
  return new SimulatedPaymentGateway({ latencyMs, store });
}
