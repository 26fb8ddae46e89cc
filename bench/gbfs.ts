import { gzipSync } from 'node:zlib';
import type { LoadResult, PhaseResult, Workload } from './load-worker.js';
import { runLoad } from './processes.js';
import { startBenchServer } from './server.js';

/**
 * `npm run bench -- --only gbfs`: GBFS vehicle_status.json for a fleet of FLEET_SEED=100,000 demo
 * vehicles (docs/gbfs.md, "Caching"), and what serving it costs `POST /bookings` in the same run.
 *
 * - first: the very first request waits for the first snapshot (client-side, body downloaded);
 * - rebuild: each later rebuild (every shard read in pages, merged, serialized, gzipped), as the server
 *   measures it (`fleet_gbfs_vehicle_status_rebuild_seconds`); requests meanwhile get the previous one;
 * - cached: requests answered from the snapshot (the polling case), gzip and identity, and a 304;
 * - book: confirmed bookings per second and latency, alone, then with a planner polling the feed back
 *   to back with a `ttl` of 2 s, so a rebuild runs every 2 s during the measurement (a worst case:
 *   a real feed has a `ttl` of 30 s or more).
 */

export interface GbfsBenchOptions {
  readonly vehicles: number;
  readonly shards: number;
  readonly ttlSeconds: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
}

const round = (value: number, digits = 1): number => Number(value.toFixed(digits));
const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function timedGet(url: string, headers: Record<string, string> = {}): Promise<{ ms: number; status: number; bytes: number; etag: string | null }> {
  const started = performance.now();
  const response = await fetch(url, { headers });
  const body = new Uint8Array(await response.arrayBuffer());
  // fetch inflates a gzipped body: the bytes on the wire are its content-length.
  return { ms: performance.now() - started, status: response.status, bytes: Number(response.headers.get('content-length') ?? body.byteLength), etag: response.headers.get('etag') };
}

/** /metrics wants a token (issue 19): the bench server gets this one. */
const METRICS_TOKEN = 'bench-metrics-token-0123456789';

async function metric(url: string, name: string): Promise<number> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}: the rebuild figures need it`);
  const text = await response.text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : Number.NaN;
}

const summary = (samples: readonly number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { n: sorted.length, p50: round(percentile(sorted, 50)), p90: round(percentile(sorted, 90)), max: round(sorted.at(-1) ?? Number.NaN) };
};

function bookFigures(load: LoadResult) {
  const measured = load.phases.find((phase: PhaseResult) => phase.name === 'measured')!;
  const step = measured.steps.book;
  return { confirmedPerSecond: measured.confirmedPerSecond, latencyMs: step?.latencyMs ?? null, statuses: step?.statuses ?? {} };
}

export async function runGbfsBench(options: GbfsBenchOptions, log: (message: string) => void) {
  const server = await startBenchServer({
    FLEET_SEED: String(options.vehicles),
    FLEET_SHARDS: String(options.shards),
    GBFS_TTL_SECONDS: String(options.ttlSeconds),
    PAYMENT_LATENCY_MS: '0',
    FLEET_DB_SYNC: 'FULL',
    METRICS_TOKEN,
  });
  const feed = `${server.url}/gbfs/vehicle_status.json`;
  try {
    log(`gbfs: ${options.vehicles} vehicles on ${options.shards} shard(s), ttl ${options.ttlSeconds} s`);
    const first = await timedGet(feed);
    const document = JSON.parse(await (await fetch(feed)).text()) as { data: { vehicles: unknown[] } };
    const rebuilds: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      await sleep(options.ttlSeconds * 1000 + 100);
      const before = await metric(server.url, 'fleet_gbfs_vehicle_status_rebuilds_total');
      await timedGet(feed, { 'accept-encoding': 'gzip' });
      for (let waited = 0; waited < 120_000 && (await metric(server.url, 'fleet_gbfs_vehicle_status_rebuilds_total')) <= before; waited += 200) await sleep(200);
      rebuilds.push((await metric(server.url, 'fleet_gbfs_vehicle_status_rebuild_seconds')) * 1000);
    }
    const cachedIdentity: number[] = [];
    const cachedGzip: number[] = [];
    const notModified: number[] = [];
    let gzipBytes = 0;
    let bodyBytes = 0;
    let etag: string | null = null;
    for (let i = 0; i < 20; i += 1) {
      // fetch (undici) asks for gzip unless told otherwise: identity must be asked for by name.
      const plain = await timedGet(feed, { 'accept-encoding': 'identity' });
      const gzipped = await timedGet(feed, { 'accept-encoding': 'gzip' });
      etag = plain.etag;
      cachedIdentity.push(plain.ms);
      cachedGzip.push(gzipped.ms);
      gzipBytes = gzipped.bytes;
      bodyBytes = plain.bytes;
      if (etag) notModified.push((await timedGet(feed, { 'if-none-match': etag })).ms);
    }

    const workload = (first: number): Workload => ({ kind: 'book', vehicles: { prefix: 'demo-', pad: 4, first, count: 40_000, mode: 'sequential' }, customers: 40_000 });
    const phases = [{ name: 'warmup', durationS: options.warmupS }, { name: 'measured', durationS: options.durationS }];
    log('gbfs: book alone');
    const alone = await runLoad({ url: server.url, connections: options.connections, phases, workload: workload(1) });
    log('gbfs: book while a planner polls vehicle_status.json back to back');
    let polling = true;
    const polled: number[] = [];
    const poller = (async () => {
      while (polling) polled.push((await timedGet(feed, { 'accept-encoding': 'gzip' })).ms);
    })();
    const withFeed = await runLoad({ url: server.url, connections: options.connections, phases, workload: workload(50_001) });
    polling = false;
    await poller;

    const aloneFigures = bookFigures(alone);
    const withFigures = bookFigures(withFeed);
    return {
      vehicles: options.vehicles,
      published: document.data.vehicles.length,
      shards: options.shards,
      ttlSeconds: options.ttlSeconds,
      bodyBytes,
      gzipBytes,
      gzipBytesAtDefaultLevel: gzipSync(JSON.stringify(document)).byteLength,
      firstRequestMs: round(first.ms),
      rebuildMs: summary(rebuilds),
      cachedMs: { identity: summary(cachedIdentity), gzip: summary(cachedGzip), notModified304: summary(notModified) },
      book: {
        alone: aloneFigures,
        whilePolling: { ...withFigures, feedRequests: polled.length, feedMs: summary(polled) },
        throughputRatio: aloneFigures.confirmedPerSecond > 0 ? round(withFigures.confirmedPerSecond / aloneFigures.confirmedPerSecond, 3) : null,
      },
    };
  } finally {
    await server.stop();
  }
}
