import Database from 'better-sqlite3';
import type { SimulatedAuthorization, SimulatedAuthorizationStore } from '../actors/payment/gateway.js';

/**
 * The simulated payment processor's memory in a SQLite file of its own (`fleet.shard-N.gateway.db`
 * beside the shard's journal): it stands for a service outside our process, so it is not part of the
 * journal and has no migrations of the shard schema. WAL with synchronous NORMAL survives a crash of
 * our process, which is all a stand-in needs.
 */
export function openSimulatedGatewayStore(file: string): SimulatedAuthorizationStore & { close(): void } {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE IF NOT EXISTS authorizations (id TEXT PRIMARY KEY, record TEXT NOT NULL)');
  const select = db.prepare<[string], { record: string }>('SELECT record FROM authorizations WHERE id = ?');
  const upsert = db.prepare<[string, string]>('INSERT INTO authorizations (id, record) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record');
  return {
    get: (id) => {
      const row = select.get(id);
      return row ? (JSON.parse(row.record) as SimulatedAuthorization) : undefined;
    },
    set: (id, authorization) => {
      upsert.run(id, JSON.stringify(authorization));
    },
    close: () => db.close(),
  };
}

/** `…/fleet.shard-0.db` → `…/fleet.shard-0.gateway.db`. */
export const simulatedGatewayFile = (shardFile: string): string => shardFile.replace(/(\.db)?$/, '.gateway.db');
