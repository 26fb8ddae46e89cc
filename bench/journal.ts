/**
 * Journal write throughput: group commit (FULL and NORMAL) against one transaction per row, and the
 * two flush schedules under real nact actors. `npx tsx bench/journal.ts` prints one JSON object.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { configurePersistence, spawnPersistent, dispatch, start, stop, type PersistedEvent, type Ref } from 'nact';
import { asNactEngine } from '../runtime/kernel/actor-system.js';
import { SqliteJournalEngine, type JournalEngineOptions } from '../persistence/journal-engine.js';
import { openDatabase, type Db } from '../persistence/sqlite.js';

export interface JournalBenchOptions {
  /** Concurrent writers (persistence keys) per round. */
  readonly keys?: number;
  /** Sequential persists per key per round, each awaited like an actor awaits ctx.persist. */
  readonly persistsPerKey?: number;
  readonly rounds?: number;
  /** Rows written with one transaction each (slow under FULL: one fsync per row). */
  readonly perRowRows?: number;
  /** nact actors in the schedule comparison, each handling `persistsPerKey` messages. */
  readonly actors?: number;
  /** Folder for the database files; a fresh one under the OS temp dir by default. Must be a real disk to mean anything. */
  readonly dir?: string;
}

export interface ThroughputResult {
  readonly rows: number;
  readonly commits: number;
  readonly seconds: number;
  readonly rowsPerSecond: number;
  readonly commitsPerSecond: number;
  readonly meanBatchSize: number;
}

export interface JournalBenchResult {
  readonly bench: 'journal';
  readonly workload: { readonly keys: number; readonly persistsPerKey: number; readonly rounds: number };
  readonly groupCommitFull: ThroughputResult;
  readonly groupCommitNormal: ThroughputResult;
  readonly rowPerTransactionFull: ThroughputResult;
  /** The ceiling: raw better-sqlite3, one prepared INSERT, one transaction per batch of `keys` rows (FULL). */
  readonly rawBatchedFull: ThroughputResult;
  /** groupCommitFull / rawBatchedFull, measured in the same run. */
  readonly groupCommitVsRaw: number;
  /** Real nact persistent actors; each handler runs in its own setImmediate callback. */
  readonly nactActors: {
    readonly actors: number;
    readonly immediate: ThroughputResult;
    readonly microtask: ThroughputResult;
  };
  /** One key persisting alone, awaiting each persist: what group commit costs a lone writer (FULL). */
  readonly lonePersistLatencyUs: { readonly immediate: number; readonly microtask: number };
  readonly groupCommitSpeedup: number;
}

const payload = (i: number) => ({ type: 'VehicleReserved', vehicleId: `v-${i}`, bookingId: `b-${i}`, expiresAt: 1_700_000_000_000 + i });

function persistedEvent(key: string, sequenceNumber: number, i: number): PersistedEvent {
  return { key, sequenceNumber, data: payload(i), tags: ['public'], createdAt: Date.now(), isDeleted: false };
}

function result(rows: number, commits: number, seconds: number): ThroughputResult {
  return {
    rows,
    commits,
    seconds: round(seconds, 3),
    rowsPerSecond: Math.round(rows / seconds),
    commitsPerSecond: Math.round(commits / seconds),
    meanBatchSize: round(rows / Math.max(commits, 1), 1),
  };
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));
const seconds = (startNs: bigint): number => Number(process.hrtime.bigint() - startNs) / 1e9;

class Workspace {
  private readonly dir: string;
  private count = 0;
  private readonly open: Db[] = [];
  constructor(dir: string | undefined) {
    this.dir = mkdtempSync(join(dir ?? tmpdir(), 'fleet-journal-bench-'));
  }
  db(synchronous: 'FULL' | 'NORMAL'): Db {
    this.count += 1;
    const db = openDatabase(join(this.dir, `bench-${this.count}.db`), { synchronous });
    this.open.push(db);
    return db;
  }
  dispose(): void {
    for (const db of this.open) if (db.open) db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `keys` writers at once, each awaiting its own persists one after the other, as actors do. */
async function groupCommit(db: Db, keys: number, perKey: number, rounds: number): Promise<ThroughputResult> {
  const engine = new SqliteJournalEngine(db);
  const writer = async (k: number, round: number) => {
    const key = `vehicle/v-${k}`;
    for (let i = 1; i <= perKey; i += 1) await engine.persist(persistedEvent(key, round * perKey + i, k));
  };
  const started = process.hrtime.bigint();
  for (let r = 0; r < rounds; r += 1) {
    const writers: Promise<void>[] = [];
    for (let k = 0; k < keys; k += 1) writers.push(writer(k, r));
    await Promise.all(writers);
  }
  const elapsed = seconds(started);
  const stats = engine.stats();
  return result(stats.rows, stats.commits, elapsed);
}

/** The naive engine: every event its own transaction, so its own fsync. */
function rowPerTransaction(db: Db, rows: number): ThroughputResult {
  const insert = db.prepare(
    `INSERT INTO journal (persistence_key, sequence_number, event_type, data, tags, is_public, trace_id, span_id, created_at, is_deleted)
     VALUES (?, ?, ?, ?, ?, 1, NULL, NULL, ?, 0)`,
  );
  const started = process.hrtime.bigint();
  for (let i = 0; i < rows; i += 1) {
    insert.run(`vehicle/v-${i % 1000}`, Math.floor(i / 1000) + 1, 'VehicleReserved', JSON.stringify(payload(i)), 'public', Date.now());
  }
  return result(rows, rows, seconds(started));
}

/** What group commit competes with: the same rows, the same batch size, written by hand in one transaction per batch. */
function rawBatched(db: Db, keys: number, perKey: number, rounds: number): ThroughputResult {
  const insert = db.prepare(
    `INSERT INTO journal (persistence_key, sequence_number, event_type, data, tags, is_public, trace_id, span_id, created_at, is_deleted)
     VALUES (?, ?, ?, ?, ?, 1, NULL, NULL, ?, 0)`,
  );
  const batch = db.transaction((from: number, sequenceNumber: number) => {
    for (let k = 0; k < keys; k += 1) insert.run(`vehicle/v-${k}`, sequenceNumber, 'VehicleReserved', JSON.stringify(payload(from + k)), 'public', Date.now());
  });
  const started = process.hrtime.bigint();
  let commits = 0;
  for (let r = 0; r < rounds; r += 1) {
    for (let i = 1; i <= perKey; i += 1) {
      batch(i * keys, r * perKey + i);
      commits += 1;
    }
  }
  return result(keys * perKey * rounds, commits, seconds(started));
}

type Counted = { type: 'count'; n: number };

/** Real nact actors, one message per actor per loop: measures how well each schedule batches them. */
async function nactActors(db: Db, actors: number, messagesPerActor: number, schedule: JournalEngineOptions['schedule']): Promise<ThroughputResult> {
  const engine = new SqliteJournalEngine(db, { schedule });
  const system = start(configurePersistence(asNactEngine(engine)));
  const total = actors * messagesPerActor;
  let committed = 0;
  let target = actors;
  let reached: () => void = () => undefined;
  engine.onCommit((rows) => {
    committed += rows.length;
    if (committed >= target) reached();
  });
  const committedAll = (expected: number) =>
    new Promise<void>((resolve) => {
      committed = 0;
      target = expected;
      reached = resolve;
    });
  const refs: Ref<Counted>[] = [];
  for (let a = 0; a < actors; a += 1) {
    refs.push(
      spawnPersistent(
        system,
        async (state: number, msg: Counted, ctx) => {
          await (ctx as unknown as { persist: (m: Counted) => Promise<void> }).persist(msg);
          return state + msg.n;
        },
        `vehicle/v-${a}`,
        `v-${a}`,
        { initialState: 0 },
      ),
    );
  }
  // Warm-up: one message each, so that recovery of the fresh actors is not part of what is measured.
  const warm = committedAll(actors);
  for (const ref of refs) dispatch(ref, { type: 'count', n: 1 });
  await warm;

  const measured = committedAll(total);
  const started = process.hrtime.bigint();
  const before = engine.stats().commits;
  for (let m = 0; m < messagesPerActor; m += 1) for (const ref of refs) dispatch(ref, { type: 'count', n: 1 });
  await measured;
  const elapsed = seconds(started);
  stop(system);
  return result(total, engine.stats().commits - before, elapsed);
}

async function lonePersistLatencyUs(db: Db, schedule: JournalEngineOptions['schedule'], samples: number): Promise<number> {
  const engine = new SqliteJournalEngine(db, { schedule });
  const started = process.hrtime.bigint();
  for (let i = 1; i <= samples; i += 1) await engine.persist(persistedEvent(`booking/b-${schedule}`, i, i));
  return Math.round((seconds(started) * 1e6) / samples);
}

export async function runJournalBench(options: JournalBenchOptions = {}): Promise<JournalBenchResult> {
  const keys = options.keys ?? 1000;
  const persistsPerKey = options.persistsPerKey ?? 10;
  const rounds = options.rounds ?? 3;
  const perRowRows = options.perRowRows ?? 2000;
  const actors = options.actors ?? 1000;
  const workspace = new Workspace(options.dir);
  try {
    // Warm-up, untimed: JIT of both paths, the first file and WAL growth.
    await groupCommit(workspace.db('FULL'), keys, persistsPerKey, 1);
    rawBatched(workspace.db('FULL'), keys, persistsPerKey, 1);
    // Side by side, alternating, twice each: the better of two runs each (the machine is shared).
    const full = [await groupCommit(workspace.db('FULL'), keys, persistsPerKey, rounds)];
    const raw = [rawBatched(workspace.db('FULL'), keys, persistsPerKey, rounds)];
    full.push(await groupCommit(workspace.db('FULL'), keys, persistsPerKey, rounds));
    raw.push(rawBatched(workspace.db('FULL'), keys, persistsPerKey, rounds));
    const best = (runs: ThroughputResult[]) => runs.reduce((a, b) => (b.rowsPerSecond > a.rowsPerSecond ? b : a));
    const groupCommitFull = best(full);
    const rawBatchedFull = best(raw);
    const groupCommitNormal = await groupCommit(workspace.db('NORMAL'), keys, persistsPerKey, rounds);
    const rowPerTransactionFull = rowPerTransaction(workspace.db('FULL'), perRowRows);
    const immediate = await nactActors(workspace.db('FULL'), actors, persistsPerKey, 'immediate');
    const microtask = await nactActors(workspace.db('FULL'), actors, persistsPerKey, 'microtask');
    const lone = {
      immediate: await lonePersistLatencyUs(workspace.db('FULL'), 'immediate', 500),
      microtask: await lonePersistLatencyUs(workspace.db('FULL'), 'microtask', 500),
    };
    return {
      bench: 'journal',
      workload: { keys, persistsPerKey, rounds },
      groupCommitFull,
      groupCommitNormal,
      rowPerTransactionFull,
      rawBatchedFull,
      groupCommitVsRaw: round(groupCommitFull.rowsPerSecond / rawBatchedFull.rowsPerSecond, 2),
      nactActors: { actors, immediate, microtask },
      lonePersistLatencyUs: lone,
      groupCommitSpeedup: round(groupCommitFull.rowsPerSecond / rowPerTransactionFull.rowsPerSecond, 1),
    };
  } finally {
    workspace.dispose();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await runJournalBench(), null, 2));
}
