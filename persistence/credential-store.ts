import type { Statement } from 'better-sqlite3';
import type { Db } from './sqlite.js';

/**
 * Device login hashes, one row per vehicle (docs/contract.md, "MQTT": every client logs in).
 *
 * A store of its own, with its own migrations (tracked in `component_versions`, not in the journal's
 * `user_version`): after the shard split it lives in the main thread's database, next to the embedded
 * broker that asks it on every CONNECT, while the shards keep their journals. A check is one indexed
 * synchronous SELECT: no actor, no journal, nothing that waits.
 */

const COMPONENT = 'credential-store';
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE device_credentials (
     vehicle_id    TEXT    PRIMARY KEY,
     password_hash TEXT    NOT NULL,
     origin        TEXT    NOT NULL CHECK (origin IN ('issued', 'demo')),
     updated_at    INTEGER NOT NULL
   ) STRICT`,
];

/** `issued`: random, shown once to an operator. `demo`: derived from the development secret (FLEET_SEED). */
export type CredentialOrigin = 'issued' | 'demo';

export interface StoredCredential {
  readonly vehicleId: string;
  readonly passwordHash: string;
  readonly origin: CredentialOrigin;
  readonly updatedAt: number;
}

interface Row {
  vehicle_id: string;
  password_hash: string;
  origin: CredentialOrigin;
  updated_at: number;
}

export class CredentialStore {
  private readonly byId: Statement<[string], Row>;
  private readonly upsert: Statement<[string, string, CredentialOrigin, number]>;
  private readonly insertIfAbsent: Statement<[string, string, CredentialOrigin, number]>;
  private readonly removeOne: Statement<[string]>;
  private readonly removeDemo: Statement<[]>;

  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {
    migrateComponent(db, COMPONENT, MIGRATIONS);
    this.byId = db.prepare('SELECT * FROM device_credentials WHERE vehicle_id = ?');
    this.upsert = db.prepare(
      `INSERT INTO device_credentials (vehicle_id, password_hash, origin, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (vehicle_id) DO UPDATE SET password_hash = excluded.password_hash, origin = excluded.origin, updated_at = excluded.updated_at`,
    );
    this.insertIfAbsent = db.prepare(
      'INSERT INTO device_credentials (vehicle_id, password_hash, origin, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (vehicle_id) DO NOTHING',
    );
    this.removeOne = db.prepare('DELETE FROM device_credentials WHERE vehicle_id = ?');
    this.removeDemo = db.prepare("DELETE FROM device_credentials WHERE origin = 'demo'");
  }

  get(vehicleId: string): StoredCredential | undefined {
    const row = this.byId.get(vehicleId);
    return row && { vehicleId: row.vehicle_id, passwordHash: row.password_hash, origin: row.origin, updatedAt: row.updated_at };
  }

  /** Sets (or replaces: rotation) the vehicle's hash. */
  put(vehicleId: string, passwordHash: string, origin: CredentialOrigin = 'issued'): void {
    this.upsert.run(vehicleId, passwordHash, origin, this.now());
  }

  /** True when stored; false when the vehicle already had credentials (an operator's rotation wins over a demo default). */
  putIfAbsent(vehicleId: string, passwordHash: string, origin: CredentialOrigin): boolean {
    return this.insertIfAbsent.run(vehicleId, passwordHash, origin, this.now()).changes > 0;
  }

  /** Runs `work` in one transaction: one commit (one fsync) for many writes, e.g. 100,000 demo vehicles. */
  inTransaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  delete(vehicleId: string): boolean {
    return this.removeOne.run(vehicleId).changes > 0;
  }

  /**
   * Drops every demo credential: a server started with a real FLEET_JWT_SECRET must not accept
   * passwords anyone can derive from the public development secret.
   */
  deleteDemoCredentials(): number {
    return this.removeDemo.run().changes;
  }
}

/** Per-component schema versions, so that stores sharing a file never fight over `user_version`. */
function migrateComponent(db: Db, component: string, migrations: readonly string[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS component_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT');
  const current = db.prepare<[string], { version: number }>('SELECT version FROM component_versions WHERE component = ?').get(component)?.version ?? 0;
  for (let version = current; version < migrations.length; version += 1) {
    db.transaction(() => {
      db.exec(migrations[version]!);
      db.prepare('INSERT INTO component_versions (component, version) VALUES (?, ?) ON CONFLICT (component) DO UPDATE SET version = excluded.version').run(component, version + 1);
    })();
  }
}
