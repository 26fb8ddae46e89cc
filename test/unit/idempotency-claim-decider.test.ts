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

const claimed = (requestHash = HASH, at = T0): ClaimEvent => ({ type: 'KeyClaimed', requestHash, at });
const stored = (statusCode = 201, body: unknown = { id: 'bk_1' }, at = T0 + 50, requestHash = HASH): ClaimEvent => ({ type: 'AnswerStored', requestHash, statusCode, body, at });
const claim = (requestHash = HASH, at = T0): ClaimCommand => ({ type: 'Claim', requestHash, at });
const storeAnswer = (statusCode = 201, body: unknown = { id: 'bk_1' }, at = T0 + 50, requestHash = HASH): ClaimCommand => ({ type: 'StoreAnswer', requestHash, statusCode, body, at });

describe('Claim', () => {
  it('claims a free key for the request body', () => {
    expect(spec.given([]).when(claim()).then([claimed()])).toEqual({ status: 'CLAIMED', requestHash: HASH, at: T0 });
  });

  it.each<[string, ClaimEvent[]]>([
    ['claimed (running, or cut short by a crash)', [claimed()]],
    ['answered', [claimed(), stored()]],
  ])('records nothing when the key is %s: the shell answers from the state, with the same body or another', (_what, given) => {
    spec.given(given).when(claim(HASH, T0 + 1000)).thenNothing();
    spec.given(given).when(claim(OTHER, T0 + 1000)).thenNothing();
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
