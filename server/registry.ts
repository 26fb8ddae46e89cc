import Database from 'better-sqlite3';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { openDatabase, type Db } from '../persistence/sqlite.js';
import { registryMigrations } from '../persistence/schema.js';
import { ConfigError } from './config.js';

/**
 * The main thread's own database, at FLEET_DB: what belongs to the fleet rather than to a shard —
 * the shard count the data was made with, the idempotency keys (a key's first request may have gone
 * to any shard) and the devices' credentials (checked on every MQTT CONNECT, on the main thread).
 * Each shard's journal is a file beside it: `fleet.db` → `fleet.shard-0.db`, … .
 */
export interface Registry {
  readonly db: Db;
  /** The fleet's shard count: FLEET_SHARDS, or when unset the count the data was made with. */
  readonly shardCount: number;
  readonly shardFiles: readonly string[];
  /** A database made by the single-file version was turned into shard 0 (logged once). */
  readonly convertedFromSingleFile: boolean;
  close(): void;
}

export const shardFileOf = (fleetDb: string, shard: number): string =>
  fleetDb === ':memory:' ? ':memory:' : `${fleetDb.replace(/\.(db|sqlite3?)$/i, '')}.shard-${shard}.db`;

/**
 * Opens the registry, records the shard count when the data is new, and refuses another count: the
 * placement hash depends on it, so a different count would silently orphan every actor.
 */
export function openRegistry(fleetDb: string, shards: { readonly count: number; readonly explicit: boolean }, synchronous: 'FULL' | 'NORMAL'): Registry {
  // Unset FLEET_SHARDS means "the cores" for new data only: existing data keeps the count it was made with.
  const shardCount = shards.explicit ? shards.count : (recordedShardCount(fleetDb) ?? shards.count);
  const shardFiles = Array.from({ length: shardCount }, (_, shard) => shardFileOf(fleetDb, shard));
  const convertedFromSingleFile = fleetDb !== ':memory:' && convertSingleFileDatabase(fleetDb, shardCount, shardFiles[0]!);
  const db = openDatabase(fleetDb, { synchronous, migrations: registryMigrations });
  try {
    const recorded = db.prepare<[], { value: string }>("SELECT value FROM fleet_meta WHERE key = 'shard_count'").get();
    if (!recorded) {
      const orphans = fleetDb === ':memory:' ? [] : Array.from({ length: 64 }, (_, shard) => shardFileOf(fleetDb, shard)).filter((file) => existsSync(file) && !shardFiles.includes(file));
      if (orphans.length > 0) throw new ConfigError('FLEET_SHARDS', `${shardCount} does not match the shard files beside FLEET_DB=${fleetDb} (${orphans.join(', ')}); set FLEET_SHARDS to the count those files were made with`);
      db.prepare("INSERT INTO fleet_meta (key, value) VALUES ('shard_count', ?)").run(String(shardCount));
    } else if (Number(recorded.value) !== shardCount) {
      throw new ConfigError(
        'FLEET_SHARDS',
        `is ${shardCount}, but the data in FLEET_DB=${fleetDb} was created with ${recorded.value} shards; start with FLEET_SHARDS=${recorded.value} (vehicles are placed on shards by a hash of the shard count, so another count would orphan them)`,
      );
    }
    if (convertedFromSingleFile) copyIdempotencyKeys(db, shardFiles[0]!);
  } catch (error) {
    db.close();
    throw error;
  }
  return { db, shardCount, shardFiles, convertedFromSingleFile, close: () => db.close() };
}

/** The count recorded in an existing registry; 1 for a single-file database; null for new data. */
function recordedShardCount(fleetDb: string): number | null {
  if (fleetDb === ':memory:' || !existsSync(fleetDb)) return null;
  const db = new Database(fleetDb, { readonly: true });
  try {
    const tables = new Set(db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((row) => row.name));
    if (tables.has('journal')) return 1;
    if (!tables.has('fleet_meta')) return null;
    const recorded = db.prepare<[], { value: string }>("SELECT value FROM fleet_meta WHERE key = 'shard_count'").get();
    return recorded ? Number(recorded.value) : null;
  } finally {
    db.close();
  }
}

/**
 * A FLEET_DB written by the single-file version holds a journal. With one shard it becomes that
 * shard's file (the ids in it carry no shard, and name shard 0); with more it is refused, since its
 * vehicles would have to be re-placed, which is a migration, not a start-up step.
 */
function convertSingleFileDatabase(fleetDb: string, shardCount: number, shardZeroFile: string): boolean {
  if (!existsSync(fleetDb)) return false;
  const legacy = new Database(fleetDb);
  let isSingleFile: boolean;
  try {
    isSingleFile = legacy.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'").get() !== undefined;
    if (!isSingleFile) return false;
    if (shardCount !== 1) {
      throw new ConfigError('FLEET_SHARDS', `is ${shardCount}, but FLEET_DB=${fleetDb} was written by the single-file version (one journal for the whole fleet); start it with FLEET_SHARDS=1 to open it as a one-shard fleet`);
    }
    if (existsSync(shardZeroFile)) throw new ConfigError('FLEET_DB', `${fleetDb} holds a single-file journal, and ${shardZeroFile} exists too; move one of them away`);
    // Everything into the main file, so that the rename moves all of it (the -wal and -shm go empty).
    const [checkpoint] = legacy.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    // Another process still has it open: the WAL may hold commits the rename would leave behind.
    if (!checkpoint || checkpoint.busy !== 0 || checkpoint.log !== checkpoint.checkpointed) {
      throw new ConfigError('FLEET_DB', `${fleetDb} is in use by another process; stop it before opening the database as a one-shard fleet`);
    }
  } finally {
    legacy.close();
  }
  renameSync(fleetDb, shardZeroFile);
  for (const suffix of ['-wal', '-shm']) rmSync(`${fleetDb}${suffix}`, { force: true });
  return true;
}

function copyIdempotencyKeys(db: Db, shardZeroFile: string): void {
  db.prepare('ATTACH DATABASE ? AS converted').run(shardZeroFile);
  try {
    db.exec(
      `INSERT OR IGNORE INTO idempotency_keys (customer_id, key, request_hash, status_code, body, created_at)
       SELECT customer_id, key, request_hash, status_code, body, created_at FROM converted.idempotency_keys`,
    );
  } finally {
    db.exec('DETACH DATABASE converted');
  }
}
