import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_TOPICS } from '../../../actors/contract/event-catalog.js';
import { unlockSettleMsFor } from '../../../actors/booking/actor.js';
import { ensureTopics } from '../../../adapters/kafka/admin.js';
import { seededRandom } from '../../../simulator/random.js';
import { VirtualVehicle } from '../../../simulator/virtual-vehicle.js';
import { freePort } from '../../helpers/free-port.js';
import { collectRecords, testKafkaClient, type RecordCollector } from '../../helpers/kafka.js';
import { startMosquitto, type MosquittoBroker } from '../../helpers/mosquitto.js';
import { REPO_ROOT, buildServer } from './build.js';
import { Api, emptyRecords, startCustomers, type CustomerLoad } from './customers.js';
import { canMount, mountSmallDisk, type SmallDisk } from './disk.js';
import { readJournals, type JournalEntry, type KafkaEvidence } from './evidence.js';
import { checkInvariants } from './invariants.js';
import { startPrivateKafka } from './kafka.js';
import type { ChaosReport, FaultResult, KillRecord } from './report.js';
import { ServerProcess } from './server.js';

/**
 * One chaos run (docs/chaos.md): the built server on shards in a child process, a private Mosquitto
 * with device credentials (dynamic security), a private Kafka, virtual vehicles and customers. The
 * server is killed with SIGKILL `kills` times at random moments under load, and restarted each time;
 * Kafka, Mosquitto, a shard worker and the disk fail in between. Then the clients' records, the shard
 * journals and what Kafka holds are checked against each other (chaos/invariants.ts).
 */
export interface ChaosOptions {
  readonly kills: number;
  /** About how long the kill phase lasts; each kill's moment is drawn from it. */
  readonly seconds: number;
  readonly shards: number;
  readonly seed: number;
  readonly vehicles: number;
  readonly customers: number;
  readonly reservationWindowMs: number;
  /** Progress lines (the CLI prints them; the test keeps them for a failure message). */
  readonly log: (line: string) => void;
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'log'> = { kills: 20, seconds: 60, shards: 2, seed: 1, vehicles: 20, customers: 4, reservationWindowMs: 3000 };

const SECRET = 'chaos-harness-jwt-secret-0123456789';
/** Wake-ups are at least once, 2 s apart, and a restart wakes what fell due while down: a few of those. */
const EXPIRY_GRACE_MS = 7000;
const UNLOCK_TIMEOUT_MS = 3000;
/** A booking whose UNLOCK went unanswered waits this long past its deadline for the device before it expires anyway. */
const UNLOCK_SETTLE_MS = unlockSettleMsFor(UNLOCK_TIMEOUT_MS);
const DISK_BYTES = 128 * 1024 * 1024;

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const { log } = options;
  const random = seededRandom(options.seed);
  const workDir = mkdtempSync(join(tmpdir(), 'fleet-chaos-'));
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(workDir, { recursive: true, force: true })];
  const faults: FaultResult[] = [];
  const kills: KillRecord[] = [];

  try {
    // ---- the parts
    const dataDir = join(workDir, 'data');
    let disk: SmallDisk | null = null;
    if (canMount()) {
      disk = mountSmallDisk(dataDir, DISK_BYTES);
      cleanups.push(() => disk!.dispose());
    } else {
      mkdirSync(dataDir, { recursive: true });
    }
    log('building the server, starting Mosquitto and a private Kafka');
    const kafkaHome = join(REPO_ROOT, '.kafka', 'chaos', `run-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`);
    const [entry, mosquitto, kafka] = await Promise.all([
      buildServer(),
      startMosquitto({ dynsec: true, persistence: true, extraConfig: ['max_queued_messages 100000'] }),
      startPrivateKafka(kafkaHome),
    ]);
    cleanups.push(() => kafka.dispose(), () => mosquitto.dispose());
    const server = new ServerProcess({
      entry,
      port: await freePort(),
      logFile: join(workDir, 'server.log'),
      env: {
        FLEET_DB: join(dataDir, 'fleet.db'),
        FLEET_SHARDS: String(options.shards),
        FLEET_JWT_SECRET: SECRET,
        MQTT_URL: mosquitto.url,
        MQTT_USERNAME: mosquitto.dynsec!.server.username,
        MQTT_PASSWORD: mosquitto.dynsec!.server.password,
        MQTT_PROVISIONING: 'dynsec',
        KAFKA_BROKERS: kafka.brokers.join(','),
        RESERVATION_WINDOW_MS: String(options.reservationWindowMs),
        UNLOCK_TIMEOUT_MS: String(UNLOCK_TIMEOUT_MS),
        ASK_TIMEOUT_MS: '5000',
        PAYMENT_LATENCY_MS: '5',
        FLEET_CHAOS_HOOKS: 'on',
      },
    });
    cleanups.push(() => server.close());
    await server.start();

    const records = emptyRecords();
    const api = new Api(server.url, SECRET, records);
    const devices = await registerFleet(api, mosquitto, options.vehicles);
    cleanups.push(() => Promise.all(devices.map((device) => device.stop())).then(() => undefined));
    const pool = devices.map((device) => device.id).filter((id) => id !== PROBE_VEHICLE);
    log(`${devices.length} vehicles registered and online; customers start`);

    let load: CustomerLoad | null = startCustomers(api, pool, { customers: options.customers, seed: options.seed, pauseMs: 40 });
    cleanups.push(() => load?.stop());

    // ---- the disk fills first, while the journals' write-ahead logs still grow with every commit
    // (later, a WAL that was checkpointed has room to reuse and a full disk may not show at once).
    await waitForAcks(api, 10, 20_000);
    if (disk) faults.push(await diskFull(api, disk, pool, log));
    else faults.push({ name: 'disk full → 503 storage-full, recovery by itself', ok: true, detail: 'skipped: mounting a small tmpfs needs root' });

    // ---- the kills, with the other faults at fixed points among them (in this order, however few kills)
    const at = (share: number, after: number): number => Math.max(after + 1, Math.round(options.kills * share));
    const kafkaDownAt = at(0.2, 0);
    const kafkaUpAt = at(0.4, kafkaDownAt);
    const probeAt = at(0.55, kafkaUpAt);
    const mosquittoAt = at(0.65, probeAt);
    const shardCrashAt = at(0.8, mosquittoAt);
    const meanGapMs = (options.seconds * 1000) / Math.max(1, options.kills);
    let phase = 'load';
    let probeBookingId: string | null = null;
    let acksAtKafkaStop = 0;
    let kafkaBack: Promise<void> | null = null;
    let mosquittoDone = false;
    let shardsDone = false;

    for (let kill = 1; kill <= Math.max(options.kills, shardCrashAt); kill += 1) {
      if (kill === kafkaDownAt) {
        await kafka.stop();
        acksAtKafkaStop = records.bookings.size;
        phase = 'kafka-down';
        log('Kafka stopped: the relays build a backlog');
      }
      if (kill === kafkaUpAt) {
        const duringOutage = records.bookings.size - acksAtKafkaStop;
        // The JVM takes seconds to come back: the kills go on meanwhile, so that some land while the
        // relays reconnect and drain. That the backlog then reached Kafka once and in order is the
        // Kafka invariant's job.
        kafkaBack = kafka.start();
        faults.push({ name: 'Kafka stopped and restarted', ok: duringOutage > 0, detail: `down from kill ${kafkaDownAt} to kill ${kafkaUpAt}; ${duringOutage} bookings acknowledged meanwhile` });
        phase = 'kafka-returning';
        log('Kafka restarting: the next kills land while the relays reconnect and drain their backlog');
      }
      if (kill === mosquittoAt) {
        // The probe vehicle first: free again after the expiry probe, and no customer books it. Riders
        // who never end their ride can hold the whole pool by now on a fast box (seen with --seed 2).
        faults.push(await mosquittoOutage(api, mosquitto, [PROBE_VEHICLE, ...pool], log));
        mosquittoDone = true;
      }
      if (kill === shardCrashAt) {
        faults.push(await shardCrashes(api, server, options.shards, log));
        shardsDone = true;
      }
      if (kill > options.kills) continue;

      if (kill === probeAt) {
        // Deterministic "expired across a restart": a booking confirmed just before the kill whose
        // deadline falls while the server is down.
        probeBookingId = await bookUntil201(api, 'chaos-probe-customer', PROBE_VEHICLE, 15_000);
        kills.push(await killAndRestart(server, api, 'expiry-probe', () => sleep(options.reservationWindowMs + 500)));
        log(`kill ${kill}/${options.kills} (expiry probe ${probeBookingId}: its window passed while the server was down)`);
        continue;
      }

      // Uptime before the kill: random, so that kills land on any step of a request or a relay batch.
      await sleep(300 + random() * Math.max(500, 2 * meanGapMs - 4000));
      kills.push(await killAndRestart(server, api, phase));
      const last = kills.at(-1)!;
      log(`kill ${kill}/${options.kills} (${last.phase}; ${last.requestsInFlight} requests in flight, relay lag ${last.relayLag ?? '?'}; restarted in ${last.restartMs} ms)`);
      if (phase === 'kafka-returning' && kafka.running) phase = 'load';
    }
    if (!mosquittoDone || !shardsDone) throw new Error('a fault was not scheduled: the schedule is broken');
    await kafkaBack;

    // ---- quiet down, then collect the evidence
    await load.stop();
    load = null;
    log('load stopped; waiting for expiries and for Kafka to hold every committed public event');
    const shardFiles = Array.from({ length: options.shards }, (_, shard) => join(dataDir, `fleet.shard-${shard}.db`));
    const kafkaClient = testKafkaClient(kafka.brokers);
    await ensureTopics(kafkaClient, ALL_TOPICS, 3, 1);
    const collector = await collectRecords(kafkaClient, ALL_TOPICS);
    cleanups.push(() => collector.stop());
    await waitForExpiries(shardFiles, 60_000);
    const { journal, checkedAt } = await settle(server, shardFiles, collector, log);
    if (probeBookingId !== null) {
      const probeExpired = journal.some((entry) => entry.key === `booking/${probeBookingId}` && entry.type === 'BookingExpired');
      faults.push({ name: 'reservation expired across a restart', ok: probeExpired, detail: `${probeBookingId} confirmed, server killed, window passed while down: ${probeExpired ? 'EXPIRED after the restart' : 'NOT expired'}` });
    }

    const kafkaEvidence: KafkaEvidence[] = collector.records.map((record) => ({
      topic: record.topic,
      partition: record.partition,
      offset: Number(record.offset),
      key: record.key,
      ceId: record.headers.ce_id ?? null,
      value: record.value,
    }));
    const verdict = checkInvariants({ records, journal, kafka: kafkaEvidence, checkedAt, graceMs: EXPIRY_GRACE_MS, unlockSettleMs: UNLOCK_SETTLE_MS });
    const restartTimes = kills.map((kill) => kill.restartMs).sort((a, b) => a - b);
    const ok = verdict.lost === 0 && verdict.invariants.every((invariant) => invariant.ok) && faults.every((fault) => fault.ok) && records.notProblems.length === 0 && kills.length >= options.kills;
    // A failed run keeps what it checked: the journals (off the tmpfs, which goes away), the server's log.
    const evidenceDir = ok ? null : keepEvidence(dataDir, join(workDir, 'server.log'));
    if (evidenceDir) log(`evidence kept in ${evidenceDir}`);
    return {
      ok,
      evidenceDir,
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      settings: { kills: options.kills, seconds: options.seconds, shards: options.shards, seed: options.seed, vehicles: options.vehicles, customers: options.customers, reservationWindowMs: options.reservationWindowMs },
      kills: {
        total: kills.length,
        withRequestsInFlight: kills.filter((kill) => kill.requestsInFlight > 0).length,
        withRelayBacklog: kills.filter((kill) => (kill.relayLag ?? 0) > 0).length,
        restartMsMedian: restartTimes[Math.floor(restartTimes.length / 2)] ?? 0,
        restartMsMax: restartTimes.at(-1) ?? 0,
        list: kills,
      },
      faults,
      bookings: {
        acknowledged: records.bookings.size,
        unlocked: records.unlocks.size,
        ended: records.ends.size,
        cancelled: records.cancels.size,
        expired: verdict.expired,
        answers: Object.fromEntries(records.answers),
        notProblemJson: records.notProblems.slice(0, 20),
      },
      events: { checked: verdict.eventsChecked, kafkaRecords: kafkaEvidence.length, duplicatesFolded: verdict.kafkaDuplicates },
      lost: verdict.lost,
      invariants: verdict.invariants,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}

const PROBE_VEHICLE = 'chaos-probe';

function keepEvidence(dataDir: string, serverLog: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-chaos-evidence-'));
  for (const file of readdirSync(dataDir)) if (file.includes('.db')) copyFileSync(join(dataDir, file), join(dir, file));
  copyFileSync(serverLog, join(dir, 'server.log'));
  return dir;
}
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Registers the vehicles (each gets its credentials; dynsec creates its Mosquitto client) and starts a device for each. */
async function registerFleet(api: Api, mosquitto: MosquittoBroker, count: number): Promise<VirtualVehicle[]> {
  const operator = api.token('chaos-operator', 'operator');
  const ids = [...Array.from({ length: count }, (_, index) => `chaos-v${String(index + 1).padStart(2, '0')}`), PROBE_VEHICLE];
  return Promise.all(
    ids.map(async (id, index) => {
      const registered = await api.call('POST', '/vehicles', operator, { id, type: 'scooter', location: { lat: 52.52 + index * 0.001, lon: 13.405 } });
      const credentials = registered.body?.credentials as { password: string; commandKey: string } | undefined;
      if (registered.status !== 201 || !credentials) throw new Error(`registering ${id} failed: ${registered.status} ${JSON.stringify(registered.body)}`);
      return VirtualVehicle.start({ id, url: mosquitto.url, protocolVersion: 5, credentials, reconnectPeriodMs: 250, behaviour: { replyDelayMs: 5 } });
    }),
  );
}

async function waitForAcks(api: Api, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (api.records.bookings.size < count) {
    if (Date.now() > deadline) throw new Error(`only ${api.records.bookings.size} bookings acknowledged in ${timeoutMs} ms: the load does not run`);
    await sleep(100);
  }
}

async function bookUntil201(api: Api, customerId: string, vehicleId: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await api.book(customerId, vehicleId);
    if (answer.status === 201) return String(answer.body!.id);
    if (Date.now() > deadline) throw new Error(`booking ${vehicleId} kept failing: last ${answer.status} ${answer.problem ?? ''}`);
    await sleep(200);
  }
}

/** Relay lag summed over the shards, from the last stats each pushed (null when /metrics did not answer). */
async function relayLag(api: Api): Promise<number | null> {
  try {
    const text = await (await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${api.token('chaos-operator', 'operator')}` }, signal: AbortSignal.timeout(1000) })).text();
    let lag = 0;
    for (const match of text.matchAll(/^fleet_event_relay_lag\{[^}]*\} (\d+)/gm)) lag += Number(match[1]);
    return lag;
  } catch {
    return null;
  }
}

/**
 * SIGKILL, then a restart. Unless it is the expiry probe, the kill waits (briefly) until customer
 * requests are in flight, and while Kafka is down until the relays report a backlog, so that the run
 * has kills mid-request and mid-backlog by construction, not by luck.
 */
async function killAndRestart(server: ServerProcess, api: Api, phase: string, whileDown?: () => Promise<void>): Promise<KillRecord> {
  let lag = await relayLag(api);
  for (let deadline = Date.now() + 10_000; phase === 'kafka-down' && (lag ?? 0) === 0 && Date.now() < deadline; lag = await relayLag(api)) await sleep(100);
  for (let deadline = Date.now() + 2000; whileDown === undefined && api.inFlight === 0 && Date.now() < deadline; ) await sleep(5);
  const requestsInFlight = api.inFlight;
  const at = new Date().toISOString();
  await server.kill();
  await whileDown?.();
  const restartMs = await server.start();
  return { at, phase, requestsInFlight, relayLag: lag, restartMs };
}

/** Fills the data folder's disk under load: bookings must get 503 storage-full, and work again by themselves once space is back. */
async function diskFull(api: Api, disk: SmallDisk, pool: readonly string[], log: (line: string) => void): Promise<FaultResult> {
  const name = 'disk full → 503 storage-full, recovery by itself';
  const taken = disk.fill();
  log(`disk full (${Math.round(taken / 1024)} KB taken, ${disk.freeBytes()} bytes left)`);
  let storageFull = 0;
  let otherErrors = 0;
  let acknowledged = 0;
  const deadline = Date.now() + 20_000;
  let attempt = 0;
  while (storageFull === 0 && Date.now() < deadline) {
    const answer = await api.book('chaos-disk-customer', pool[attempt % pool.length]!);
    attempt += 1;
    if (answer.problem === 'storage-full' && answer.status === 503) storageFull += 1;
    else if (answer.status === 201) acknowledged += 1;
    else if (answer.status >= 500) otherErrors += 1;
  }
  disk.free();
  const freedAt = Date.now();
  let recoveredMs: number | null = null;
  while (Date.now() - freedAt < 30_000) {
    const answer = await api.book('chaos-disk-customer', pool[attempt % pool.length]!);
    attempt += 1;
    if (answer.status === 201) {
      recoveredMs = Date.now() - freedAt;
      break;
    }
    await sleep(100);
  }
  log(`disk freed; ${recoveredMs === null ? 'NOT recovered' : `first 201 after ${recoveredMs} ms`}`);
  const ok = storageFull > 0 && recoveredMs !== null;
  return {
    name,
    ok,
    detail: `${attempt} attempts: ${storageFull > 0 ? '503 storage-full seen' : 'no 503 storage-full'} (${acknowledged} 201 while full, ${otherErrors} other 5xx); ${recoveredMs === null ? 'no 201 within 30 s of freeing space' : `201 again ${recoveredMs} ms after space was freed`}`,
  };
}

async function healthy(api: Api): Promise<boolean> {
  try {
    return (await fetch(`${api.baseUrl}/health`, { signal: AbortSignal.timeout(2000) })).status === 200;
  } catch {
    return false;
  }
}

async function waitHealthy(api: Api, timeoutMs: number): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await healthy(api)) return Date.now() - started;
    await sleep(100);
  }
  return null;
}

/** Mosquitto stopped under load, then started again: the server and the devices reconnect, unlocks work again. */
async function mosquittoOutage(api: Api, mosquitto: MosquittoBroker, pool: readonly string[], log: (line: string) => void): Promise<FaultResult> {
  await mosquitto.stop();
  log('Mosquitto stopped');
  let sawDown = false;
  for (let index = 0; index < 30 && !sawDown; index += 1) {
    sawDown = !(await healthy(api));
    if (!sawDown) await sleep(100);
  }
  await sleep(1000);
  await mosquitto.restart();
  const back = await waitHealthy(api, 30_000);
  const unlockMs = back === null ? null : await unlockProbe(api, pool, 30_000);
  log(`Mosquitto back: health ${back === null ? 'NOT 200' : `200 after ${back} ms`}, ${unlockMs === null ? 'unlocks do NOT work again' : `an unlock worked ${unlockMs} ms later`}`);
  return {
    name: 'Mosquitto stopped and restarted',
    ok: sawDown && back !== null && unlockMs !== null,
    detail: `health ${sawDown ? 'went 503' : 'never showed the outage'}; ${back === null ? 'not 200 again within 30 s' : `200 again ${back} ms after the restart`}; ${unlockMs === null ? 'no unlock succeeded within 30 s' : `booked and unlocked a vehicle ${unlockMs} ms later`}`,
  };
}

/** Books a free vehicle of the pool and unlocks it; resolves with the milliseconds it took, null if it never worked. */
async function unlockProbe(api: Api, pool: readonly string[], timeoutMs: number): Promise<number | null> {
  const started = Date.now();
  for (let attempt = 0; Date.now() - started < timeoutMs; attempt += 1) {
    const booked = await api.book('chaos-unlock-probe', pool[attempt % pool.length]!);
    if (booked.status === 201 && (await api.unlock('chaos-unlock-probe', String(booked.body!.id))).status === 200) return Date.now() - started;
    await sleep(50);
  }
  return null;
}

async function shardRestarts(api: Api): Promise<number | null> {
  try {
    const text = await (await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${api.token('chaos-operator', 'operator')}` }, signal: AbortSignal.timeout(2000) })).text();
    let restarts = 0;
    for (const match of text.matchAll(/^fleet_shard_restarts_total\{[^}]*\} (\d+)/gm)) restarts += Number(match[1]);
    return restarts;
  } catch {
    return null;
  }
}

/** One shard worker per shard killed from outside (FLEET_CHAOS_HOOKS, SIGUSR2): the supervisor restarts each. */
async function shardCrashes(api: Api, server: ServerProcess, shards: number, log: (line: string) => void): Promise<FaultResult> {
  const results: string[] = [];
  let ok = true;
  for (let shard = 0; shard < shards; shard += 1) {
    const before = (await shardRestarts(api)) ?? 0;
    server.signal('SIGUSR2');
    const started = Date.now();
    let after = before;
    while (after <= before && Date.now() - started < 30_000) {
      await sleep(100);
      after = (await shardRestarts(api)) ?? after;
    }
    const back = after > before ? await waitHealthy(api, 30_000) : null;
    ok &&= after > before && back !== null;
    results.push(after > before ? `worker ${shard} restarted, healthy after ${Date.now() - started} ms` : `worker ${shard} NOT restarted`);
    log(`shard worker crash: ${results.at(-1)}`);
  }
  return { name: 'shard workers killed (SIGUSR2 hook), supervisor restarts them', ok, detail: results.join('; ') };
}

/** Waits until no booking is open past its deadline (plus grace), reading the journals as they are. */
async function waitForExpiries(shardFiles: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = openDeadlines(readJournals(shardFiles));
    const latest = Math.max(0, ...open);
    if (open.length === 0) return;
    if (Date.now() > latest + EXPIRY_GRACE_MS) return; // overdue: the check will say so
    await sleep(Math.min(1000, Math.max(100, latest + 500 - Date.now())));
  }
}

function openDeadlines(journal: readonly JournalEntry[]): number[] {
  const open = new Map<string, number>();
  for (const entry of journal) {
    if (!entry.key.startsWith('booking/')) continue;
    if (entry.type === 'BookingRequested' && typeof entry.data.confirmBy === 'number') open.set(entry.key, entry.data.confirmBy);
    else if (entry.type === 'BookingConfirmed' && typeof entry.data.expiresAt === 'number') open.set(entry.key, entry.data.expiresAt);
    else if (entry.type === 'BookingUnlockUnanswered') {
      const deadline = open.get(entry.key);
      if (deadline !== undefined) open.set(entry.key, deadline + UNLOCK_SETTLE_MS);
    } else if (entry.type !== 'BookingVehicleReserved' && entry.type !== 'BookingCompensated') open.delete(entry.key);
  }
  return [...open.values()];
}

/**
 * Stops the server gracefully once Kafka holds every public event of its journals, then reads the
 * journals one last time. Should the last moments have committed more (an expiry), the server runs
 * once more until those are out too.
 */
async function settle(server: ServerProcess, shardFiles: readonly string[], collector: RecordCollector, log: (line: string) => void): Promise<{ journal: JournalEntry[]; checkedAt: number }> {
  for (let round = 1; ; round += 1) {
    const live = readJournals(shardFiles);
    await waitForCoverage(live, collector, 60_000).catch((error: unknown) => log(`Kafka does not hold every event yet: ${error instanceof Error ? error.message : String(error)}`));
    await server.stop();
    const journal = readJournals(shardFiles);
    const checkedAt = Date.now();
    const missing = uncovered(journal, collector);
    if (missing === 0 || round === 3) return { journal, checkedAt };
    log(`${missing} public events committed at the last moment are not in Kafka yet: one more run of the server to publish them`);
    await server.start();
  }
}

function uncovered(journal: readonly JournalEntry[], collector: RecordCollector): number {
  const seen = new Set(collector.records.map((record) => record.headers.ce_id));
  return journal.filter((entry) => entry.isPublic && !seen.has(`${entry.key}:${entry.sequence}`)).length;
}

async function waitForCoverage(journal: readonly JournalEntry[], collector: RecordCollector, timeoutMs: number): Promise<void> {
  await collector.waitUntil(() => uncovered(journal, collector) === 0, 'every public event of the journals in Kafka', timeoutMs);
}

