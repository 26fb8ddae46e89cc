import { z } from 'zod';
import { ShardUnavailableError } from '../../runtime/kernel/shard-link.js';
import type { ShardCall } from '../shard-calls.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import type { ShardCallAnswer } from './wire.js';

/** The longest a forwarded call may ask its owner to wait (the router's longest deadline is well under it). */
const MAX_FORWARDED_DEADLINE_MS = 10 * 60_000;

/**
 * Only what a client's request can become: commands to actors and reads. `seed` and `stop` are the
 * owning node's own business and are never accepted from another node.
 */
const forwardedCall = z.object({
  call: z.object({ op: z.enum(['ask', 'read', 'stats']) }).passthrough(),
  deadlineMs: z.number().int().positive().max(MAX_FORWARDED_DEADLINE_MS),
  shards: z.number().int().positive(),
});

export interface ShardCallHost {
  readonly nodeId: string;
  readonly shardCount: number;
  /** This node's shards (in cluster mode only those it owns). */
  readonly local: ShardSupervisor;
}

/** Not an envelope another node sends (a bug or a stranger with the credential): the HTTP route answers 400, the channel its 400 frame. */
export const NOT_AN_ENVELOPE = 'Not a shard call envelope.';

/**
 * Another node's shard call, however it came (HTTP or a channel): run on this node's worker if it owns
 * the shard, answered as that worker answered it; null for a body that is not an envelope.
 */
export async function answerShardCall(host: ShardCallHost, shard: number, body: unknown): Promise<ShardCallAnswer | null> {
  const parsed = forwardedCall.safeParse(body);
  if (!parsed.success || !Number.isInteger(shard) || shard < 0) return null;
  const { call, deadlineMs, shards } = parsed.data;
  if (shards !== host.shardCount) {
    // FLEET_SHARDS is fixed with the cluster: a node with another count places entities elsewhere.
    return { ok: false, failure: 'error', reason: `FLEET_SHARDS differs between nodes: the caller has ${shards}, node ${host.nodeId} has ${host.shardCount}` };
  }
  if (!host.local.has(shard)) {
    // A stale owner map on the caller (or a shard that moved): it refreshes and retries, the client gets 503 now.
    return { ok: false, failure: 'not-owner', reason: `node ${host.nodeId} does not own it` };
  }
  try {
    return { ok: true, value: await host.local.link(shard).call(call as unknown as ShardCall, deadlineMs) };
  } catch (error) {
    return error instanceof ShardUnavailableError ? { ok: false, failure: 'unavailable', reason: error.reason } : { ok: false, failure: 'error', reason: error instanceof Error ? error.message : String(error) };
  }
}
