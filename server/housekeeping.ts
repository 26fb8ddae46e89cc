import { IDEMPOTENCY_TTL_MS, type IdempotencyStore } from '../persistence/idempotency-store.js';
import type { TraceStore } from '../persistence/trace-store.js';
import { hourly } from '../runtime/ground/hourly.js';
import type { Logger } from '../runtime/ground/logger.js';

/** Trace steps deleted per transaction: a few milliseconds of work between two turns of the event loop. */
const TRACE_PURGE_CHUNK = 5000;

/** A shard's traces past their retention, deleted in chunks with a turn of the event loop between them. */
export function housekeepTraces(parts: { traces: TraceStore; retentionMs: number; logger: Logger }): () => void {
  return hourly(
    async (stopped) => {
      const before = Date.now() - parts.retentionMs;
      let steps = 0;
      for (let deleted = TRACE_PURGE_CHUNK; deleted === TRACE_PURGE_CHUNK && !stopped(); ) {
        deleted = parts.traces.purgeOlderThan(before, TRACE_PURGE_CHUNK);
        steps += deleted;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (steps > 0) parts.logger.info({ steps }, 'housekeeping: expired trace steps deleted');
    },
    parts.logger,
    'trace housekeeping',
  );
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
