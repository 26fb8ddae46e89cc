import type { Statement } from 'better-sqlite3';
import type { Db } from './sqlite.js';

/** Stored responses are replayed for 24 h (docs/contract.md, Idempotency-Key): the claim actors' rule. */
export { IDEMPOTENCY_TTL_MS } from '../actors/idempotency/decider.js';
import { IDEMPOTENCY_TTL_MS } from '../actors/idempotency/decider.js';

export interface StoredResponse {
  /** Hash of the first request's body: the same key with another body is a 422. */
  readonly requestHash: string;
  /** Null while the request is claimed but has no final answer yet (running, or cut short by a crash). */
  readonly statusCode: number | null;
  readonly body: unknown;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

export interface IdempotencyStoreOptions {
  /** Epoch milliseconds; tests move it forward. */
  readonly now?: () => number;
  readonly ttlMs?: number;
}

interface IdempotencyRecord {
  request_hash: string;
  status_code: number | null;
  body: string | null;
  created_at: number;
}

/**
 * Per (customer, Idempotency-Key): the request's hash, claimed before it runs, then its final response,
 * errors included. The claim is what makes "same key, another body → 422" hold across shards and
 * restarts: the key's first request may have gone to another shard, or died before it answered.
 * Requests still running are the API's business (it answers 409 for them). It lives in the main
 * thread's registry database, beside no journal.
 *
 * No request path uses it any more: claims and answers are claim actors in the shards' journals
 * (actors/idempotency/, server/idempotency-claims.ts), off the main thread's disk. What an earlier
 * version stored in the registry is only aged out by the housekeeping (server/housekeeping.ts).
 */
export class IdempotencyStore {
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly select: Statement<[string, string, number], IdempotencyRecord>;
  private readonly upsert: Statement<[string, string, string, number, string, number]>;
  private readonly purge: Statement<[number]>;
  private readonly insertClaim: Statement<[string, string, string, number]>;

  constructor(db: Db, options: IdempotencyStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.ttlMs = options.ttlMs ?? IDEMPOTENCY_TTL_MS;
    this.select = db.prepare(
      'SELECT request_hash, status_code, body, created_at FROM idempotency_keys WHERE customer_id = ? AND key = ? AND created_at > ?',
    );
    // An expired row may still be there (purging is periodic): a new request with its key replaces it.
    this.upsert = db.prepare(
      `INSERT INTO idempotency_keys (customer_id, key, request_hash, status_code, body, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (customer_id, key) DO UPDATE SET request_hash = excluded.request_hash, status_code = excluded.status_code,
         body = excluded.body, created_at = excluded.created_at`,
    );
    this.purge = db.prepare('DELETE FROM idempotency_keys WHERE created_at < ?');
    this.insertClaim = db.prepare(
      `INSERT INTO idempotency_keys (customer_id, key, request_hash, status_code, body, created_at) VALUES (?, ?, ?, NULL, NULL, ?)
       ON CONFLICT (customer_id, key) DO UPDATE SET request_hash = excluded.request_hash, status_code = NULL, body = NULL, created_at = excluded.created_at`,
    );
  }

  /** Records the key's request before it runs (durable when this returns). */
  claim(customerId: string, key: string, requestHash: string): void {
    this.insertClaim.run(customerId, key, requestHash, this.now());
  }

  /** The stored response for this customer's key, unless it is older than 24 h. */
  find(customerId: string, key: string): StoredResponse | undefined {
    const record = this.select.get(customerId, key, this.now() - this.ttlMs);
    if (!record) return undefined;
    return {
      requestHash: record.request_hash,
      statusCode: record.status_code,
      body: record.body === null ? null : (JSON.parse(record.body) as unknown),
      createdAt: record.created_at,
    };
  }

  save(customerId: string, key: string, requestHash: string, statusCode: number, body: unknown): void {
    // `null` for a body-less response (204), so that find() always parses.
    this.upsert.run(customerId, key, requestHash, statusCode, JSON.stringify(body ?? null), this.now());
  }

  /** Deletes rows created before `epochMs`; returns how many. */
  purgeOlderThan(epochMs: number): number {
    return this.purge.run(epochMs).changes;
  }
}
