import type { TestFleet } from './fleet.js';

/** A journal row as the commit-count tests read it. */
export interface MarkedRow {
  readonly position: number;
  readonly persistence_key: string;
  readonly event_type: string;
}

/** What was committed since a mark: the journal engines' commits (group-commit batches) and the rows written. */
export interface SinceMark {
  readonly commits: number;
  readonly rows: readonly MarkedRow[];
}

const commitsOf = async (t: TestFleet): Promise<number> => (await t.fleet.shardStats()).reduce((sum, stats) => sum + (stats?.journal.commits ?? 0), 0);

/**
 * Marks the journal now; the function returned tells what was committed since (the sequential durable
 * steps of one request on an otherwise idle fleet: booking-commits.test.ts, unlock-commits.test.ts).
 */
export async function markJournal(t: TestFleet): Promise<() => Promise<SinceMark>> {
  const commitsBefore = await commitsOf(t);
  const lastPosition = (t.db.prepare('SELECT coalesce(max(position), 0) AS p FROM journal').get() as { p: number }).p;
  return async () => ({
    commits: (await commitsOf(t)) - commitsBefore,
    rows: t.db.prepare('SELECT position, persistence_key, event_type FROM journal WHERE position > ? ORDER BY position').all(lastPosition) as MarkedRow[],
  });
}
