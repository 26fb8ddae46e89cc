/**
 * heap-census: where the bytes of idle active vehicle actors are, by constructor. Run as `node
 * --expose-gc --import tsx bench/heap-census.ts '{"vehicles":3000}'`: the fleet of fleet-scale (one
 * shard inline, embedded broker), a V8 heap snapshot before and after N vehicles are registered through
 * their actors (all then active and idle), and the difference per vehicle by node type and name,
 * largest first. A measuring tool (memory, not speed), not part of `npm run bench`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { VEHICLE, type VehicleMessage } from '../actors/vehicle/actor.js';
import { loadConfig } from '../server/config.js';
import { rootContext } from '../runtime/ground/trace-context.js';
import { startFleet, type RunningFleet } from '../server/fleet-app.js';
import { createLogger } from '../runtime/ground/logger.js';
import { freePort } from '../test/helpers/free-port.js';

const { vehicles = 3000, top = 40 } = JSON.parse(process.argv[2] ?? '{}') as { vehicles?: number; top?: number };
const logger = createLogger('error');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Self size and count by "type:name" (a closure's name is its function's; an object's its constructor's). */
function census(file: string): Map<string, { bytes: number; count: number }> {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = data.snapshot.meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((field) => fields.indexOf(field)) as [number, number, number];
  const types = data.snapshot.meta.node_types[0];
  const keyOf = (i: number): string => {
    const type = types[data.nodes[i + typeAt]!]!;
    const raw = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '' : data.strings[data.nodes[i + nameAt]!]!;
    return `${type}:${raw.slice(0, 60)}`;
  };
  // The first retainer of each node (by edge order), to say whose an anonymous array or closure is.
  const edgeWidth = data.snapshot.meta.edge_fields.length;
  const toAt = data.snapshot.meta.edge_fields.indexOf('to_node');
  const edgeCountAt = fields.indexOf('edge_count');
  const owner = new Int32Array(data.nodes.length / width).fill(-1);
  for (let i = 0, e = 0; i < data.nodes.length; i += width) {
    const count = data.nodes[i + edgeCountAt]!;
    for (let k = 0; k < count; k += 1, e += edgeWidth) {
      const to = data.edges[e + toAt]! / width;
      if (owner[to] === -1 && i !== 0) owner[to] = i;
    }
  }
  const out = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < data.nodes.length; i += width) {
    const own = owner[i / width]!;
    const key = `${keyOf(i)}  <- ${own >= 0 ? keyOf(own) : '?'}`;
    const entry = out.get(key) ?? { bytes: 0, count: 0 };
    entry.bytes += data.nodes[i + sizeAt]!;
    entry.count += 1;
    out.set(key, entry);
  }
  return out;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 4; i += 1) {
    gc!();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const ask = <T>(fleet: RunningFleet, id: string, message: VehicleMessage) => fleet.local.directory.ask<T>({ kind: VEHICLE, id }, message, 'bench', rootContext(), 60_000);

async function register(fleet: RunningFleet, prefix: string, count: number): Promise<void> {
  const pending: Promise<unknown>[] = [];
  for (let index = 1; index <= count; index += 1) {
    pending.push(ask(fleet, `${prefix}-${String(index).padStart(6, '0')}`, { type: 'RegisterVehicle', vehicleType: 'scooter', model: null, location: { lat: 52.52, lon: 13.405 } }));
  }
  await Promise.all(pending);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'heap-census-'));
  try {
    const config = loadConfig({ FLEET_DB: join(dir, 'fleet.db'), FLEET_DB_SYNC: 'NORMAL', PORT: '0', MQTT_PORT: String(await freePort()), LOG_LEVEL: 'error', PAYMENT_LATENCY_MS: '0', FLEET_SHARDS: '1', RATE_LIMIT_PER_CUSTOMER: '0', RATE_LIMIT_PER_IP: '0' });
    const fleet = await startFleet(config, { logger, listen: false, shardRuntime: 'inline' });
    // Warm: the code paths compiled and the maps grown once, so the difference is the actors'.
    await register(fleet, 'warm', 200);
    while (fleet.local.directory.stats().withMailbox > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    await settle();
    const beforeFile = writeHeapSnapshot(join(dir, 'before.heapsnapshot'));
    await register(fleet, 'cs', vehicles);
    // Idle: every activation let its nact actor go (the directory's releaseAfterMs).
    while (fleet.local.directory.stats().withMailbox > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    await settle();
    // Both written before either is read: the census of one must not be in the heap of the other.
    const afterFile = writeHeapSnapshot(join(dir, 'after.heapsnapshot'));
    const before = census(beforeFile);
    const after = census(afterFile);
    const rows = [...after].map(([key, { bytes, count }]) => {
      const was = before.get(key) ?? { bytes: 0, count: 0 };
      return { key, bytes: (bytes - was.bytes) / vehicles, count: (count - was.count) / vehicles };
    });
    rows.sort((a, b) => b.bytes - a.bytes);
    const total = rows.reduce((sum, row) => sum + row.bytes, 0);
    console.log(`active: ${fleet.local.directory.stats().active}; per vehicle: ${total.toFixed(0)} B (self sizes, snapshot difference)`);
    for (const row of rows.slice(0, top)) console.log(`${row.bytes.toFixed(1).padStart(8)} B  ${row.count.toFixed(2).padStart(6)} ×  ${row.key}`);
    await fleet.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
