import type { ClusterNode } from '../config.js';

/**
 * Which node owns which shard. In a cluster: the owner records (server/cluster/routing-table.ts).
 * The fixed map (shard s on node s mod N) is the single process's one-node cluster.
 */
export interface OwnerMap {
  readonly shardCount: number;
  /** Null: the shard has no known owner (callers get 503 shard-unavailable at once). */
  ownerOf(shard: number): ClusterNode | null;
  shardsOf(nodeId: string): number[];
}

export function fixedOwnerMap(nodes: readonly ClusterNode[], shardCount: number): OwnerMap {
  if (nodes.length === 0) throw new Error('a cluster has at least one node');
  const ownerOf = (shard: number): ClusterNode | null => (Number.isInteger(shard) && shard >= 0 && shard < shardCount ? nodes[shard % nodes.length]! : null);
  return {
    shardCount,
    ownerOf,
    shardsOf: (nodeId) => Array.from({ length: shardCount }, (_, shard) => shard).filter((shard) => ownerOf(shard)?.id === nodeId),
  };
}
