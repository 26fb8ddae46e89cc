/**
 * `npx tsx bench/hotpath-cpu.ts [--vehicles 6000] [--warmup 1000] [--bookings 4000] [--repeat 3] [--keyed] [--sync FULL]`:
 * CPU time per confirmed booking, thread by thread, of the built server under the `book` load.
 *
 * Throughput on a shared machine moves with everyone else's load; the CPU a booking costs the server
 * moves much less. So: a fleet registered once, then per repeat a fresh copy, the server started on
 * it (as bench/run.ts starts it, FULL sync, one shard), `--warmup` bookings, then exactly `--bookings`
 * bookings (50 connections, distinct vehicles and customers), and the server's threads' CPU time
 * (/proc/<pid>/task/<tid>/stat, Linux) read before and after the measured part. Reported per booking:
 * the main thread (HTTP), the busiest other thread (the shard), the rest (GC helpers, libuv, the
 * telemetry thread), the process; the same for the first `--cold` bookings after /health turned 200
 * (the cold start: what JIT compilation still to do costs). Also the wall-clock rate with the load average, for context only.
 * `BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR'` profiles the server as well.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { VehiclePick } from './load-worker.js';
import { runLoad } from './processes.js';
import { spawnBenchServer, startBenchServer } from './server.js';
import { signToken } from '../actors/contract/tokens.js';
import { DEV_JWT_SECRET } from '../actors/contract/device-secrets.js';

const { values } = parseArgs({
  options: {
    vehicles: { type: 'string', default: '6000' },
    /** Bookings measured right after /health turned 200 (the cold start), before the warm-up. */
    cold: { type: 'string', default: '500' },
    warmup: { type: 'string', default: '1000' },
    bookings: { type: 'string', default: '4000' },
    repeat: { type: 'string', default: '3' },
    /** Every booking with its own Idempotency-Key (as clients send them). */
    keyed: { type: 'boolean', default: false },
    shards: { type: 'string', default: '1' },
    /** FLEET_DB_SYNC of the measured servers: NORMAL or OFF take the fsync's wait out of a --cpu-prof profile, so its shares are CPU. */
    sync: { type: 'string', default: 'FULL' },
    /** Another checkout (built, e.g. `git archive <commit>` + `npm run build`): its server runs in turn with this one, ABAB. */
    compare: { type: 'string' },
    /** Run the other checkout first in each pair (BABA), to see an order effect. */
    'compare-first': { type: 'boolean', default: false },
  },
});
const vehicles = Number(values.vehicles);
const cold = Number(values.cold);
const warmup = Number(values.warmup);
const bookings = Number(values.bookings);
if (cold + warmup + bookings > vehicles) throw new Error('--vehicles must cover --cold + --warmup + --bookings (each booking its own vehicle)');
const FLEET = { prefix: 'hv-', pad: 6 } as const;
const CLOCK_TICKS_PER_S = 100;

/** CPU milliseconds (user + system) of every thread of `pid`. */
function threadCpu(pid: number): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpu.set(Number(tid), ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return cpu;
}

interface CpuPerBooking {
  readonly main: number;
  readonly shard: number;
  readonly rest: number;
  readonly process: number;
  /** The rest thread by thread, busiest first (Node 20 names no thread: other shards, the WAL checkpointers, V8's GC and compiler helpers, libuv's pool). */
  readonly restThreads: readonly number[];
}

/** CPU ms per booking between two readings: the main thread (tid = pid), the busiest other (the shard), the rest. */
function cpuOf(before: Map<number, number>, after: Map<number, number>, pid: number, bookings: number): CpuPerBooking {
  const deltas = [...after].map(([tid, ms]) => ({ tid, ms: ms - (before.get(tid) ?? 0) })).sort((a, b) => b.ms - a.ms);
  const main = deltas.find((d) => d.tid === pid)?.ms ?? 0;
  const shard = deltas.find((d) => d.tid !== pid)?.ms ?? 0;
  const total = deltas.reduce((sum, d) => sum + d.ms, 0);
  const per = (ms: number) => Number((ms / Math.max(1, bookings)).toFixed(3));
  const restThreads = deltas.filter((d) => d.tid !== pid && d.ms > 0).slice(1, 9).map((d) => per(d.ms));
  return { main: per(main), shard: per(shard), rest: per(total - main - shard), process: per(total), restThreads };
}

/** The journal's commits and events so far, summed over the shards, from /metrics. */
async function journalTotals(url: string): Promise<{ commits: number; events: number }> {
  // /metrics is for operators (or METRICS_TOKEN); the bench server runs on the development secret.
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${signToken({ sub: 'bench-ops', role: 'operator', ttlSeconds: 600 }, DEV_JWT_SECRET)}` } })).text();
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`))
      .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  return { commits: sum('fleet_journal_commits_total'), events: sum('fleet_journal_events_total') };
}

// The server runs from dist/ (bench/server.ts): build it first, as bench/run.ts does.
if (spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' }).status !== 0) throw new Error('the build failed');
const dir = mkdtempSync(join(tmpdir(), 'fleet-hotpath-'));
try {
  const prepared = await startBenchServer({ FLEET_DB: join(dir, 'fleet.db'), PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: values.shards });
  try {
    const pick: VehiclePick = { ...FLEET, count: vehicles, mode: 'sequential' };
    await runLoad({ url: prepared.url, connections: 50, phases: [{ name: 'register', amount: vehicles }], workload: { kind: 'register', vehicles: pick } });
  } finally {
    await prepared.stop();
  }
  interface Run {
    readonly server: string;
    readonly confirmed: number;
    readonly journal: { readonly rowsPerBooking: number; readonly rowsPerCommit: number };
    readonly startupMs: number;
    readonly cpuMsPerBooking: CpuPerBooking;
    readonly coldCpuMsPerBooking: CpuPerBooking;
    readonly wall: { readonly confirmedPerSecond: number; readonly p99Ms: number | null; readonly loadAverage: number[] };
  }
  const runs: Run[] = [];
  const servers: Array<{ label: string; root: string | undefined }> = values.compare ? [{ label: 'this', root: undefined }, { label: 'compare', root: values.compare }] : [{ label: 'this', root: undefined }];
  if (values['compare-first']) servers.reverse();
  for (let round = 0; round < Number(values.repeat) * servers.length; round += 1) {
    const { label, root } = servers[round % servers.length]!;
    const copy = mkdtempSync(join(tmpdir(), 'fleet-hotpath-copy-'));
    cpSync(dir, copy, { recursive: true });
    const server = await spawnBenchServer({ FLEET_DB: join(copy, 'fleet.db'), FLEET_DB_SYNC: values.sync, PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: values.shards }, root);
    try {
      const startupMs = await server.healthy;
      const book = (first: number, amount: number) =>
        runLoad({ url: server.url, connections: 50, phases: [{ name: 'book', amount }], workload: { kind: 'book', vehicles: { ...FLEET, first, count: amount, mode: 'sequential' }, customers: amount, idempotencyKey: values.keyed } });
      const coldBefore = threadCpu(server.pid);
      const coldLoad = await book(1, cold);
      const coldCpu = cpuOf(coldBefore, threadCpu(server.pid), server.pid, coldLoad.phases[0]!.confirmed);
      await book(cold + 1, warmup);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const journalBefore = await journalTotals(server.url);
      const before = threadCpu(server.pid);
      const started = performance.now();
      const load = await book(cold + warmup + 1, bookings);
      const seconds = (performance.now() - started) / 1000;
      const after = threadCpu(server.pid);
      // Shards push their figures every second.
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const journalAfter = await journalTotals(server.url);
      const confirmed = load.phases[0]!.confirmed;
      const steady = cpuOf(before, after, server.pid, confirmed);
      runs.push({
        server: label,
        confirmed,
        journal: {
          rowsPerBooking: Number(((journalAfter.events - journalBefore.events) / confirmed).toFixed(2)),
          rowsPerCommit: Number(((journalAfter.events - journalBefore.events) / Math.max(1, journalAfter.commits - journalBefore.commits)).toFixed(1)),
        },
        startupMs,
        cpuMsPerBooking: steady,
        coldCpuMsPerBooking: coldCpu,
        wall: { confirmedPerSecond: Math.round(confirmed / seconds), p99Ms: load.phases[0]!.steps.book?.latencyMs.p99 ?? null, loadAverage: loadavg().map((l) => Number(l.toFixed(2))) },
      });
      console.error(`hotpath-cpu: run ${round + 1}: ${JSON.stringify(runs.at(-1))}`);
    } finally {
      await server.stop();
      rmSync(copy, { recursive: true, force: true });
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const summary = Object.fromEntries(
    servers.map(({ label }) => {
      const mine = runs.filter((run) => run.server === label);
      return [
        label,
        {
          medianCpuMsPerBooking: { main: median(mine.map((run) => run.cpuMsPerBooking.main)), shard: median(mine.map((run) => run.cpuMsPerBooking.shard)), process: median(mine.map((run) => run.cpuMsPerBooking.process)) },
          medianColdCpuMsPerBooking: { main: median(mine.map((run) => run.coldCpuMsPerBooking.main)), shard: median(mine.map((run) => run.coldCpuMsPerBooking.shard)), process: median(mine.map((run) => run.coldCpuMsPerBooking.process)) },
          medianStartupMs: median(mine.map((run) => run.startupMs)),
          medianConfirmedPerSecond: median(mine.map((run) => run.wall.confirmedPerSecond)),
        },
      ];
    }),
  );
  console.log(JSON.stringify({ vehicles, warmup, bookings, shards: Number(values.shards), summary, runs }, null, 2));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
