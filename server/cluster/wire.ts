import type { ShardCall } from '../shard-calls.js';

/**
 * What nodes send each other (server/cluster/node-routes.ts, node-channel-server.ts): the same plain-data shard call
 * the worker threads get (server/shard-calls.ts), as JSON. Internal: never in the OpenAPI document.
 */
export const SHARD_CALL_PATH = '/internal/shards/:shard/call';
export const LOCAL_SHARDS_PATH = '/internal/shards';
/** PUT: an operator's new operating area, taken by another node, for this node's file and shards (server/cluster/area-peers.ts). */
export const OPERATING_AREA_PATH = '/internal/operating-area';
export const shardCallPath = (shard: number): string => `/internal/shards/${shard}/call`;
/**
 * The same calls over one long-lived socket per pair of nodes (server/cluster/node-channel.ts): an
 * HTTP upgrade to this protocol on this path, then frames (server/cluster/channel-frames.ts).
 */
export const NODE_CHANNEL_PATH = '/internal/channel';
export const NODE_CHANNEL_PROTOCOL = 'fleetactors-shard-calls/1';
/**
 * In the upgrade's 101: the answering node's process start (a new id each start). A peer that loses the
 * channel knows whose process it was talking to, and names exactly that one if it asks the group to
 * drop a dead process's member (server/cluster/peer-watch.ts). Older nodes send none: never evicted.
 */
export const NODE_START_HEADER = 'fleet-node-start';

export interface ShardCallRequest {
  readonly call: ShardCall;
  /** How long the owner's own link may wait for its shard. */
  readonly deadlineMs: number;
  /** The caller's shard count: a node of a cluster with another count is refused by name. */
  readonly shards: number;
}

/**
 * `unavailable`: the shard is not served there (down, restarting, fenced): the caller answers 503.
 * `not-owner`: that node does not run the shard (it moved): the call was not executed, and the caller
 * refreshes its routing table and may send it to the new owner.
 */
export type ShardCallAnswer =
  | { readonly ok: true; readonly value?: unknown }
  | { readonly ok: false; readonly failure: 'unavailable' | 'not-owner' | 'error'; readonly reason: string };

export type ShardState = 'restoring' | 'serving' | 'fenced' | 'unowned';

export interface LocalShardReport {
  readonly shard: number;
  readonly state: ShardState;
  /** The shard's journal position (its SQLite journal in this slice); null while it is not up. */
  readonly offset: number | null;
}

export interface LocalShardsAnswer {
  readonly node: string;
  readonly shards: readonly LocalShardReport[];
}
