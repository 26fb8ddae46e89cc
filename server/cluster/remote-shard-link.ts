import { ShardCallError, ShardUnavailableError } from '../../runtime/kernel/shard-link.js';
import type { ClusterNode } from '../config.js';
import type { AnswerOf } from '../../runtime/kernel/shard-protocol.js';
import type { FleetExchange, FleetShardCaller, ShardCall, ShardEvent } from '../shard-calls.js';
import { nodeAuthorization } from './node-credential.js';
import { NodeCallFailed, type NodeAnswer } from './node-client.js';
import { callShardOnNode } from './node-channel.js';
import { RemoteEventFollower } from './remote-events.js';
import type { ShardCallAnswer, ShardCallRequest } from './wire.js';

/** The owner gets the caller's deadline; the caller waits this much longer for the answer to travel back. */
const NETWORK_MARGIN_MS = 1000;

export interface RemoteShardLinkOptions {
  readonly shard: number;
  readonly owner: ClusterNode;
  readonly token: string;
  readonly shardCount: number;
}

/**
 * A shard that another node owns, behind the same interface as a worker's link: a call goes to the
 * owner over its channel (server/cluster/node-channel.ts) and is answered as the owner's own link
 * answered it. An owner that cannot be reached, or that does not serve the shard, fails the call with ShardUnavailableError at once (the
 * API's 503 shard-unavailable); nothing waits past the deadline.
 *
 * Live events (GET /events as a stream): while followed, the link keeps an ask for the shard's new
 * events open at the owner (a long poll, server/cluster/remote-events.ts) and pushes what comes, as a
 * worker pushes its commits.
 */
export class RemoteShardLink implements FleetShardCaller {
  readonly shard: number;
  private readonly eventListeners = new Set<(events: readonly ShardEvent[]) => void>();
  private readonly upListeners = new Set<() => void>();
  private readonly follower: RemoteEventFollower;

  constructor(private readonly options: RemoteShardLinkOptions) {
    this.shard = options.shard;
    this.follower = new RemoteEventFollower(
      (call, deadlineMs) => this.call(call, deadlineMs),
      (events) => {
        for (const listener of this.eventListeners) listener(events);
      },
      () => {
        for (const listener of this.upListeners) listener();
      },
    );
  }

  get owner(): ClusterNode {
    return this.options.owner;
  }

  async call<C extends ShardCall>(call: C, deadlineMs: number): Promise<AnswerOf<FleetExchange, C>> {
    const { owner, token, shardCount } = this.options;
    const request: ShardCallRequest = { call, deadlineMs, shards: shardCount };
    let response: NodeAnswer;
    try {
      response = await callShardOnNode(owner.url, this.shard, JSON.stringify(request), nodeAuthorization(token), deadlineMs + NETWORK_MARGIN_MS);
    } catch (error) {
      const failed = error instanceof NodeCallFailed ? error : null;
      const reason = failed?.timedOut === true ? `no answer from its owner ${owner.id} within ${deadlineMs} ms` : `its owner ${owner.id} (${owner.url}) cannot be reached`;
      // Refused: the call never reached the node, so it may go to the shard's next owner.
      throw failed?.refused === true ? new StaleOwnerError(this.shard, reason) : new ShardUnavailableError(this.shard, reason);
    }
    let answer: ShardCallAnswer;
    try {
      answer = JSON.parse(response.text) as ShardCallAnswer;
    } catch {
      throw new ShardUnavailableError(this.shard, `its owner ${owner.id} answered ${response.status} without a shard answer`);
    }
    if (response.status !== 200) throw new ShardCallError(`shard ${this.shard}: its owner ${owner.id} refused the call (${response.status}: ${'reason' in answer ? answer.reason : JSON.stringify(answer)})`);
    // The owner answered the same exchange its worker would: the wire carries it as JSON, typed by the call.
    if (answer.ok) return answer.value as AnswerOf<FleetExchange, C>;
    if (answer.failure === 'not-owner') throw new StaleOwnerError(this.shard, `${answer.reason} (on ${owner.id})`);
    if (answer.failure === 'unavailable') throw new ShardUnavailableError(this.shard, `${answer.reason} (on ${owner.id})`);
    throw new ShardCallError(`shard ${this.shard} on ${owner.id}: ${answer.reason}`);
  }

  onEvents(listener: (events: readonly ShardEvent[]) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Fired when live following starts (and the streams should re-read from their cursors). */
  onUp(listener: () => void): () => void {
    this.upListeners.add(listener);
    return () => this.upListeners.delete(listener);
  }

  followEvents(on: boolean): void {
    this.follower.follow(on);
  }
}

/**
 * The node asked does not run the shard (it moved), or refused the connection: the call was not
 * executed anywhere, so the caller may refresh its routing table and send it to the new owner.
 */
export class StaleOwnerError extends ShardUnavailableError {}
