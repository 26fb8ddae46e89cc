import type { Statement } from 'better-sqlite3';
import { IDEMPOTENCY, claimIdFor } from '../actors/idempotency/actor.js';
import { IDEMPOTENCY_TTL_MS } from '../actors/idempotency/decider.js';
import type { Db } from './sqlite.js';
import { hourly } from '../runtime/ground/hourly.js';
import type { ActorAddress } from '../runtime/kernel/directory.js';
import type { Logger } from '../runtime/ground/logger.js';

/**
 * Idempotency claims (actors/idempotency/) past their 24 h leave the shard's journal: every row and the
 * snapshot of a claim whose newest row is older than the cut-off. The claim actor already treats such a
 * key as free (its decider reads the age), so this is only about space. A claim in memory is skipped,
 * so no activation holds sequence numbers for rows that are gone; it goes at a later sweep.
 *
 * The claims are found by the journal's own `(persistence_key, sequence_number)` index, walking the
 * `idempotency/` key range in chunks: nothing is written per booking for this sweep (no read model, no
 * extra index), at the price of reading every claim's rows once an hour.
 */

/** Claims looked at per transaction: a few milliseconds between two turns of the shard's event loop. */
const PURGE_CHUNK = 500;
const PREFIX = `${IDEMPOTENCY}/`;
/** The first key after every `idempotency/…` key ('0' follows '/'). */
const PAST_PREFIX = `${IDEMPOTENCY}0`;

export interface ClaimPurge {
  /**
   * Deletes the claims whose newest row is older than `before` (epoch ms), looking at up to `limit`
   * claims after `afterKey`; returns how many went and the last key looked at (null: the range ended).
   */
  purge(before: number, afterKey?: string, limit?: number): { purged: number; lastKey: string | null };
}

export function claimPurge(db: Db, isActive: (address: ActorAddress) => boolean): ClaimPurge {
  const claims: Statement<[string, string, number], { key: string; newest: number }> = db.prepare(
    `SELECT persistence_key AS key, max(created_at) AS newest FROM journal
     WHERE persistence_key > ? AND persistence_key < ? GROUP BY persistence_key ORDER BY persistence_key LIMIT ?`,
  );
  const deleteRows = db.prepare<[string]>('DELETE FROM journal WHERE persistence_key = ?');
  const deleteSnapshot = db.prepare<[string]>('DELETE FROM snapshots WHERE persistence_key = ?');

  const purgeChunk = db.transaction((before: number, afterKey: string, limit: number) => {
    const found = claims.all(afterKey, PAST_PREFIX, limit);
    let purged = 0;
    for (const { key, newest } of found) {
      if (newest >= before) continue;
      if (isActive({ kind: IDEMPOTENCY, id: key.slice(PREFIX.length) })) continue;
      deleteRows.run(key);
      deleteSnapshot.run(key);
      purged += 1;
    }
    return { purged, lastKey: found.length === limit ? found.at(-1)!.key : null };
  });

  return { purge: (before, afterKey = PREFIX, limit = PURGE_CHUNK) => purgeChunk(before, afterKey, limit) };
}

/** Every hour, the shard's claims past their 24 h, chunk by chunk. */
export function housekeepIdempotencyClaims(parts: { db: Db; isActive: (address: ActorAddress) => boolean; logger: Logger; now?: () => number }): () => void {
  const purger = claimPurge(parts.db, parts.isActive);
  const now = parts.now ?? Date.now;
  return hourly(
    async (stopped) => {
      const before = now() - IDEMPOTENCY_TTL_MS;
      let claims = 0;
      for (let afterKey: string | null = PREFIX; afterKey !== null && !stopped(); ) {
        const chunk = purger.purge(before, afterKey);
        claims += chunk.purged;
        afterKey = chunk.lastKey;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (claims > 0) parts.logger.info({ claims }, 'housekeeping: idempotency claims past their 24 h deleted from the journal');
    },
    parts.logger,
    'idempotency-claim housekeeping',
  );
}

/** The persistence key of a customer's claim on a key (tests, diagnostics). */
export const claimKeyOf = (customerId: string, key: string): string => `${PREFIX}${claimIdFor(customerId, key)}`;
