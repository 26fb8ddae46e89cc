/**
 * `npm run bench [-- --only a,b] [--out FILE] [--duration-s 10] [--warmup-s 2] [--shards 1,2,3]`
 *
 * Every process on its own: the server (server/main.ts, bench/server.ts), the load (autocannon in
 * bench/load-worker.ts), the reference and baseline servers (bench/echo-server.ts, bench/lock-server.ts),
 * the MQTT devices (bench/devices.ts). Every measurement has an untimed warm-up; every comparison is
 * measured side by side in the same run and reported as a ratio. Writes one JSON file (machine, Node,
 * config, raw figures, targets met/missed) to --out or bench/results/<date>.json. Numbers, not
 * assertions: the tests never time anything.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitBadArgument, parseCommandLine } from '../runtime/ground/command-line.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { runJournalBench } from './journal.js';
import type { LoadConfig, LoadResult, PhaseResult, VehiclePick, Workload } from './load-worker.js';
import { runLoad, spawnHelper } from './processes.js';
import { runRelayBench } from './relay.js';
import { runGbfsBench } from './gbfs.js';
import { runClusterBench } from './cluster.js';
import { sampleCpu } from './proc-cpu.js';
import { spawnBenchServer, startBenchServer, type BenchServer } from './server.js';

const SCENARIOS = ['http-ceiling', 'book', 'book-slow-gateway', 'hot-vehicle', 'unlock', 'relay', 'journal', 'fleet-scale', 'trace-cost', 'gbfs', 'cluster'] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE = `usage: npm run bench [-- --only a,b] [--out FILE] [--duration-s 10] [--warmup-s 2] [--connections 50]
                 [--shards 1,2,3] [--book-vehicles N] [--unlock-vehicles N] [--unlock-rounds N] [--fleet-size N]
                 [--cluster-shards 6] [--kills 5] [--session-timeout-ms N]

  --only LIST   scenarios, comma-separated (default all): ${SCENARIOS.join(', ')}
  --out FILE    the JSON result (default bench/results/<date>.json)
  --cluster-shards, --kills   cluster: the cluster's FLEET_SHARDS (3 nodes), and how many kill -9 to time
  --session-timeout-ms N      cluster: the nodes' FLEET_GROUP_SESSION_TIMEOUT_MS (default: the server's)

  Builds and starts the server, the load, the reference servers and the devices as their own processes;
  a full run takes many minutes and wants an otherwise idle machine (bench/RESULTS.md).`;

const { values } = parseCommandLine('bench', USAGE, {
  strict: true,
  options: {
    only: { type: 'string', default: SCENARIOS.join(',') },
    out: { type: 'string' },
    'duration-s': { type: 'string', default: '10' },
    'warmup-s': { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    shards: { type: 'string', default: '1,2,3' },
    'book-vehicles': { type: 'string', default: '40000' },
    'unlock-vehicles': { type: 'string', default: '3000' },
    'unlock-rounds': { type: 'string', default: '5' },
    'fleet-size': { type: 'string', default: '100000' },
    'cluster-shards': { type: 'string', default: '6' },
    kills: { type: 'string', default: '5' },
    'session-timeout-ms': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
const root = fileURLToPath(new URL('..', import.meta.url));
const durationS = Number(values['duration-s']);
const warmupS = Number(values['warmup-s']);
const connections = Number(values.connections);
const shardCounts = values.shards.split(',').map(Number);
const bookVehicles = Number(values['book-vehicles']);
const only = new Set(values.only.split(',').map((name) => name.trim()));
for (const name of only) if (!(SCENARIOS as readonly string[]).includes(name)) exitBadArgument('bench', `unknown scenario ${JSON.stringify(name)} in --only (known: ${SCENARIOS.join(', ')})`);
const clusterShards = Number(values['cluster-shards']);
const killCount = Number(values.kills);
if (!Number.isInteger(clusterShards) || clusterShards < 3 || clusterShards > 64) exitBadArgument('bench', `--cluster-shards must be a whole number from 3 to 64: every one of the 3 nodes owns a shard (got ${JSON.stringify(values['cluster-shards'])})`);
if (!Number.isInteger(killCount) || killCount < 1) exitBadArgument('bench', `--kills must be a whole number ≥ 1 (got ${JSON.stringify(values.kills)})`);
const sessionTimeoutMs = values['session-timeout-ms'] === undefined ? undefined : Number(values['session-timeout-ms']);
if (sessionTimeoutMs !== undefined && (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs < 1000)) exitBadArgument('bench', `--session-timeout-ms must be a whole number ≥ 1000 (got ${JSON.stringify(values['session-timeout-ms'])})`);
for (const [name, value] of [['duration-s', durationS], ['warmup-s', warmupS], ['connections', connections], ['book-vehicles', bookVehicles]] as const) {
  if (!Number.isFinite(value) || value < 0) exitBadArgument('bench', `--${name} must be a number ≥ 0 (got ${JSON.stringify(values[name])})`);
}
if (shardCounts.some((count) => !Number.isInteger(count) || count < 1)) exitBadArgument('bench', `--shards must be shard counts like 1,2,3 (got ${JSON.stringify(values.shards)})`);
const COLD_S = 3;

const configSource = readFileSync(join(root, 'server', 'config.ts'), 'utf8');
/** Whether the server reads these yet (they are passed and recorded either way). */
const serverSupports = { FLEET_SHARDS: configSource.includes('FLEET_SHARDS'), TRACE_SAMPLE: configSource.includes('TRACE_SAMPLE') };

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));
const ratio = (a: number, b: number): number | null => (b > 0 ? round(a / b, 3) : null);
const log = (message: string) => console.error(`bench: ${message}`);

interface Verdict {
  readonly scenario: Scenario;
  readonly figure: string;
  readonly value: number | string | null;
  readonly target: string;
  readonly met: boolean | null;
}
const verdicts: Verdict[] = [];
const judge = (scenario: Scenario, figure: string, value: number | string | null, target: string, met: boolean | null) => {
  verdicts.push({ scenario, figure, value, target, met });
};

const phase = (load: LoadResult, name: string): PhaseResult => {
  const found = load.phases.find((p) => p.name === name);
  if (!found) throw new Error(`no phase ${name}`);
  return found;
};
const timed = (extra: LoadConfig['phases'] = []): LoadConfig['phases'] => [...extra, { name: 'warmup', durationS: warmupS }, { name: 'measured', durationS }];

/** The figures of one step (book, unlock, …) of a phase, flattened for the report. */
function stepSummary(p: PhaseResult, step: string) {
  const s = p.steps[step];
  const ok = s ? Object.entries(s.statuses).filter(([code]) => code.startsWith('2')).reduce((sum, [, n]) => sum + n, 0) : 0;
  return {
    requests: s?.count ?? 0,
    okPerSecond: Math.round(ok / p.seconds),
    statuses: s?.statuses ?? {},
    latencyMs: s?.latencyMs ?? null,
  };
}

// ---- the reference

let ceiling: number | null = null;
/** CPU ms the bare route's process spends per request (same run): the unit of the CPU-per-booking ratio. */
let bareCpuMsPerRequest: number | null = null;

/** The server's CPU (utime + stime from /proc) over one phase, per `count` (requests, confirmed bookings). */
const cpuPer = (cpu: { between(from: number, to: number): number | null }, p: PhaseResult, count: number): number | null => {
  const ms = cpu.between(p.startedAtMs, p.endedAtMs);
  return ms === null || count === 0 ? null : round(ms / count, 4);
};

async function httpCeiling() {
  const echo = spawnHelper<{ port: number }>('echo-server.ts', {});
  try {
    const { port } = await echo.ready;
    const cpu = sampleCpu(echo.child.pid!);
    const load = await runLoad({ url: `http://127.0.0.1:${port}`, connections, phases: timed(), workload: { kind: 'echo' } });
    cpu.stop();
    const m = phase(load, 'measured');
    ceiling = m.requestsPerSecond;
    bareCpuMsPerRequest = cpuPer(cpu, m, m.requests);
    return { connections, requestsPerSecond: m.requestsPerSecond, cpuMsPerRequest: bareCpuMsPerRequest, latencyMs: m.autocannon.latencyMs, errors: m.autocannon.errors, non2xx: m.autocannon.non2xx, raw: load };
  } finally {
    await echo.stop();
  }
}

// ---- a journal with registered vehicles, made once and copied for each server that needs one

const FLEET: Omit<VehiclePick, 'mode' | 'count'> = { prefix: 'bv-', pad: 6 };
/** One prepared fleet per shard count: the shard count is fixed with the data (server/registry.ts). */
const prepared = new Map<number, Promise<{ dir: string; vehicles: number; seconds: number }>>();

function preparedFleet(vehicles: number, shards: number) {
  const made = prepared.get(shards);
  if (made) return made;
  const making = (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-prepared-'));
    const server = await startBenchServer({ FLEET_DB: join(dir, 'fleet.db'), PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: String(shards) });
    const started = performance.now();
    try {
      log(`registering ${vehicles} vehicles through POST /vehicles (set-up, untimed)`);
      const load = await runLoad({ url: server.url, connections: 50, phases: [{ name: 'register', amount: vehicles }], workload: { kind: 'register', vehicles: { ...FLEET, count: vehicles, mode: 'sequential' } } });
      const created = phase(load, 'register').steps.register?.statuses['201'] ?? 0;
      if (created !== vehicles) throw new Error(`registered ${created} of ${vehicles} vehicles`);
    } finally {
      await server.stop();
    }
    return { dir, vehicles, seconds: round((performance.now() - started) / 1000, 1) };
  })();
  prepared.set(shards, making);
  return making;
}

/** A private copy of the prepared journal (db, WAL), so every run starts from the same fleet. */
async function fleetCopy(vehicles: number, shards: number): Promise<{ file: string; dispose: () => void }> {
  const source = await preparedFleet(vehicles, shards);
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-copy-'));
  cpSync(source.dir, dir, { recursive: true });
  return { file: join(dir, 'fleet.db'), dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---- book

interface BookFigures {
  readonly env: Record<string, string>;
  /** Every booking with its own Idempotency-Key. */
  readonly keyed: boolean;
  readonly startupMs: number;
  readonly confirmedPerSecond: number;
  /** The server process's CPU (all threads, /proc) in the measured phase ÷ its confirmed bookings. */
  readonly cpuMsPerConfirmedBooking: number | null;
  /** That ÷ the bare route's CPU per request, measured in the same run. */
  readonly cpuVsBareRequest: number | null;
  readonly latencyMs: PhaseResult['steps'][string]['latencyMs'] | null;
  readonly autocannonLatencyMs: Record<string, number>;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
  readonly cold: { readonly seconds: number; readonly confirmedPerSecond: number; readonly p50: number | null; readonly p99: number | null; readonly confirmedPer250ms: readonly number[] };
  readonly vehiclesBooked: number;
  readonly raw: LoadResult;
}

/** One server on a copy of the prepared fleet; the load starts the moment /health answers (cold), then warm-up, then the measurement. */
async function bookRun(env: Record<string, string>, keyed: boolean): Promise<BookFigures> {
  const fleet = await fleetCopy(bookVehicles, Number(env.FLEET_SHARDS ?? shardCounts[0]));
  const fullEnv = { FLEET_DB: fleet.file, FLEET_DB_SYNC: 'FULL', PAYMENT_LATENCY_MS: '0', ...env };
  const server = await spawnBenchServer(fullEnv);
  try {
    const workload: Workload = { kind: 'book', vehicles: { ...FLEET, count: bookVehicles, mode: 'sequential' }, customers: bookVehicles, idempotencyKey: keyed };
    const cpu = sampleCpu(server.pid);
    const [load, startupMs] = await Promise.all([runLoad({ url: server.url, connections, waitForHealth: true, phases: timed([{ name: 'cold', durationS: COLD_S }]), workload }), server.healthy]);
    cpu.stop();
    const m = phase(load, 'measured');
    const cpuMsPerConfirmedBooking = cpuPer(cpu, m, m.confirmed);
    const cold = phase(load, 'cold');
    const booked = load.phases.reduce((sum, p) => sum + (p.steps.book?.count ?? 0), 0);
    return {
      env,
      keyed,
      startupMs,
      confirmedPerSecond: m.confirmedPerSecond,
      cpuMsPerConfirmedBooking,
      cpuVsBareRequest: cpuMsPerConfirmedBooking !== null && bareCpuMsPerRequest ? ratio(cpuMsPerConfirmedBooking, bareCpuMsPerRequest) : null,
      latencyMs: m.steps.book?.latencyMs ?? null,
      autocannonLatencyMs: m.autocannon.latencyMs,
      statuses: m.steps.book?.statuses ?? {},
      errors: m.autocannon.errors,
      timeouts: m.autocannon.timeouts,
      cold: { seconds: cold.seconds, confirmedPerSecond: cold.confirmedPerSecond, p50: cold.steps.book?.latencyMs.p50 ?? null, p99: cold.steps.book?.latencyMs.p99 ?? null, confirmedPer250ms: cold.confirmedTimeline ?? [] },
      vehiclesBooked: booked,
      raw: load,
    };
  } finally {
    await server.stop();
    fleet.dispose();
  }
}

const strip = (figures: BookFigures) => {
  const { raw: _raw, ...rest } = figures;
  return rest;
};

async function book() {
  const runs: Record<string, BookFigures> = {};
  for (const shards of shardCounts) {
    // Keyed first (what clients send), the unkeyed figure beside it.
    log(`book at FLEET_SHARDS=${shards}, every booking with an Idempotency-Key`);
    runs[`shards${shards}`] = await bookRun({ FLEET_SHARDS: String(shards) }, true);
    log(`book at FLEET_SHARDS=${shards}, without Idempotency-Key`);
    runs[`shards${shards}-unkeyed`] = await bookRun({ FLEET_SHARDS: String(shards) }, false);
  }
  const first = runs[`shards${shardCounts[0]}`]!;
  for (const [label, run] of Object.entries(runs)) {
    const vsCeiling = ceiling ? ratio(run.confirmedPerSecond, ceiling) : null;
    judge('book', `${label} confirmed/s ÷ http-ceiling`, vsCeiling, '≥ 0.2', vsCeiling === null ? null : vsCeiling >= 0.2);
    judge('book', `${label} p99 ms`, run.latencyMs?.p99 ?? null, '≤ 25', run.latencyMs ? run.latencyMs.p99 <= 25 : null);
    judge('book', `${label} server CPU per confirmed booking ÷ bare request CPU`, run.cpuVsBareRequest, '≤ 10 (moonshot ≤ 5)', run.cpuVsBareRequest === null ? null : run.cpuVsBareRequest <= 10);
    const coldRatio = ratio(run.cold.confirmedPerSecond, run.confirmedPerSecond);
    judge('book', `${label} first ${COLD_S} s after ready ÷ steady`, coldRatio, '≈ 1 (as fast as the rest)', coldRatio === null ? null : coldRatio >= 0.9);
    if (run.vehiclesBooked > bookVehicles) log(`book ${label}: ${run.vehiclesBooked} bookings for ${bookVehicles} vehicles: later ones were refused (raise --book-vehicles)`);
  }
  return {
    connections,
    vehicles: bookVehicles,
    vehiclesNote: `registered once through POST /vehicles (set-up, untimed; FLEET_SEED asks all at once and times out at this size), journal copied for each run; every request a distinct vehicle and customer while bookings ≤ ${bookVehicles}`,
    journal: 'FULL',
    paymentLatencyMs: 0,
    ...(serverSupports.FLEET_SHARDS ? {} : { note: 'FLEET_SHARDS is passed to the server and recorded, but server/config.ts does not read it yet: all shard counts ran the same single-threaded server' }),
    httpCeiling: ceiling,
    runs: Object.fromEntries(Object.entries(runs).map(([label, run]) => [label, { ...strip(run), vsHttpCeiling: ceiling ? ratio(run.confirmedPerSecond, ceiling) : null, vsFirstShardCount: ratio(run.confirmedPerSecond, first.confirmedPerSecond) }])),
    raw: Object.fromEntries(Object.entries(runs).map(([label, run]) => [label, run.raw])),
  };
}

// ---- book-slow-gateway: actors vs the PostgreSQL lock baseline

const SLOW_VEHICLES = 5000;
const SLOW_CONNECTIONS = 500;
const GATEWAY_MS = 50;

function slowWorkload(mode: 'uniform' | 'skewed'): Workload {
  return { kind: 'book', cancel: true, customers: SLOW_VEHICLES, vehicles: { ...FLEET, count: SLOW_VEHICLES, mode, hotShare: 0.8, hotFraction: 0.01 } };
}

function slowFigures(load: LoadResult) {
  const m = phase(load, 'measured');
  const bookStep = stepSummary(m, 'book');
  const rejected = Object.entries(bookStep.statuses).filter(([code]) => code === '409').reduce((sum, [, n]) => sum + n, 0);
  return {
    confirmedPerSecond: m.confirmedPerSecond,
    bookRequestsPerSecond: Math.round(bookStep.requests / m.seconds),
    rejectedPerSecond: Math.round(rejected / m.seconds),
    rejectedShare: bookStep.requests ? round(rejected / bookStep.requests, 3) : null,
    bookLatencyMs: bookStep.latencyMs,
    bookStatuses: bookStep.statuses,
    cancel: stepSummary(m, 'cancel'),
    errors: m.autocannon.errors,
    timeouts: m.autocannon.timeouts,
  };
}

async function slowActors(mode: 'uniform' | 'skewed') {
  const fleet = await fleetCopy(bookVehicles, shardCounts[0]!);
  const server = await startBenchServer({ FLEET_DB: fleet.file, FLEET_DB_SYNC: 'FULL', PAYMENT_LATENCY_MS: String(GATEWAY_MS), FLEET_SHARDS: String(shardCounts[0]) });
  try {
    return slowFigures(await runLoad({ url: server.url, connections: SLOW_CONNECTIONS, phases: timed(), workload: slowWorkload(mode) }));
  } finally {
    await server.stop();
    fleet.dispose();
  }
}

async function slowBaseline(mode: 'uniform' | 'skewed') {
  const lock = spawnHelper<{ port: number }>('lock-server.ts', { vehicles: SLOW_VEHICLES, ...FLEET, gatewayMs: GATEWAY_MS, pool: 50 }, { ...(process.env.PGHOST ? { PGHOST: process.env.PGHOST } : {}), ...(process.env.PGPORT ? { PGPORT: process.env.PGPORT } : {}), ...(process.env.PGUSER ? { PGUSER: process.env.PGUSER } : {}), ...(process.env.PGPASSWORD ? { PGPASSWORD: process.env.PGPASSWORD } : {}) });
  try {
    const { port } = await lock.ready;
    return slowFigures(await runLoad({ url: `http://127.0.0.1:${port}`, connections: SLOW_CONNECTIONS, phases: timed(), workload: slowWorkload(mode) }));
  } finally {
    await lock.stop();
  }
}

async function bookSlowGateway() {
  const out: Record<string, unknown> = {
    vehicles: SLOW_VEHICLES,
    connections: SLOW_CONNECTIONS,
    gatewayMs: GATEWAY_MS,
    loop: 'each connection: POST /bookings (a random vehicle) → on CONFIRMED, POST /bookings/:id/cancel; throughput = confirmed bookings/s, rejections = 409',
    skew: '80 % of the requests for 1 % of the vehicles (50 of 5000)',
    baseline: 'bench/lock-server.ts: fastify + pg, pool 50, BEGIN; SELECT … FOR UPDATE; 50 ms gateway with the row lock held; INSERT; UPDATE; COMMIT (PostgreSQL, synchronous_commit on)',
  };
  for (const mode of ['uniform', 'skewed'] as const) {
    log(`book-slow-gateway ${mode}: actors`);
    const actors = await slowActors(mode);
    log(`book-slow-gateway ${mode}: lock baseline`);
    let baseline: Awaited<ReturnType<typeof slowBaseline>> | { error: string };
    try {
      baseline = await slowBaseline(mode);
    } catch (error) {
      baseline = { error: `lock baseline failed (is PostgreSQL reachable on PGHOST/PGPORT as PGUSER?): ${error instanceof Error ? error.message : String(error)}` };
    }
    const vs = 'error' in baseline ? null : ratio(actors.confirmedPerSecond, baseline.confirmedPerSecond);
    out[mode] = { actors, baseline, actorsVsBaseline: vs };
    judge('book-slow-gateway', `${mode} actors confirmed/s`, actors.confirmedPerSecond, '≥ 3000', actors.confirmedPerSecond >= 3000);
    judge('book-slow-gateway', `${mode} actors ÷ lock baseline`, vs, mode === 'uniform' ? '≥ 1' : '≥ 3', vs === null ? null : vs >= (mode === 'uniform' ? 1 : 3));
  }
  return out;
}

// ---- hot-vehicle

async function hotVehicle() {
  const fleet = await fleetCopy(bookVehicles, shardCounts[0]!);
  const server = await startBenchServer({ FLEET_DB: fleet.file, FLEET_DB_SYNC: 'FULL', PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: String(shardCounts[0]) });
  try {
    // Warm-up on other vehicles (bv-000002 …), then 1000 connections, one booking each, all for bv-000001.
    await runLoad({ url: server.url, connections, phases: [{ name: 'warmup', durationS: warmupS }], workload: { kind: 'book', vehicles: { ...FLEET, first: 2, count: bookVehicles - 1, mode: 'sequential' }, customers: 5000 } });
    const load = await runLoad({ url: server.url, connections: 1000, phases: [{ name: 'measured', amount: 1000 }], workload: { kind: 'book', vehicles: { ...FLEET, count: 1, mode: 'one' }, customers: 1000 }, timeoutS: 30 });
    const m = phase(load, 'measured');
    const winners = m.confirmed;
    const maxMs = m.steps.book?.latencyMs.max ?? null;
    judge('hot-vehicle', 'winners', winners, 'exactly 1', winners === 1);
    judge('hot-vehicle', 'slowest answer ms', maxMs, '< 500', maxMs === null ? null : maxMs < 500 && m.steps.book!.count === 1000);
    return { requests: m.steps.book?.count ?? 0, winners, statuses: m.steps.book?.statuses ?? {}, latencyMs: m.steps.book?.latencyMs ?? null, wallSecondsWithConnects: m.seconds, errors: m.autocannon.errors, timeouts: m.autocannon.timeouts };
  } finally {
    await server.stop();
    fleet.dispose();
  }
}

// ---- unlock

/** CPU ms of a process over a phase: the sum over its stretches (unlock-rounds) or from its start to its end. */
const cpuOver = (cpu: { between(from: number, to: number): number | null }, p: PhaseResult): number | null => {
  const spans = p.intervals ?? [[p.startedAtMs, p.endedAtMs] as const];
  let sum = 0;
  for (const [from, to] of spans) {
    const ms = cpu.between(from, to);
    if (ms === null) return null;
    sum += ms;
  }
  return sum;
};

async function unlock() {
  const vehicles = Number(values['unlock-vehicles']);
  const rounds = Number(values['unlock-rounds']);
  // BENCH_MOSQUITTO_EXTRA: more mosquitto.conf lines, `;`-separated (an A/B of a broker setting).
  const extra = (process.env.BENCH_MOSQUITTO_EXTRA ?? '').split(';').map((line) => line.trim()).filter(Boolean);
  // set_tcp_nodelay: as scripts/mosquitto.mjs configures it (without it, ≈ 40 ms Nagle waits per hop).
  const mosquitto = await startMosquitto({ extraConfig: ['max_queued_messages 100000', 'max_inflight_messages 0', 'set_tcp_nodelay true', ...extra] });
  let server: BenchServer | null = null;
  let devices: ReturnType<typeof spawnHelper<{ ready: number }>> | null = null;
  try {
    server = await startBenchServer({ MQTT_URL: mosquitto.url, PAYMENT_LATENCY_MS: '0', FLEET_DB_SYNC: 'FULL', FLEET_SHARDS: String(shardCounts[0]) });
    const pick = { prefix: 'rv-', pad: 5 };
    await runLoad({ url: server.url, connections: 50, phases: [{ name: 'register', amount: vehicles }], workload: { kind: 'register', vehicles: { ...pick, count: vehicles, mode: 'sequential' } } });
    devices = spawnHelper<{ ready: number }>('devices.ts', { url: mosquitto.url, ...pick, count: vehicles });
    const { ready } = await devices.ready;
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the server sees their retained presence
    // Each process's CPU from /proc: the server, the devices' one thread, the broker.
    const cpu = { server: sampleCpu(server.pid), devices: sampleCpu(devices.child.pid!), broker: sampleCpu(mosquitto.pid!) };
    const cpuPerUnlock = (p: PhaseResult, unlocks: number) =>
      Object.fromEntries(Object.entries(cpu).map(([name, sampler]) => {
        const ms = cpuOver(sampler, p);
        return [name, ms === null || unlocks === 0 ? null : round(ms / unlocks, 4)];
      }));
    const busyShare = (p: PhaseResult) =>
      Object.fromEntries(Object.entries(cpu).map(([name, sampler]) => {
        const ms = cpuOver(sampler, p);
        return [name, ms === null || p.seconds === 0 ? null : round(ms / (p.seconds * 1000), 3)];
      }));

    // 1. The unlock alone: every vehicle booked (untimed), then only the unlocks of those bookings, timed,
    //    then their ends (untimed); warm-up round first.
    log(`unlock alone: ${rounds} rounds of ${vehicles} unlocks on bookings made before (plus one warm-up round)`);
    const alone = await runLoad({ url: server.url, connections, phases: [], workload: { kind: 'unlock-rounds', vehicles: { ...pick, count: vehicles, mode: 'sequential' }, customers: vehicles, rounds, warmupRounds: 1 } });
    const am = phase(alone, 'measured');
    const aloneStep = stepSummary(am, 'unlock');

    // 2. The loop of the earlier figures: book → unlock → end per connection (the unlock step is timed).
    log('unlock in the loop book → unlock → end');
    const load = await runLoad({ url: server.url, connections, phases: timed(), workload: { kind: 'ride', vehicles: { ...pick, count: vehicles, mode: 'sequential' }, customers: vehicles } });
    for (const sampler of Object.values(cpu)) sampler.stop();
    const m = phase(load, 'measured');
    const unlockStep = stepSummary(m, 'unlock');
    judge('unlock', 'unlocks/s (alone, on bookings made before)', aloneStep.okPerSecond, '≥ 3000', aloneStep.okPerSecond >= 3000);
    judge('unlock', 'unlock p99 ms (alone)', aloneStep.latencyMs?.p99 ?? null, '≤ 50', aloneStep.latencyMs ? aloneStep.latencyMs.p99 <= 50 : null);
    judge('unlock', 'unlocks/s (in the book → unlock → end loop)', unlockStep.okPerSecond, '(reported)', null);
    judge('unlock', 'unlock p99 ms (in the loop)', unlockStep.latencyMs?.p99 ?? null, '(reported)', null);
    return {
      broker: 'mosquitto (MQTT 5)',
      vehicles,
      devicesOnline: ready,
      devicesProcess: 'bench/devices.ts: one simulator/light-device.ts (mqtt-packet, its own connection) per vehicle, all on one thread of its own process',
      connections,
      alone: {
        how: `${rounds} rounds (after one warm-up round): ${vehicles} bookings made (untimed), then their ${vehicles} unlocks (timed, ${connections} connections), then their ends (untimed)`,
        unlocksPerSecond: aloneStep.okPerSecond,
        unlock: aloneStep,
        cpuMsPerUnlock: cpuPerUnlock(am, aloneStep.requests),
        cpuBusyShare: busyShare(am),
      },
      loop: 'book → unlock → end per connection; the unlock step is timed',
      unlocksPerSecond: unlockStep.okPerSecond,
      unlock: unlockStep,
      book: stepSummary(m, 'book'),
      end: stepSummary(m, 'end'),
      requestsPerSecond: m.requestsPerSecond,
      loopCpuMsPerUnlock: cpuPerUnlock(m, unlockStep.requests),
      loopCpuBusyShare: busyShare(m),
      raw: { alone, loop: load },
    };
  } finally {
    await devices?.stop();
    await server?.stop();
    await mosquitto.dispose();
  }
}

// ---- relay

async function relay() {
  const options = { backlog: 50_000, eventsPerSecond: 5000, seconds: 5 };
  let result;
  if (process.env.KAFKA_BROKERS) result = await runRelayBench(process.env.KAFKA_BROKERS.split(','), options);
  else {
    // Its own port and data; the jars of the test broker (one download).
    const env = { ...process.env, KAFKA_PORT: '19292', KAFKA_HOME: join(root, '.kafka', 'bench'), KAFKA_LIB: join(root, '.kafka', 'test', 'lib') };
    const kafka = (command: string, ...args: string[]) => spawnSync(process.execPath, [join(root, 'scripts', 'kafka.mjs'), command, ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    if (kafka('start', '--fresh').status !== 0) throw new Error('could not start Kafka for the relay benchmark');
    try {
      result = await runRelayBench(['127.0.0.1:19292'], options);
    } finally {
      kafka('stop');
    }
  }
  judge('relay', 'backlog events/s', result.backlog.eventsPerSecond, '≥ 50000', result.backlog.eventsPerSecond >= 50_000);
  judge('relay', `commit → consumer p99 ms at ${result.steadyLoad.achievedEventsPerSecond}/s`, result.steadyLoad.commitToConsumerMs.p99, '≤ 100', result.steadyLoad.commitToConsumerMs.p99 <= 100);
  return { ...result, note: 'in the bench process (no HTTP): relay + journal (NORMAL) + kafkajs producer/consumer against a local Kafka broker (its own JVM process)' };
}

// ---- journal

async function journal() {
  const result = await runJournalBench();
  judge('journal', 'group commit ÷ raw batched inserts', result.groupCommitVsRaw, '≥ 0.7', result.groupCommitVsRaw >= 0.7);
  return result;
}

// ---- fleet-scale (in a child process with --expose-gc)

async function fleetScale() {
  const size = Number(values['fleet-size']);
  const child = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=16384', '--import', 'tsx', 'bench/fleet-scale.ts', JSON.stringify({ vehicles: size })], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (code !== 0 || !line) throw new Error(`bench/fleet-scale.ts exited with ${code}`);
  const result = JSON.parse(line) as Record<string, unknown> & { heap: { perActiveVehicleBytes: number; perPassivatedVehicleBytes: number }; startup?: { ratio: number | null } };
  judge('fleet-scale', 'heap per idle active vehicle actor (bytes)', result.heap.perActiveVehicleBytes, '≤ 2048', result.heap.perActiveVehicleBytes <= 2048);
  judge('fleet-scale', 'heap per passivated vehicle (bytes)', result.heap.perPassivatedVehicleBytes, '(reported)', null);
  if (result.startup) judge('fleet-scale', `start-up to ready, ${size} vehicles ÷ empty journal`, result.startup.ratio, 'flat (≈ 1)', result.startup.ratio === null ? null : result.startup.ratio <= 1.5);
  return result;
}

// ---- trace-cost

async function traceCost() {
  const runs: Record<string, BookFigures> = {};
  for (const [label, sample] of [
    ['on', '1'],
    ['sampled', '0.1'],
    ['off', '0'],
  ] as const) {
    log(`trace-cost: TRACE_SAMPLE=${sample}`);
    runs[label] = await bookRun({ FLEET_SHARDS: String(shardCounts[0]), TRACE_SAMPLE: sample }, false);
  }
  const onVsOff = ratio(runs.on!.confirmedPerSecond, runs.off!.confirmedPerSecond);
  judge('trace-cost', 'trace on ÷ off (confirmed/s)', onVsOff, '≥ 0.8', onVsOff === null ? null : onVsOff >= 0.8);
  return {
    ...(serverSupports.TRACE_SAMPLE ? {} : { note: 'TRACE_SAMPLE is passed to the server and recorded, but server/config.ts does not read it yet: the three runs are the same server (traces always captured); the spread between them is the run-to-run noise' }),
    runs: Object.fromEntries(Object.entries(runs).map(([label, run]) => [label, strip(run)])),
    onVsOff,
    sampledVsOff: ratio(runs.sampled!.confirmedPerSecond, runs.off!.confirmedPerSecond),
  };
}

const RUNNERS: Record<Scenario, () => Promise<unknown>> = {
  'http-ceiling': httpCeiling,
  book,
  'book-slow-gateway': bookSlowGateway,
  'hot-vehicle': hotVehicle,
  unlock,
  relay,
  journal,
  'fleet-scale': fleetScale,
  'trace-cost': traceCost,
  gbfs,
  cluster,
};

// ---- cluster: 3 nodes (FLEET_CLUSTER=kafka) against the single process, and kill -9 failover (bench/cluster.ts)

async function cluster() {
  // Single process at 2 shards: its best on this box (bench/RESULTS.md); and at the cluster's count.
  const result = await runClusterBench({ nodes: 3, shards: clusterShards, singleShards: 2, bookVehicles, kills: killCount, ...(sessionTimeoutMs !== undefined && { sessionTimeoutMs }), durationS, warmupS, connections }, log);
  const p99 = result.cluster.latencyMs?.p99 ?? null;
  const failoverMax = result.failover.firstBookedMs.max;
  judge('cluster', `book through 3 nodes ÷ single process (best: ${result.bestSingle}), confirmed/s`, result.clusterVsBestSingle, '≥ 0.5', result.clusterVsBestSingle === null ? null : result.clusterVsBestSingle >= 0.5);
  judge('cluster', 'book through 3 nodes p99 ms', p99, '≤ 150', p99 === null ? null : p99 <= 150);
  judge('cluster', `failover kill -9 → first 201 of a moved shard, max of ${result.failover.kills.length} (ms)`, failoverMax, '≤ 10000', failoverMax === null ? false : failoverMax <= 10_000);
  judge('cluster', `failover kill -9 → first 201 of a moved shard, median of ${result.failover.kills.length} (ms)`, result.failover.firstBookedMs.median, 'moonshot ≤ 3000', result.failover.firstBookedMs.median === null ? false : result.failover.firstBookedMs.median <= 3000);
  judge('cluster', 'failover kill -9 → every moved shard booked again, max (ms)', result.failover.allMovedShardsBookedMs.max, '(reported)', null);
  judge('cluster', `acknowledged bookings lost over every kill (of ${result.safety.acknowledged})`, result.safety.lost, '0', result.safety.lost === 0);
  judge('cluster', 'acknowledged bookings still unreadable (503) after 30 s', result.safety.unreadable, '0', result.safety.unreadable === 0);
  judge('cluster', 'vehicles held by two acknowledged bookings', result.safety.doubleHolds, '0', result.safety.doubleHolds === 0);
  return result;
}

// ---- gbfs: vehicle_status.json for the fleet, and its effect on book (bench/gbfs.ts)

async function gbfs() {
  const result = await runGbfsBench({ vehicles: Number(values['fleet-size']), shards: shardCounts[0]!, ttlSeconds: 2, durationS, warmupS, connections }, log);
  judge('gbfs', `vehicle_status.json rebuild, ${result.published} vehicles, p50 (ms)`, result.rebuildMs.p50, '(reported)', null);
  judge('gbfs', 'vehicle_status.json cached (gzip), p50 (ms)', result.cachedMs.gzip.p50, '(reported)', null);
  judge('gbfs', 'book throughput while polling the feed ÷ alone', result.book.throughputRatio, '≥ 0.9', result.book.throughputRatio === null ? null : result.book.throughputRatio >= 0.9);
  return result;
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  // The servers under test run from dist/ (bench/server.ts), as `npm start` runs them.
  if (spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' }).status !== 0) throw new Error('the build failed');
  const results: Record<string, unknown> = {
    startedAt,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform} ${release()}`, loadAverageAtStart: loadavg().map((l) => round(l)) },
    config: { only: [...only], durationS, warmupS, coldS: COLD_S, connections, shards: shardCounts, bookVehicles, loadGenerator: 'autocannon (programmatic) in bench/load-worker.ts, its own process; percentiles: autocannon HDR for all requests, hdr-histogram-js per step' },
    serverSupports,
    scenarios: {} as Record<string, unknown>,
  };
  const scenarios = results.scenarios as Record<string, unknown>;
  // The reference first: book's ratios need it.
  const order = SCENARIOS.filter((name) => only.has(name) || (name === 'http-ceiling' && (only.has('book') || only.has('trace-cost'))));
  try {
    for (const name of order) {
      log(`${name} …`);
      const started = performance.now();
      try {
        scenarios[name] = { ...((await RUNNERS[name]()) as object), scenarioSeconds: round((performance.now() - started) / 1000, 1), loadAverage: loadavg().map((l) => round(l)) };
      } catch (error) {
        console.error(error);
        scenarios[name] = { error: error instanceof Error ? error.message : String(error) };
        judge(name, 'ran', 'error', 'runs', false);
      }
    }
  } finally {
    for (const making of prepared.values()) {
      const made = await making.catch(() => null);
      if (made) rmSync(made.dir, { recursive: true, force: true });
    }
  }
  results.verdicts = verdicts;
  const json = JSON.stringify(results, null, 2);
  const out = values.out ?? join(root, 'bench', 'results', `${startedAt.replaceAll(':', '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${json}\n`);
  for (const v of verdicts) console.log(`${v.met === null ? '  ·' : v.met ? ' ok' : 'MISS'}  ${v.scenario}: ${v.figure} = ${v.value} (target ${v.target})`);
  console.log(`results: ${out}${existsSync(out) ? '' : ' (not written)'}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
