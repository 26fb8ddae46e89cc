import Database from 'better-sqlite3';

/** One journal row as the checks need it; `shard` + `position` order the rows of one shard. */
export interface JournalEntry {
  readonly shard: number;
  readonly position: number;
  readonly key: string;
  readonly sequence: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly isPublic: boolean;
  readonly createdAt: number;
}

/** A record read back from Kafka by the harness's own consumer. */
export interface KafkaEvidence {
  readonly topic: string;
  readonly partition: number;
  /** Offsets compare as numbers within a partition. */
  readonly offset: number;
  readonly key: string | null;
  readonly ceId: string | null;
  readonly value: string | null;
}

/**
 * Reads every shard's journal read-only (the server may still be running: WAL readers never block
 * the writer and see only committed transactions).
 */
export function readJournals(shardFiles: readonly string[]): JournalEntry[] {
  const entries: JournalEntry[] = [];
  for (const [shard, file] of shardFiles.entries()) {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const rows = db
        .prepare('SELECT position, persistence_key, sequence_number, event_type, data, is_public, created_at FROM journal ORDER BY position')
        .all() as Array<{ position: number; persistence_key: string; sequence_number: number; event_type: string; data: string; is_public: number; created_at: number }>;
      for (const row of rows) {
        entries.push({
          shard,
          position: row.position,
          key: row.persistence_key,
          sequence: row.sequence_number,
          type: row.event_type,
          data: JSON.parse(row.data) as Record<string, unknown>,
          isPublic: row.is_public === 1,
          createdAt: row.created_at,
        });
      }
    } finally {
      db.close();
    }
  }
  return entries;
}
