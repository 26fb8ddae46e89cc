import { IDEMPOTENCY_TTL_MS, type IdempotencyStore } from '../persistence/idempotency-store.js';
import type { TraceStore } from '../persistence/trace-store.js';
import { hourly } from '../runtime/ground/hourly.js';
import type { Logger } from '../runtime/ground/logger.js';

/** Rows deleted per transaction: a few milliseconds of work between two turns of the event loop. */
const PURGE_CHUNK = 5000;

/**
 * Every hour, what `purge` finds older than `retentionMs`, deleted in chunks with a turn of the event
 * loop between them (the shard's actors keep running meanwhile). `what` names the rows in the log.
 */
function housekeepInChunks(purge: (before: number, limit: number) => number, parts: { retentionMs: number; logger: Logger }, what: string): () => void {
  return hourly(
    async (stopped) => {
      const before = Date.now() - parts.retentionMs;
      let total = 0;
      for (let deleted = PURGE_CHUNK; deleted === PURGE_CHUNK && !stopped(); ) {
        deleted = purge(before, PURGE_CHUNK);
        total += deleted;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (total > 0) parts.logger.info({ deleted: total }, `housekeeping: expired ${what} deleted`);
    },
    parts.logger,
    `${what} housekeeping`,
  );
}

/** A shard's trace steps past TRACE_RETENTION_MS. */
export function housekeepTraces(parts: { traces: TraceStore; retentionMs: number; logger: Logger }): () => void {
  return housekeepInChunks((before, limit) => parts.traces.purgeOlderThan(before, limit), parts, 'trace steps');
}

/** A shard's ride violation episodes last seen longer ago than AREA_VIOLATION_RETENTION_MS (persistence/area-violations.ts). */
export function housekeepAreaViolations(parts: { purge: (before: number, limit: number) => number; retentionMs: number; logger: Logger }): () => void {
  return housekeepInChunks(parts.purge, parts, 'ride violation episodes');
}

/** Stored idempotent responses past their 24 h (the main thread's registry). */
export function housekeepIdempotency(parts: { idempotency: IdempotencyStore; logger: Logger }): () => void {
  return hourly(
    async () => {
      const responses = parts.idempotency.purgeOlderThan(Date.now() - IDEMPOTENCY_TTL_MS);
      if (responses > 0) parts.logger.info({ responses }, 'housekeeping: expired idempotency responses deleted');
      await Promise.resolve();
    },
    parts.logger,
    'idempotency housekeeping',
  );
}
