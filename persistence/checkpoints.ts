import type { Statement } from 'better-sqlite3';
import type { CheckpointStore } from '../runtime/kernel/journal.js';
import type { Db } from './sqlite.js';

/** Journal positions that consumers (the event relay) have finished with, one row per consumer name. */
export class SqliteCheckpointStore implements CheckpointStore {
  private readonly select: Statement<[string], { position: number }>;
  private readonly upsert: Statement<[string, number]>;

  constructor(db: Db) {
    this.select = db.prepare('SELECT position FROM checkpoints WHERE name = ?');
    this.upsert = db.prepare(
      'INSERT INTO checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position',
    );
  }

  /** 0 when the consumer has never checkpointed: it starts from the beginning of the journal. */
  get(name: string): number {
    return this.select.get(name)?.position ?? 0;
  }

  /** One autocommit statement: durable on return under the database's synchronous mode. */
  set(name: string, position: number): void {
    this.upsert.run(name, position);
  }
}
