import { describe, expect, it } from 'vitest';
import { decide, evolve, IDEMPOTENCY_TTL_MS, initialClaimState, liveClaim, type ClaimCommand, type ClaimEvent } from '../../actors/idempotency/decider.js';
import { claimIdFor } from '../../actors/idempotency/actor.js';
import { bookingIdFor } from '../../api/idempotency.js';
import { specification } from '../helpers/decider-spec.js';

const spec = specification({ decide: (command: ClaimCommand, state) => decide(command, state), evolve, initialState: () => initialClaimState });

const T0 = Date.UTC(2026, 0, 2, 8, 0, 0);
const HASH = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const PROBLEM_409 = { type: 'https://fleetactors.dev/problems/vehicle-unavailable', status: 409 };

const LEASE_MS = 34_000;
const NODE_A = 'n1/first-start';
const NODE_B = 'n2/first-start';
const claimed = (requestHash = HASH, at = T0, holder = NODE_A): ClaimEvent => ({ type: 'KeyClaimed', requestHash, at, holder, leaseUntil: at + LEASE_MS });
const stored = (statusCode = 201, body: unknown = { id: 'bk_1' }, at = T0 + 50, requestHash = HASH): ClaimEvent => ({ type: 'AnswerStored', requestHash, statusCode, body, at });
/** A node of a cluster (othersMayRun) unless told otherwise. */
const claim = (requestHash = HASH, at = T0, holder = NODE_A, othersMayRun = true): ClaimCommand => ({ type: 'Claim', requestHash, at, holder, leaseMs: LEASE_MS, othersMayRun });
const release = (at: number, holder = NODE_A, requestHash = HASH): ClaimCommand => ({ type: 'Release', requestHash, holder, at });
const released = (at: number, requestHash = HASH): ClaimEvent => ({ type: 'ClaimReleased', requestHash, at });
const storeAnswer = (statusCode = 201, body: unknown = { id: 'bk_1' }, at = T0 + 50, requestHash = HASH): ClaimCommand => ({ type: 'StoreAnswer', requestHash, statusCode, body, at });

describe('Claim', () => {
  it('claims a free key for the request body, held by its process under a lease', () => {
    expect(spec.given([]).when(claim()).then([claimed()])).toEqual({ status: 'CLAIMED', requestHash: HASH, at: T0, holder: NODE_A, leaseUntil: T0 + LEASE_MS });
  });

  it('records nothing for an answered key (the shell replays it, or refuses another body), nor for another body\'s claim', () => {
    spec.given([claimed(), stored()]).when(claim(HASH, T0 + 1000)).thenNothing();
    spec.given([claimed(), stored()]).when(claim(OTHER, T0 + 1000)).thenNothing();
    spec.given([claimed()]).when(claim(OTHER, T0 + 1000)).thenNothing();
    // Also past the lease: another body stays refused.
    spec.given([claimed()]).when(claim(OTHER, T0 + LEASE_MS + 1)).thenNothing();
  });

  it('while the lease runs, the same body is in use: on another node, and on the same process', () => {
    spec.given([claimed()]).when(claim(HASH, T0 + 1000, NODE_B)).thenNothing();
    spec.given([claimed()]).when(claim(HASH, T0 + LEASE_MS - 1, NODE_A)).thenNothing();
  });

  it('once the lease ran out (its request died with its node), the next request takes the claim over and runs', () => {
    const state = spec.given([claimed()]).when(claim(HASH, T0 + LEASE_MS, NODE_B)).then([claimed(HASH, T0 + LEASE_MS, NODE_B)]);
    expect(state).toMatchObject({ status: 'CLAIMED', holder: NODE_B, leaseUntil: T0 + 2 * LEASE_MS });
  });

  it('alone (one process), a claim of an earlier start is taken over at once: it died with that start', () => {
    spec.given([claimed()]).when(claim(HASH, T0 + 1000, 'single/second-start', false)).then([claimed(HASH, T0 + 1000, 'single/second-start')]);
    // Its own running request is still in use.
    spec.given([claimed(HASH, T0, 'single/second-start')]).when(claim(HASH, T0 + 1000, 'single/second-start', false)).thenNothing();
  });

  it('a claim recorded before leases (no holder, no lease) is never in use', () => {
    const legacy: ClaimEvent = { type: 'KeyClaimed', requestHash: HASH, at: T0 };
    spec.given([legacy]).when(claim(HASH, T0 + 1000, NODE_B)).then([claimed(HASH, T0 + 1000, NODE_B)]);
  });

  it('a key whose last write is 24 h old is free again: the new request claims it, whatever its body', () => {
    const state = spec.given([claimed(), stored()]).when(claim(OTHER, T0 + 50 + IDEMPOTENCY_TTL_MS)).then([claimed(OTHER, T0 + 50 + IDEMPOTENCY_TTL_MS)]);
    expect(state).toMatchObject({ status: 'CLAIMED', requestHash: OTHER });
    // One millisecond earlier it still held the answer.
    spec.given([claimed(), stored()]).when(claim(OTHER, T0 + 49 + IDEMPOTENCY_TTL_MS)).thenNothing();
  });
});

describe('StoreAnswer', () => {
  it('stores the final answer of the claiming request, errors included', () => {
    const state = spec.given([claimed()]).when(storeAnswer(409, PROBLEM_409)).then([stored(409, PROBLEM_409)]);
    expect(state).toEqual({ status: 'ANSWERED', requestHash: HASH, statusCode: 409, body: PROBLEM_409, at: T0 + 50 });
  });

  it('an answer already stored is final: a second one records nothing', () => {
    spec.given([claimed(), stored()]).when(storeAnswer(402, { type: 'payment-declined' }, T0 + 90)).thenNothing();
  });

  it('the answer of a request with another body than the claim records nothing', () => {
    spec.given([claimed()]).when(storeAnswer(201, { id: 'bk_2' }, T0 + 50, OTHER)).thenNothing();
  });
});

describe('Release (an answer that was not final)', () => {
  it('ends its holder\'s lease: the same body runs again at once, from any node; another body stays refused', () => {
    const state = spec.given([claimed()]).when(release(T0 + 900)).then([released(T0 + 900)]);
    expect(state).toMatchObject({ status: 'CLAIMED', requestHash: HASH, leaseUntil: T0 + 900 });
    spec.given([claimed(), released(T0 + 900)]).when(claim(HASH, T0 + 1000, NODE_B)).then([claimed(HASH, T0 + 1000, NODE_B)]);
    spec.given([claimed(), released(T0 + 900)]).when(claim(OTHER, T0 + 1000, NODE_B)).thenNothing();
  });

  it('records nothing from another holder, for another body, after the lease, or for an answered key', () => {
    spec.given([claimed()]).when(release(T0 + 900, NODE_B)).thenNothing();
    spec.given([claimed()]).when(release(T0 + 900, NODE_A, OTHER)).thenNothing();
    spec.given([claimed()]).when(release(T0 + LEASE_MS)).thenNothing();
    spec.given([claimed(), stored()]).when(release(T0 + 900)).thenNothing();
  });
});

describe('liveClaim', () => {
  it('shows a claim until 24 h after its last write, then nothing', () => {
    const state = spec.given([claimed(), stored()]).state;
    expect(liveClaim(state, T0 + 49 + IDEMPOTENCY_TTL_MS)).toBe(state);
    expect(liveClaim(state, T0 + 50 + IDEMPOTENCY_TTL_MS)).toEqual(initialClaimState);
  });
});

describe('claimIdFor', () => {
  it('is stable per (customer, key), scoped per customer, and unlike the booking id derived from the same pair', () => {
    expect(claimIdFor('alice', 'k')).toBe(claimIdFor('alice', 'k'));
    expect(claimIdFor('alice', 'k')).toMatch(/^idem_[0-9a-f]{32}$/);
    expect(claimIdFor('bob', 'k')).not.toBe(claimIdFor('alice', 'k'));
    expect(claimIdFor('alice', 'k2')).not.toBe(claimIdFor('alice', 'k'));
    expect(claimIdFor('alice', 'k').slice('idem_'.length, 'idem_'.length + 24)).not.toBe(bookingIdFor('alice', 'k').slice('bk_'.length));
  });
});
