import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { migrations } from './schema.js';

export type Db = Database.Database;

export interface OpenDatabaseOptions {
  /** FULL: a committed transaction survives power loss. NORMAL (WAL): survives a process crash only. */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Default: a shard's schema (journal, read models, traces). The main thread's registry has its own. */
  readonly migrations?: readonly string[];
}

/** Opens a SQLite file, creating folders and schema as needed: a shard's journal or the registry. */
export function openDatabase(file: string, options: OpenDatabaseOptions = {}): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  db.pragma('foreign_keys = ON');
  // Readers never wait on the writer in WAL; this only matters when a second process opens the file.
  db.pragma('busy_timeout = 5000');
  try {
    migrate(db, options.migrations ?? migrations);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

export function migrate(db: Db, steps: readonly string[] = migrations): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let version = current; version < steps.length; version += 1) {
    db.transaction(() => {
      db.exec(steps[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
