import type { ClusterNode } from '../config.js';

/**
 * Which node owns which shard. This slice's map is fixed: shard s belongs to node s mod N of
 * FLEET_CLUSTER_NODES (the same list, in the same order, on every node), so every node computes the
 * same map without asking anyone. docs/cluster.md says what replaces it (owner records in Kafka).
 */
export interface OwnerMap {
  readonly shardCount: number;
  readonly nodes: readonly ClusterNode[];
  /** Null: the shard has no known owner (callers get 503 shard-unavailable at once). */
  ownerOf(shard: number): ClusterNode | null;
  shardsOf(nodeId: string): number[];
}

export function fixedOwnerMap(nodes: readonly ClusterNode[], shardCount: number): OwnerMap {
  if (nodes.length === 0) throw new Error('a cluster has at least one node');
  const ownerOf = (shard: number): ClusterNode | null => (Number.isInteger(shard) && shard >= 0 && shard < shardCount ? nodes[shard % nodes.length]! : null);
  return {
    shardCount,
    nodes,
    ownerOf,
    shardsOf: (nodeId) => Array.from({ length: shardCount }, (_, shard) => shard).filter((shard) => ownerOf(shard)?.id === nodeId),
  };
}
