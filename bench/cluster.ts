import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signToken } from '../actors/contract/tokens.js';
import { shardOfVehicle } from '../runtime/kernel/placement.js';
import { consecutiveFreePorts, clusterOf, isAlive, startCluster, startNode, stopCluster, type ClusterState } from '../scripts/cluster-lib.js';
import type { LoadResult, PhaseResult, VehiclePick } from './load-worker.js';
import { runLoad } from './processes.js';
import { sampleCpu, type CpuSampler } from './proc-cpu.js';
import { LIMITS_OFF, startBenchServer } from './server.js';

/**
 * `npm run bench -- --only cluster`: cluster mode (docs/cluster.md) on this box, against the single
 * process in the same run.
 *
 * - **book**: the keyed booking load of the `book` scenario (FLEET_SEED demo vehicles, each booked
 *   once, by its own customer, with its own Idempotency-Key) through the single-process server, then
 *   through a cluster of `nodes` nodes started by the cluster script's library (its own Kafka,
 *   Mosquitto with dynamic security, nodes on free ports, everything under a temporary CLUSTER_HOME).
 *   The load's connections are spread over every node's URL in turn, so about (nodes − 1) / nodes of
 *   the requests are forwarded to the shard's owner. The single process runs twice, at the cluster's
 *   shard count and at `singleShards` (its best on this box): the cluster is judged against the better.
 * - **failover**: `kills` times, one node after another gets `kill -9` under a small booking load
 *   (riders booking each vehicle at once through the two other nodes). The figure is the time from the
 *   kill to the first 201 for a vehicle of a shard the killed node owned, probed through the survivors;
 *   beside it, the time until every moved shard has given a 201. The node is then restarted on its
 *   data folder and the next kill waits until every shard serves again.
 * - **safety**, after the last kill: every booking acknowledged (201) during the kills reads back
 *   CONFIRMED with its vehicle, and no vehicle has two acknowledged bookings (nothing is cancelled, so
 *   two would be a double hold).
 */

export interface ClusterBenchOptions {
  readonly nodes: number;
  readonly shards: number;
  /** The single process's second run (its best shard count on this box, bench/RESULTS.md). */
  readonly singleShards: number;
  /** Demo vehicles for the booking load (each booked once while bookings ≤ this). */
  readonly bookVehicles: number;
  readonly kills: number;
  /** The nodes' FLEET_GROUP_SESSION_TIMEOUT_MS (the server's default when absent). */
  readonly sessionTimeoutMs?: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
}

const root = fileURLToPath(new URL('..', import.meta.url));
const round = (value: number, digits = 1): number => Number(value.toFixed(digits));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const demoId = (index: number): string => `demo-${String(index).padStart(4, '0')}`;

/** Both the single process and the nodes: no limits (one address, reused customers), no payment wait, FULL sync. */
const SERVER_ENV = { ...LIMITS_OFF, LOG_LEVEL: 'error', PAYMENT_LATENCY_MS: '0', FLEET_DB_SYNC: 'FULL' };
const nodeEnv = (options: ClusterBenchOptions): Record<string, string> => ({
  ...SERVER_ENV,
  ...(options.sessionTimeoutMs !== undefined && { FLEET_GROUP_SESSION_TIMEOUT_MS: String(options.sessionTimeoutMs) }),
});
/** Vehicles the riders of each kill may use (they book ~100/s at most, for ~10 s). */
const RIDER_VEHICLES_PER_KILL = 1500;
/** Vehicles kept for the probes, per shard. A probe answered 503 reuses its vehicle (nothing was booked). */
const PROBE_VEHICLES_PER_SHARD = 40;
const RIDERS = 4;
const FAILOVER_GIVE_UP_MS = 60_000;
/** Riders keep booking this long before the kill and after every moved shard has booked again. */
const AROUND_KILL_MS = 1000;

interface BookRunFigures {
  readonly shards: number;
  readonly confirmedPerSecond: number;
  readonly latencyMs: PhaseResult['steps'][string]['latencyMs'] | null;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
  /** CPU ms (utime + stime, /proc) per confirmed booking in the measured phase, by process. */
  readonly cpuMsPerConfirmedBooking: Record<string, number | null>;
}

function bookFigures(load: LoadResult, shards: number, cpu: Record<string, CpuSampler>): BookRunFigures {
  const m = load.phases.find((phase) => phase.name === 'measured')!;
  const cpuMs: Record<string, number | null> = {};
  for (const [name, sampler] of Object.entries(cpu)) {
    const ms = sampler.between(m.startedAtMs, m.endedAtMs);
    cpuMs[name] = ms === null || m.confirmed === 0 ? null : round(ms / m.confirmed, 3);
  }
  return {
    shards,
    confirmedPerSecond: m.confirmedPerSecond,
    latencyMs: m.steps.book?.latencyMs ?? null,
    statuses: m.steps.book?.statuses ?? {},
    errors: m.autocannon.errors,
    timeouts: m.autocannon.timeouts,
    cpuMsPerConfirmedBooking: cpuMs,
  };
}

function bookLoad(options: ClusterBenchOptions, url: string | readonly string[], jwtSecret?: string) {
  const vehicles: VehiclePick = { prefix: 'demo-', pad: 4, count: options.bookVehicles, mode: 'sequential' };
  return runLoad({
    url,
    ...(jwtSecret !== undefined && { jwtSecret }),
    connections: options.connections,
    phases: [
      { name: 'warmup', durationS: options.warmupS },
      { name: 'measured', durationS: options.durationS },
    ],
    workload: { kind: 'book', vehicles, customers: options.bookVehicles, idempotencyKey: true },
  });
}

async function singleRun(options: ClusterBenchOptions, shards: number, seed: number): Promise<BookRunFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-single-'));
  const server = await startBenchServer({ ...SERVER_ENV, FLEET_DB: join(dir, 'fleet.db'), FLEET_SHARDS: String(shards), FLEET_SEED: String(seed) });
  try {
    const cpu = { server: sampleCpu(server.pid) };
    const load = await bookLoad(options, server.url);
    cpu.server.stop();
    return bookFigures(load, shards, cpu);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}


interface Acknowledged {
  readonly id: string;
  readonly vehicleId: string;
  readonly customer: string;
  readonly kill: number;
}

interface KillFigures {
  readonly kill: number;
  readonly node: string;
  readonly movedShards: readonly number[];
  /** kill -9 → the first 201 for a vehicle of a moved shard (the failover time). */
  readonly firstBookedMs: number | null;
  /** kill -9 → every moved shard has given a 201. */
  readonly allBookedMs: number | null;
  readonly perShardMs: Record<string, number | null>;
  /** The restarted node's start → every node shows every shard serving, the same owners (it took its own back). */
  readonly restartToServingMs: number;
  readonly riderStatuses: Record<string, number>;
  readonly probeStatuses: Record<string, number>;
}

/** The cluster's figures: its book run, then the kills, then the read-back. */
async function clusterRun(options: ClusterBenchOptions, seed: number, log: (line: string) => void) {
  const home = mkdtempSync(join(tmpdir(), 'fleet-bench-cluster-'));
  const kafkaLib = process.env.KAFKA_LIB ?? join(root, '.kafka', 'test', 'lib');
  let finished = false;
  try {
    log(`cluster: starting Kafka, Mosquitto (dynamic security) and ${options.nodes} nodes, ${options.shards} shards, FLEET_SEED=${seed} (CLUSTER_HOME ${home})`);
    const startedAt = performance.now();
    const state = await startCluster({
      home,
      nodes: options.nodes,
      shards: options.shards,
      port: await consecutiveFreePorts(options.nodes),
      env: { ...nodeEnv(options), FLEET_SEED: String(seed) },
      kafkaLib,
      serverMain: join(root, 'dist', 'server', 'main.js'),
    });
    const startMs = Math.round(performance.now() - startedAt);
    const secret = state.jwtSecret;
    const token = (sub: string, role: 'customer' | 'operator' = 'customer') => signToken({ sub, role, ttlSeconds: 3600 }, secret);
    await checkSeeded(state, options, seed, token('bench-ops', 'operator'));

    log(`cluster: book through ${state.nodes.length} nodes (connections spread over every node)`);
    const cpu: Record<string, CpuSampler> = Object.fromEntries(state.nodes.map((node) => [node.id, sampleCpu(node.pid)]));
    const kafkaPid = Number(readFileSync(join(home, 'kafka', 'kafka.pid'), 'utf8').trim());
    if (Number.isInteger(kafkaPid) && kafkaPid > 0) cpu.kafka = sampleCpu(kafkaPid);
    const operator = token('bench-ops', 'operator');
    const before = await transactions(state, operator);
    const load = await bookLoad(
      options,
      state.nodes.map((node) => node.url),
      secret,
    );
    for (const sampler of Object.values(cpu)) sampler.stop();
    const after = await transactions(state, operator);
    const confirmed = load.phases.reduce((sum, phase) => sum + phase.confirmed, 0);
    const kafkaTransactions = {
      note: 'every shard journal transaction (send + commit) during warm-up and measurement, from the nodes\' /metrics',
      count: after.count - before.count,
      perConfirmedBooking: confirmed > 0 ? round((after.count - before.count) / confirmed, 2) : null,
      meanCommitMs: after.count > before.count ? round(((after.seconds - before.seconds) * 1000) / (after.count - before.count), 1) : null,
    };
    const book = { ...bookFigures(load, options.shards, cpu), kafkaTransactions };
    const nodesCpu = state.nodes.reduce<number | null>((sum, node) => (sum === null || book.cpuMsPerConfirmedBooking[node.id] == null ? null : sum + book.cpuMsPerConfirmedBooking[node.id]!), 0);

    const failover = await kills(state, options, token, log);
    log(`cluster: reading back ${failover.acknowledged.length} acknowledged bookings`);
    const safety = await readBack(failover.state, failover.acknowledged, token);
    finished = true;
    return { startMs, book: { ...book, nodesCpuMsPerConfirmedBooking: nodesCpu === null ? null : round(nodesCpu, 3) }, kills: failover.kills, safety };
  } finally {
    log('cluster: stopping');
    await stopCluster(home).catch((error: unknown) => log(`cluster: stop failed: ${String(error)}`));
    // A failed run keeps its folder: its logs are what says why.
    if (finished) rmSync(home, { recursive: true, force: true });
    else log(`cluster: kept ${home} (logs in ${join(home, 'logs')})`);
  }
}

/** The journal-of-record transactions of every node's shards so far, and their send + commit seconds (/metrics). */
async function transactions(state: ClusterState, operator: string): Promise<{ count: number; seconds: number }> {
  let count = 0;
  let seconds = 0;
  for (const node of state.nodes) {
    const text = await (await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${operator}` } })).text();
    for (const line of text.split('\n')) {
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (line.startsWith('fleet_journal_of_record_transactions_total{')) count += value;
      else if (line.startsWith('fleet_journal_of_record_commit_seconds_total{')) seconds += value;
    }
  }
  return { count, seconds };
}

/**
 * Each shard seeds its FLEET_SEED share when it starts (server/shard.ts). One vehicle of every shard
 * (the last of the range) must be there, or the figures would count 404s.
 */
async function checkSeeded(state: ClusterState, options: ClusterBenchOptions, seed: number, operator: string): Promise<void> {
  const missing: string[] = [];
  for (let shard = 0; shard < options.shards; shard += 1) {
    let index = seed;
    while (index > 0 && shardOfVehicle(demoId(index), options.shards) !== shard) index -= 1;
    if (index === 0) continue;
    // A shard between owners answers 503 for a moment (a rebalance right after the start): ask again.
    let status = 0;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(250)) {
      status = (await fetch(`${state.nodes[0]!.url}/vehicles/${demoId(index)}`, { headers: { authorization: `Bearer ${operator}` } })).status;
      if (status !== 503) break;
    }
    if (status !== 200) missing.push(`${demoId(index)} (shard ${shard}: ${status})`);
  }
  if (missing.length > 0) throw new Error(`the cluster's demo fleet is incomplete: ${missing.join(', ')}`);
}

type Token = (sub: string, role?: 'customer' | 'operator') => string;

async function book(url: string, vehicleId: string, customer: string, token: Token): Promise<{ status: number; id?: string }> {
  try {
    const response = await fetch(`${url}/bookings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token(customer)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ vehicleId }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json().catch(() => ({}))) as { id?: string };
    return response.status === 201 && typeof body.id === 'string' ? { status: 201, id: body.id } : { status: response.status };
  } catch {
    return { status: 0 };
  }
}

const count = (tally: Record<string, number>, status: number) => {
  tally[status] = (tally[status] ?? 0) + 1;
};

async function kills(initial: ClusterState, options: ClusterBenchOptions, token: Token, log: (line: string) => void) {
  let state = initial;
  const first = options.bookVehicles + 1;
  const probeCount = PROBE_VEHICLES_PER_SHARD * options.shards;
  const probePools = Array.from({ length: options.shards }, () => [] as string[]);
  for (let index = first; index < first + probeCount; index += 1) probePools[shardOfVehicle(demoId(index), options.shards)]!.push(demoId(index));
  const riderPool = Array.from({ length: RIDER_VEHICLES_PER_KILL * options.kills }, (_, n) => demoId(first + probeCount + n));
  let nextRiderVehicle = 0;
  const acknowledged: Acknowledged[] = [];
  const figures: KillFigures[] = [];

  for (let kill = 0; kill < options.kills; kill += 1) {
    const victim = state.nodes[kill % state.nodes.length]!;
    const survivors = state.nodes.filter((node) => node.id !== victim.id);
    const view = await clusterOf(state, survivors[0]!.url);
    if (!view) throw new Error(`GET /cluster on ${survivors[0]!.id} did not answer`);
    const moved = view.shards.filter((shard) => shard.owner === victim.id).map((shard) => shard.shard);
    if (moved.length === 0) throw new Error(`node ${victim.id} owns no shard: nothing to fail over`);

    // The riders: each vehicle booked at once through two survivors by two customers.
    const riderStatuses: Record<string, number> = {};
    let riding = true;
    const rider = async (r: number): Promise<void> => {
      while (riding && nextRiderVehicle < riderPool.length) {
        const vehicleId = riderPool[nextRiderVehicle++]!;
        const answers = await Promise.all(
          survivors.slice(0, 2).map(async (node, side) => {
            const customer = `rider-${vehicleId}-${side}`;
            const answer = await book(node.url, vehicleId, customer, token);
            count(riderStatuses, answer.status);
            if (answer.id) acknowledged.push({ id: answer.id, vehicleId, customer, kill });
            return answer.status;
          }),
        );
        // A shard between owners answers 503 at once (Retry-After: 1): do not spin through the pool.
        await sleep(answers.includes(503) || answers.includes(0) ? 100 : 10 + r);
      }
    };
    const riders = Array.from({ length: RIDERS }, (_, r) => rider(r));
    await sleep(AROUND_KILL_MS);

    process.kill(victim.pid, 'SIGKILL');
    const killedAt = performance.now();
    log(`cluster: kill ${kill + 1}/${options.kills}: kill -9 ${victim.id} (shards ${moved.join(', ')})`);
    const probeStatuses: Record<string, number> = {};
    const perShard: Record<string, number | null> = {};
    // One probe per moved shard, through the survivors in turn: a fresh vehicle after each answer but 503.
    await Promise.all(
      moved.map(async (shard) => {
        const pool = probePools[shard]!;
        for (let attempt = 0; ; attempt += 1) {
          if (performance.now() - killedAt > FAILOVER_GIVE_UP_MS || pool.length === 0) {
            perShard[shard] = null;
            return;
          }
          const vehicleId = pool[0]!;
          const customer = `probe-${vehicleId}-${kill}-${attempt}`;
          const answer = await book(survivors[attempt % survivors.length]!.url, vehicleId, customer, token);
          count(probeStatuses, answer.status);
          if (answer.status !== 503) pool.shift();
          if (answer.id) {
            perShard[shard] = Math.round(performance.now() - killedAt);
            acknowledged.push({ id: answer.id, vehicleId, customer, kill });
            return;
          }
          await sleep(50);
        }
      }),
    );
    await sleep(AROUND_KILL_MS);
    riding = false;
    await Promise.all(riders);
    const times = Object.values(perShard);
    const done = times.filter((ms): ms is number => ms !== null);
    const firstBookedMs = done.length > 0 ? Math.min(...done) : null;
    const allBookedMs = done.length === times.length ? Math.max(...done) : null;
    log(`cluster: kill ${kill + 1}: first 201 of a moved shard after ${firstBookedMs ?? '—'} ms, every moved shard after ${allBookedMs ?? '—'} ms; restarting ${victim.id}`);

    while (isAlive(victim.pid)) await sleep(50);
    const restartedAt = performance.now();
    // No FLEET_SEED on a restart: the fleet is in Kafka already.
    state = await startNode(state.home, victim.id, nodeEnv(options));
    figures.push({ kill: kill + 1, node: victim.id, movedShards: moved, firstBookedMs, allBookedMs, perShardMs: perShard, restartToServingMs: Math.round(performance.now() - restartedAt), riderStatuses, probeStatuses });
  }
  if (nextRiderVehicle >= riderPool.length) log('cluster: the riders used up their vehicles');
  return { state, kills: figures, acknowledged };
}

/** Until every node shows every shard serving (a rebalance may still be moving one), or the deadline. */
async function untilAllServing(state: ClusterState, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(250)) {
    const views = await Promise.all(state.nodes.map((node) => clusterOf(state, node.url)));
    if (views.every((view) => view !== null && view.shards.every((shard) => shard.state === 'serving'))) return true;
  }
  return false;
}

/**
 * Every acknowledged booking, read back through the nodes in turn by its customer. `lost`: an answer
 * that is not the booking CONFIRMED with its vehicle; `unreadable`: still 503 (or no answer) after
 * asking again for 30 s: not shown lost, but not shown kept either.
 */
async function readBack(state: ClusterState, acknowledged: readonly Acknowledged[], token: Token) {
  const allServing = await untilAllServing(state, 60_000);
  const problems: string[] = [];
  let lost = 0;
  let unreadable = 0;
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < acknowledged.length) {
      const index = next++;
      const booking = acknowledged[index]!;
      const node = state.nodes[index % state.nodes.length]!;
      let answer: { status: number; body: { status?: string; vehicleId?: string } } = { status: 0, body: {} };
      for (const deadline = Date.now() + 30_000; ; ) {
        try {
          const response = await fetch(`${node.url}/bookings/${encodeURIComponent(booking.id)}`, { headers: { authorization: `Bearer ${token(booking.customer)}` }, signal: AbortSignal.timeout(10_000) });
          answer = { status: response.status, body: (await response.json()) as typeof answer.body };
        } catch {
          answer = { status: 0, body: {} };
        }
        if ((answer.status !== 503 && answer.status !== 0) || Date.now() > deadline) break;
        await sleep(500);
      }
      if (answer.status === 503 || answer.status === 0) unreadable += 1;
      else if (answer.status !== 200 || answer.body.status !== 'CONFIRMED' || answer.body.vehicleId !== booking.vehicleId) lost += 1;
      else continue;
      if (problems.length < 20) problems.push(`${booking.id} (kill ${booking.kill + 1}, ${booking.vehicleId}): ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, reader));
  const byVehicle = new Map<string, number>();
  for (const booking of acknowledged) byVehicle.set(booking.vehicleId, (byVehicle.get(booking.vehicleId) ?? 0) + 1);
  const doubleHolds = [...byVehicle.entries()].filter(([, n]) => n > 1).map(([vehicleId]) => vehicleId);
  return { acknowledged: acknowledged.length, allServingBeforeReadBack: allServing, lost, unreadable, doubleHolds: doubleHolds.length, doubleHeldVehicles: doubleHolds.slice(0, 20), problems };
}

const stats = (values: readonly (number | null)[]) => {
  if (values.some((value) => value === null) || values.length === 0) return { min: null, median: null, max: null, n: values.length, missing: values.filter((value) => value === null).length };
  const sorted = (values as number[]).slice().sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
  return { min: sorted[0]!, median, max: sorted.at(-1)!, n: sorted.length, missing: 0 };
};

export async function runClusterBench(options: ClusterBenchOptions, log: (line: string) => void) {
  const seed = options.bookVehicles + PROBE_VEHICLES_PER_SHARD * options.shards + RIDER_VEHICLES_PER_KILL * options.kills;
  if (seed > 100_000) throw new Error(`the cluster bench seeds ${seed} vehicles (FLEET_SEED allows 100,000): lower --book-vehicles or --kills`);
  const singleShardCounts = [...new Set([options.shards, options.singleShards])];
  const single: Record<string, BookRunFigures> = {};
  for (const shards of singleShardCounts) {
    log(`cluster: single-process book at FLEET_SHARDS=${shards}, FLEET_SEED=${seed}`);
    single[`shards${shards}`] = await singleRun(options, shards, seed);
  }
  const cluster = await clusterRun(options, seed, log);
  const best = Object.values(single).reduce((a, b) => (b.confirmedPerSecond > a.confirmedPerSecond ? b : a));
  const firstBooked = stats(cluster.kills.map((kill) => kill.firstBookedMs));
  const allBooked = stats(cluster.kills.map((kill) => kill.allBookedMs));
  return {
    nodes: options.nodes,
    shards: options.shards,
    groupSessionTimeoutMs: options.sessionTimeoutMs ?? 'the server default (6000)',
    connections: options.connections,
    seededVehicles: seed,
    note: `book: keyed bookings of distinct demo vehicles by distinct customers, ${options.warmupS} s warm-up then ${options.durationS} s; the cluster's connections go to its ${options.nodes} nodes in turn, so ~${options.nodes - 1}/${options.nodes} of the requests are forwarded; nodes and single process run dist/server/main.js with FLEET_DB_SYNC=FULL and PAYMENT_LATENCY_MS=0. failover: ${RIDERS} riders book each vehicle through two survivors at once around each kill; probes book a vehicle of each moved shard every 50 ms through the survivors in turn`,
    single,
    cluster: cluster.book,
    clusterStartMs: cluster.startMs,
    clusterVsBestSingle: best.confirmedPerSecond > 0 ? round(cluster.book.confirmedPerSecond / best.confirmedPerSecond, 3) : null,
    bestSingle: `shards${best.shards}`,
    failover: { firstBookedMs: firstBooked, allMovedShardsBookedMs: allBooked, kills: cluster.kills },
    safety: cluster.safety,
  };
}
