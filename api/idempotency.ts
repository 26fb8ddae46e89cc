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
 * Keys in progress live in memory: the main thread serves every HTTP request of the process, whatever
 * shard the booking lives on. The key's request hash is claimed in the store before the request runs,
 * so another body is a 422 also while the first request runs elsewhere or after it died unanswered.
 */
export class IdempotencyGuard {
  private readonly inFlight = new Set<string>();

  constructor(private readonly store: IdempotencyPort) {}

  /** `trace`: the request's, carried by the claim's asks (one trace per keyed request, not three). */
  async run(customerId: string, key: string, requestHash: string, execute: () => Promise<Execution>, trace?: TraceContext): Promise<IdempotentResult> {
    const slot = `${customerId}\n${key}`;
    if (this.inFlight.has(slot)) {
      // Another request with this key runs: it may have just answered (replay), or hold another body (422).
      const stored = await this.store.peek(customerId, key, trace);
      return answerFromStored(stored, requestHash) ?? { kind: 'in-use' };
    }
    // has → add happens without an await in between, so two requests cannot both pass.
    this.inFlight.add(slot);
    try {
      // Claimed but unanswered (the process died, or the answer was not final): run again; the
      // key-derived booking id reaches the same booking, which answers from what it already did.
      const stored = await this.store.claim(customerId, key, requestHash, trace);
      const answered = answerFromStored(stored, requestHash);
      if (answered) return answered;
      const { response, final } = await execute();
      if (final) await this.store.save(customerId, key, requestHash, response.statusCode, response.body, trace);
      return { kind: 'executed', response };
    } finally {
      this.inFlight.delete(slot);
    }
  }
}

function answerFromStored(stored: StoredResponse | undefined, requestHash: string): IdempotentResult | undefined {
  if (stored && stored.requestHash !== requestHash) return { kind: 'reused' };
  if (stored && stored.statusCode !== null) return { kind: 'replayed', response: { statusCode: stored.statusCode, body: stored.body } };
  return undefined;
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
