import { createHash } from 'node:crypto';
import type { ActorBehaviour } from '../../runtime/kernel/directory.js';
import { accept, type Outcome } from '../contract/rejections.js';
import { persistDecided } from '../shared/persist-decided.js';
import { decide, evolve, initialClaimState, liveClaim, type ClaimEvent, type ClaimLease, type ClaimState } from './decider.js';

export const IDEMPOTENCY = 'idempotency';

/**
 * One actor per (customer, Idempotency-Key): its id is a hash of both, so a key is scoped to its
 * customer, any text fits, and the id places it on a shard (server/idempotency-claims.ts) without a
 * lookup. Domain-separated from the key-derived booking id (api/idempotency.ts), which hashes the same pair.
 */
export const claimIdFor = (customerId: string, key: string): string =>
  `idem_${createHash('sha256').update(`idempotency\n${customerId}\n${key}`).digest('hex').slice(0, 32)}`;

export type ClaimMessage =
  /**
   * Claims the key for this body under a lease (actors/idempotency/decider.ts); answers null when this
   * request is to run, else what the key holds (another body's claim, a running request, an answer).
   */
  | ({ readonly type: 'ClaimKey'; readonly requestHash: string } & ClaimLease)
  /** The final answer of the request that claimed the key (errors included). */
  | { readonly type: 'StoreAnswer'; readonly requestHash: string; readonly statusCode: number; readonly body: unknown }
  /** The claiming request's answer was not final: a retry may run at once. */
  | { readonly type: 'ReleaseClaim'; readonly requestHash: string; readonly holder: string }
  /** What the key holds, without claiming it: asked by nodes of the version before leases, during a rolling upgrade. */
  | { readonly type: 'ReadClaim' };

/** What a key holds, as the HTTP edge reads it (api/ports.ts StoredResponse). */
export interface ClaimView {
  readonly requestHash: string;
  /** Null: claimed, no final answer. */
  readonly statusCode: number | null;
  readonly body: unknown;
  /**
   * A claim without an answer whose request runs now (its lease, actors/idempotency/decider.ts): the
   * same body is in use (409). Absent from a claim actor of the version before leases, whose claim
   * without an answer means "run again".
   */
  readonly running?: boolean;
}

export interface ClaimActorDeps {
  /** Epoch ms (the shard's clock: tests move it). */
  readonly now: () => number;
  readonly ttlMs?: number;
}

const viewOf = (state: ClaimState): ClaimView | null => {
  switch (state.status) {
    case 'FREE':
      return null;
    case 'CLAIMED':
      return { requestHash: state.requestHash, statusCode: null, body: null };
    case 'ANSWERED':
      return { requestHash: state.requestHash, statusCode: state.statusCode, body: state.body };
  }
};

/** What ClaimKey answers when it records nothing: a claim without an answer is then one whose request runs. */
const runningView = (state: ClaimState): ClaimView | null => {
  const view = viewOf(state);
  return view !== null && state.status === 'CLAIMED' ? { ...view, running: true } : view;
};

/**
 * The claim as traces show it: the stored answer's body is left out (the StoreAnswer step's payload
 * holds it once, and the booking's own steps show the booking), so a keyed request's trace steps do
 * not write the booking view twice more.
 */
export const describeClaim = (state: ClaimState): unknown => (state.status === 'ANSWERED' ? { status: state.status, requestHash: state.requestHash, statusCode: state.statusCode, at: state.at } : state);

/**
 * The shell: every claim and stored answer is an event in the shard's journal, so it shares the
 * shard's group commit (no fsync of its own) and is durable before the edge acts on it.
 */
export function claimBehaviour(deps: ClaimActorDeps) {
  return (): ActorBehaviour<ClaimState, ClaimMessage, ClaimEvent> => ({
    initialState: initialClaimState,
    evolve,
    describe: describeClaim,
    // Two claim steps per keyed booking cost as much again as the booking's three (trace rows, their
    // random-keyed index entries); every claim event is in the journal (`npm run replay -- idempotency`).
    traceOnlyExceptions: true,
    async handle(ctx, message) {
      const now = deps.now();
      switch (message.type) {
        case 'ClaimKey': {
          // Answered once the claim is queued, like StoreAnswer below, so the request's saga starts
          // while the claim commits (one sequential commit fewer for a keyed booking; in cluster mode
          // one Kafka transaction). Its acknowledgement still follows the claim's commit: a final
          // answer is stored with StoreAnswer before the client hears it, and this mailbox takes
          // StoreAnswer only after the claim's commit settles. And a request cut short before the
          // claim is durable leaves its other body a 422 all the same: the key-derived booking exists
          // with the first request (BookingAlreadyExists), or nothing does and no one was answered.
          const { requestHash, holder, leaseMs, othersMayRun } = message;
          const decision = decide({ type: 'Claim', requestHash, at: now, holder, leaseMs, othersMayRun }, ctx.state, deps.ttlMs);
          // Claimed (now, or again after its last request ended): this request runs. Else what the key
          // holds: another body's claim, an answer, or (no event recorded for this body) a request running.
          const answer: Outcome<ClaimView | null> = accept(decision.ok && decision.events.length > 0 ? null : runningView(liveClaim(ctx.state, now, deps.ttlMs)));
          const claimed = persistDecided(ctx, decision);
          ctx.reply(answer);
          await claimed;
          return;
        }
        case 'ReadClaim': {
          const answer: Outcome<ClaimView | null> = accept(viewOf(liveClaim(ctx.state, now, deps.ttlMs)));
          return ctx.reply(answer);
        }
        case 'ReleaseClaim': {
          // As StoreAnswer: answered once queued; this mailbox takes the key's next claim after the commit.
          const released = persistDecided(ctx, decide({ type: 'Release', requestHash: message.requestHash, holder: message.holder, at: now }, ctx.state, deps.ttlMs));
          ctx.reply(accept(null));
          await released;
          return;
        }
        case 'StoreAnswer': {
          const { requestHash, statusCode, body } = message;
          // Answered once the answer is queued, not once it is durable: the request then answers its
          // client one commit sooner. What the reply promises is order, and that holds: this mailbox
          // takes no other message of the key before the commit settles, so a replay sent after the
          // client's answer finds the answer stored. Durability is not needed: if the commit fails or
          // the process dies first, the key stays claimed without an answer, and a retry runs again
          // and reaches the same key-derived booking, which answers from what it already did (as
          // after a crash mid-request, api/idempotency.ts).
          const stored = persistDecided(ctx, decide({ type: 'StoreAnswer', requestHash, statusCode, body, at: now }, ctx.state, deps.ttlMs));
          ctx.reply(accept(null));
          await stored;
          return;
        }
        default: {
          const unknown: never = message;
          ctx.logger.warn({ message: unknown }, 'unknown idempotency message dropped');
        }
      }
    },
  });
}
