import { emit, unreachable, type Decision } from '../shared/decision.js';

/**
 * Pure rules of one Idempotency-Key of one customer (docs/contract.md, "Idempotency-Key"): the first
 * request's body hash is claimed before it runs, its final answer (errors included) is stored, and both
 * are forgotten 24 h after the last of them.
 *
 * **In use** (the 409): a claim is held by one process (its `holder`, an id per process start) under a
 * lease as long as the longest request, until its answer is stored or its holder releases it (an answer
 * that is not final). While the lease runs, the same key with the same body is in use, whichever node
 * it reaches; after it, or once released, the next request takes the claim over and runs again (it
 * reaches the same key-derived booking, which answers from what it already did). A single process
 * passes `othersMayRun: false`: a claim of another holder is then its own earlier life's, which died
 * with the request, so it is taken over at once, as before leases.
 */

/** Stored answers are replayed for 24 h; after that the key is free again. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export type ClaimState =
  | { readonly status: 'FREE' }
  /**
   * Claimed by a request with no final answer yet: running while `leaseUntil` is ahead, or cut short (a
   * crash, an answer that was not final). `holder` '' and `leaseUntil` at the claim: a claim recorded
   * before leases, never in use.
   */
  | { readonly status: 'CLAIMED'; readonly requestHash: string; readonly at: number; readonly holder: string; readonly leaseUntil: number }
  | { readonly status: 'ANSWERED'; readonly requestHash: string; readonly statusCode: number; readonly body: unknown; readonly at: number };

/** Who asks for a claim: the process (`holder`), how long its request may run, and whether another process may be running the key. */
export type ClaimLease = {
  readonly holder: string;
  readonly leaseMs: number;
  /** A cluster: another node's live lease means its request runs. One process: no other holder can be alive. */
  readonly othersMayRun: boolean;
};

export type ClaimCommand =
  | ({ readonly type: 'Claim'; readonly requestHash: string; readonly at: number } & ClaimLease)
  | { readonly type: 'StoreAnswer'; readonly requestHash: string; readonly statusCode: number; readonly body: unknown; readonly at: number }
  /** The holder's answer was not final: the key is free to run again at once (another body stays refused). */
  | { readonly type: 'Release'; readonly requestHash: string; readonly holder: string; readonly at: number };

export type ClaimEvent =
  /** `holder` and `leaseUntil` are absent from claims recorded before leases. */
  | { readonly type: 'KeyClaimed'; readonly requestHash: string; readonly at: number; readonly holder?: string; readonly leaseUntil?: number }
  | { readonly type: 'AnswerStored'; readonly requestHash: string; readonly statusCode: number; readonly body: unknown; readonly at: number }
  | { readonly type: 'ClaimReleased'; readonly requestHash: string; readonly at: number };

export const initialClaimState: ClaimState = { status: 'FREE' };

/** What the key holds at `now`: anything older than the TTL counts as never written. */
export function liveClaim(state: ClaimState, now: number, ttlMs = IDEMPOTENCY_TTL_MS): ClaimState {
  return state.status !== 'FREE' && state.at > now - ttlMs ? state : initialClaimState;
}

/** A request with this claim runs now: its lease is ahead, and its holder is this process or may be another live one. */
function isInUse(claim: Extract<ClaimState, { status: 'CLAIMED' }>, asker: { readonly at: number; readonly holder: string; readonly othersMayRun: boolean }): boolean {
  return claim.leaseUntil > asker.at && (claim.holder === asker.holder || asker.othersMayRun);
}

export function decide(command: ClaimCommand, state: ClaimState, ttlMs = IDEMPOTENCY_TTL_MS): Decision<ClaimEvent> {
  const live = liveClaim(state, command.at, ttlMs);
  switch (command.type) {
    case 'Claim': {
      // An answer (replay or 422), another body's claim (422), or a request running: answered from, nothing recorded.
      if (live.status === 'ANSWERED') return emit();
      if (live.status === 'CLAIMED' && (live.requestHash !== command.requestHash || isInUse(live, command))) return emit();
      // Free, or a claim of this body whose request is over: claimed (again) for this request.
      const { requestHash, at, holder, leaseMs } = command;
      return emit({ type: 'KeyClaimed', requestHash, at, holder, leaseUntil: at + leaseMs });
    }
    case 'StoreAnswer':
      // Only the request that holds the claim answers it; an answer already stored is final.
      if (live.status === 'ANSWERED') return emit();
      if (live.status === 'CLAIMED' && live.requestHash !== command.requestHash) return emit();
      return emit({ type: 'AnswerStored', requestHash: command.requestHash, statusCode: command.statusCode, body: command.body, at: command.at });
    case 'Release':
      // Only the holder ends its own lease, and only once.
      if (live.status !== 'CLAIMED' || live.requestHash !== command.requestHash || live.holder !== command.holder || live.leaseUntil <= command.at) return emit();
      return emit({ type: 'ClaimReleased', requestHash: command.requestHash, at: command.at });
    default:
      return unreachable(command);
  }
}

export function evolve(state: ClaimState, event: ClaimEvent): ClaimState {
  switch (event.type) {
    case 'KeyClaimed':
      return { status: 'CLAIMED', requestHash: event.requestHash, at: event.at, holder: event.holder ?? '', leaseUntil: event.leaseUntil ?? event.at };
    case 'ClaimReleased':
      return state.status === 'CLAIMED' ? { ...state, at: event.at, leaseUntil: event.at } : state;
    case 'AnswerStored':
      return { status: 'ANSWERED', requestHash: event.requestHash, statusCode: event.statusCode, body: event.body, at: event.at };
    default:
      return unreachable(event);
  }
}
