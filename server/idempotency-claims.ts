import { claimIdFor, IDEMPOTENCY, type ClaimMessage, type ClaimView } from '../actors/idempotency/actor.js';
import type { ClaimLease } from '../actors/idempotency/decider.js';
import { Refused, type Outcome } from '../actors/contract/rejections.js';
import type { IdempotencyPort, StoredResponse } from '../api/ports.js';
import { rootContext, type TraceContext } from '../runtime/ground/trace-context.js';
import { shardOfClaim } from '../runtime/kernel/placement.js';
import { refuseUnavailable, type ShardLinks } from './fleet-service.js';

/** The main thread waits a little longer than the shard's own deadline, so the shard's answer (a rejection) wins. */
const DEADLINE_MARGIN_MS = 2000;

/**
 * A claim's lease: longer than a booking request can run after its claim (the live-booking count, then
 * the booking, each an ask with its deadline and margin), so a request still running always holds it.
 */
export const claimLeaseMs = (askTimeoutMs: number): number => 2 * (askTimeoutMs + DEADLINE_MARGIN_MS);

/**
 * The HTTP edge's IdempotencyPort, served by claim actors on the shards (actors/idempotency/): each
 * claim and stored answer is written in its shard's group commit, so the main thread does no disk I/O
 * for a keyed booking, and a claim moves with its shard when shards move. A shard that is down, silent
 * or out of disk throws Refused with that rejection (503, and nothing stored: the client retries).
 */
export class ShardedIdempotency implements IdempotencyPort {
  constructor(
    private readonly shards: ShardLinks,
    private readonly askTimeoutMs: number,
    /** This process's claims: its holder id, the lease of a request, and whether other nodes run requests too (actors/idempotency/decider.ts). */
    private readonly lease: ClaimLease,
  ) {}

  async claim(customerId: string, key: string, requestHash: string, trace?: TraceContext): Promise<StoredResponse | undefined> {
    return (await this.ask<ClaimView | null>(customerId, key, { type: 'ClaimKey', requestHash, ...this.lease }, trace)) ?? undefined;
  }

  async save(customerId: string, key: string, requestHash: string, statusCode: number, body: unknown, trace?: TraceContext): Promise<void> {
    await this.ask<null>(customerId, key, { type: 'StoreAnswer', requestHash, statusCode, body }, trace);
  }

  async release(customerId: string, key: string, requestHash: string, trace?: TraceContext): Promise<void> {
    await this.ask<null>(customerId, key, { type: 'ReleaseClaim', requestHash, holder: this.lease.holder }, trace);
  }

  private async ask<T>(customerId: string, key: string, message: ClaimMessage, trace: TraceContext = rootContext()): Promise<T> {
    const id = claimIdFor(customerId, key);
    const shard = shardOfClaim(id, this.shards.count);
    let answer: Outcome<T>;
    try {
      // An ask's answer is the actor's reply, whatever its type: the claim actor replies Outcome<T>.
      answer = (await this.shards
        .link(shard)
        .call({ op: 'ask', target: { kind: IDEMPOTENCY, id }, message, from: 'http', trace, timeoutMs: this.askTimeoutMs }, this.askTimeoutMs + DEADLINE_MARGIN_MS)) as Outcome<T>;
    } catch (error) {
      refuseUnavailable(error);
    }
    if (!answer.ok) throw new Refused(answer.rejection);
    return answer.value;
  }
}
