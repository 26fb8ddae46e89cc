import { ShardCallError, ShardUnavailableError } from '../../runtime/kernel/shard-link.js';
import type { ClusterNode } from '../config.js';
import type { FleetShardCaller, ShardCall, ShardEvent } from '../shard-calls.js';
import { nodeAuthorization } from './node-credential.js';
import { shardCallPath, type ShardCallAnswer, type ShardCallRequest } from './wire.js';

/** The owner gets the caller's deadline; the caller waits this much longer for the answer to travel back. */
const NETWORK_MARGIN_MS = 1000;

export interface RemoteShardLinkOptions {
  readonly shard: number;
  readonly owner: ClusterNode;
  readonly token: string;
  readonly shardCount: number;
}

/**
 * A shard that another node owns, behind the same interface as a worker's link: a call is posted to
 * the owner's internal route and answered as the owner's own link answered it. An owner that cannot be
 * reached, or that does not serve the shard, fails the call with ShardUnavailableError at once (the
 * API's 503 shard-unavailable); nothing waits past the deadline.
 *
 * Live events (GET /events?follow) come from this node's own shards only in this slice: onEvents and
 * onUp never fire for a remote shard (docs/cluster.md, "What remains").
 */
export class RemoteShardLink implements FleetShardCaller {
  readonly shard: number;

  constructor(private readonly options: RemoteShardLinkOptions) {
    this.shard = options.shard;
  }

  get owner(): ClusterNode {
    return this.options.owner;
  }

  async call<T>(call: ShardCall, deadlineMs: number): Promise<T> {
    const { owner, token, shardCount } = this.options;
    const request: ShardCallRequest = { call, deadlineMs, shards: shardCount };
    let response: Response;
    try {
      response = await fetch(`${owner.url}${shardCallPath(this.shard)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: nodeAuthorization(token) },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(deadlineMs + NETWORK_MARGIN_MS),
      });
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
      throw new ShardUnavailableError(this.shard, timedOut ? `no answer from its owner ${owner.id} within ${deadlineMs} ms` : `its owner ${owner.id} (${owner.url}) cannot be reached`);
    }
    let answer: ShardCallAnswer;
    try {
      answer = (await response.json()) as ShardCallAnswer;
    } catch {
      throw new ShardUnavailableError(this.shard, `its owner ${owner.id} answered ${response.status} without a shard answer`);
    }
    if (response.status !== 200) throw new ShardCallError(`shard ${this.shard}: its owner ${owner.id} refused the call (${response.status}: ${'reason' in answer ? answer.reason : JSON.stringify(answer)})`);
    if (answer.ok) return answer.value as T;
    if (answer.failure === 'unavailable') throw new ShardUnavailableError(this.shard, `${answer.reason} (on ${owner.id})`);
    throw new ShardCallError(`shard ${this.shard} on ${owner.id}: ${answer.reason}`);
  }

  onEvents(_listener: (events: readonly ShardEvent[]) => void): () => void {
    return () => {};
  }

  onUp(_listener: () => void): () => void {
    return () => {};
  }

  followEvents(_on: boolean): void {}
}
