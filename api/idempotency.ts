import { createHash, randomUUID } from 'node:crypto';
import type { TraceContext } from '../runtime/ground/trace-context.js';
import type { IdempotencyPort, StoredResponse } from './ports.js';

export type { IdempotencyPort, StoredResponse } from './ports.js';

/**
 * Idempotency-Key for POST /bookings (docs/contract.md; IETF draft-ietf-httpapi-idempotency-key-header,
 * Stripe's behaviour): the first request runs and its response is stored, errors included; the same
 * key and body replay it; the same key while the first still runs → 409; another body → 422.
 */

export interface HttpResponse {
  readonly statusCode: number;
  readonly body: unknown;
}

/** What the guarded request produced, and whether it is a final answer worth storing. */
export interface Execution {
  readonly response: HttpResponse;
  /**
   * False when the outcome is unknown (an actor did not answer in time, an unexpected error): a retry
   * must run again, and reaches the same booking because its id derives from the key.
   */
  readonly final: boolean;
}

export type IdempotentResult =
  | { readonly kind: 'executed'; readonly response: HttpResponse }
  | { readonly kind: 'replayed'; readonly response: HttpResponse }
  | { readonly kind: 'in-use' }
  | { readonly kind: 'reused' };

/**
 * The key's request hash is claimed in the store before the request runs, and the store decides, for
 * every node of the fleet, whether it runs: another body is a 422 also while the first request runs
 * elsewhere or after it died unanswered; the same body while a request with it runs is a 409 (the
 * claim's lease, actors/idempotency/decider.ts); after that request died or gave an answer that was
 * not final, it runs again and reaches the same key-derived booking, which answers from what it did.
 */
export class IdempotencyGuard {
  constructor(private readonly store: IdempotencyPort) {}

  /** `trace`: the request's, carried by the claim's asks (one trace per keyed request, not three). */
  async run(customerId: string, key: string, requestHash: string, execute: () => Promise<Execution>, trace?: TraceContext): Promise<IdempotentResult> {
    const stored = await this.store.claim(customerId, key, requestHash, trace);
    const answered = answerFromStored(stored, requestHash);
    if (answered) return answered;
    let execution: Execution;
    try {
      execution = await execute();
    } catch (error) {
      this.releaseInBackground(customerId, key, requestHash, trace);
      throw error;
    }
    const { response, final } = execution;
    if (final) await this.store.save(customerId, key, requestHash, response.statusCode, response.body, trace);
    else this.releaseInBackground(customerId, key, requestHash, trace);
    return { kind: 'executed', response };
  }

  /**
   * Not awaited: the answer that was not final goes out at once. A release that fails (its shard is
   * down, or a claim actor of an older version that does not know it) leaves the lease to run out: a
   * retry meanwhile gets 409 with Retry-After.
   */
  private releaseInBackground(customerId: string, key: string, requestHash: string, trace?: TraceContext): void {
    this.store.release(customerId, key, requestHash, trace).catch(() => undefined);
  }
}

function answerFromStored(stored: StoredResponse | undefined, requestHash: string): IdempotentResult | undefined {
  if (stored === undefined) return undefined;
  if (stored.requestHash !== requestHash) return { kind: 'reused' };
  if (stored.statusCode !== null) return { kind: 'replayed', response: { statusCode: stored.statusCode, body: stored.body } };
  // Not running (a claim actor of the version before leases answers so): its request ended without an answer, run again.
  return stored.running === true ? { kind: 'in-use' } : undefined;
}

/** The hash that tells "same request" from "another body": sha256 of canonical JSON (keys sorted). */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([name, item]) => `${JSON.stringify(name)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const ID_HEX_CHARS = 24;

/**
 * With a key the booking id is derived from it, so a retry after a crash (response never stored)
 * still reaches the same booking actor, which answers with the booking it already has.
 */
export function bookingIdFor(customerId: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `bk_${randomUUID().replaceAll('-', '').slice(0, ID_HEX_CHARS)}`;
  return `bk_${createHash('sha256').update(`${customerId}\n${idempotencyKey}`).digest('hex').slice(0, ID_HEX_CHARS)}`;
}

export const newVehicleId = (): string => `veh_${randomUUID().replaceAll('-', '').slice(0, ID_HEX_CHARS)}`;
