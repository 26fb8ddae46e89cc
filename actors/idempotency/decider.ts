import { emit, unreachable, type Decision } from '../shared/decision.js';

/**
 * Pure rules of one Idempotency-Key of one customer (docs/contract.md, "Idempotency-Key"): the first
 * request's body hash is claimed before it runs, its final answer (errors included) is stored, and both
 * are forgotten 24 h after the last of them. Whether a request with the key is *running* is not here:
 * only the HTTP edge knows that (a claim without an answer may as well belong to a request that died
 * with the process), so the 409 for a key in use is the edge's.
 */

/** Stored answers are replayed for 24 h; after that the key is free again. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export type ClaimState =
  | { readonly status: 'FREE' }
  /** Claimed by a request with no final answer yet: running, or cut short (a crash, an answer that was not final). */
  | { readonly status: 'CLAIMED'; readonly requestHash: string; readonly at: number }
  | { readonly status: 'ANSWERED'; readonly requestHash: string; readonly statusCode: number; readonly body: unknown; readonly at: number };

export type ClaimCommand =
  | { readonly type: 'Claim'; readonly requestHash: string; readonly at: number }
  | { readonly type: 'StoreAnswer'; readonly requestHash: string; readonly statusCode: number; readonly body: unknown; readonly at: number };

export type ClaimEvent =
  | { readonly type: 'KeyClaimed'; readonly requestHash: string; readonly at: number }
  | { readonly type: 'AnswerStored'; readonly requestHash: string; readonly statusCode: number; readonly body: unknown; readonly at: number };

export const initialClaimState: ClaimState = { status: 'FREE' };

/** What the key holds at `now`: anything older than the TTL counts as never written. */
export function liveClaim(state: ClaimState, now: number, ttlMs = IDEMPOTENCY_TTL_MS): ClaimState {
  return state.status !== 'FREE' && state.at > now - ttlMs ? state : initialClaimState;
}

export function decide(command: ClaimCommand, state: ClaimState, ttlMs = IDEMPOTENCY_TTL_MS): Decision<ClaimEvent> {
  const live = liveClaim(state, command.at, ttlMs);
  switch (command.type) {
    case 'Claim':
      // A live claim is answered from (replay, 422, or run again after a crash): nothing new to record.
      if (live.status !== 'FREE') return emit();
      return emit({ type: 'KeyClaimed', requestHash: command.requestHash, at: command.at });
    case 'StoreAnswer':
      // Only the request that holds the claim answers it; an answer already stored is final.
      if (live.status === 'ANSWERED') return emit();
      if (live.status === 'CLAIMED' && live.requestHash !== command.requestHash) return emit();
      return emit({ type: 'AnswerStored', requestHash: command.requestHash, statusCode: command.statusCode, body: command.body, at: command.at });
    default:
      return unreachable(command);
  }
}

export function evolve(state: ClaimState, event: ClaimEvent): ClaimState {
  switch (event.type) {
    case 'KeyClaimed':
      return { status: 'CLAIMED', requestHash: event.requestHash, at: event.at };
    case 'AnswerStored':
      return { status: 'ANSWERED', requestHash: event.requestHash, statusCode: event.statusCode, body: event.body, at: event.at };
    default:
      return unreachable(event);
  }
}
