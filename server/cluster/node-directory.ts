import type { ClusterNode } from '../config.js';
import { byNodeId } from './sticky-placement.js';

/**
 * The cluster's live nodes (docs/cluster.md, "Membership"): the members of the shard group, as the
 * group coordinator last described them after a rebalance (adapters/kafka/shard-group.ts), each with
 * the URL it advertised. No list in the configuration: a node that joins is known once the group took
 * it in, and one that leaves (or was dropped past its session) once the group let it go. Until this
 * node's first rebalance it knows only itself.
 */
export class NodeDirectory {
  private members: readonly ClusterNode[];
  /** Every node id seen in the group since this node started (the shard homes count them, server/cluster/sticky-placement.ts). */
  private readonly seen = new Set<string>();

  constructor(readonly self: ClusterNode) {
    this.members = [self];
    this.seen.add(self.id);
  }

  /** The group's members as the coordinator described them; this node is always one of them. */
  update(members: readonly ClusterNode[]): void {
    const byId = new Map<string, ClusterNode>([[this.self.id, this.self]]);
    for (const member of members) if (!byId.has(member.id)) byId.set(member.id, { id: member.id, url: member.url.replace(/\/+$/, '') });
    this.members = [...byId.values()].sort((a, b) => byNodeId.compare(a.id, b.id));
    for (const id of byId.keys()) this.seen.add(id);
  }

  /** Every node seen in the group since this node started, away ones included, in natural order. */
  known(): string[] {
    return [...this.seen].sort((a, b) => byNodeId.compare(a, b));
  }

  /** Every live node, this one included, in natural order of their ids. */
  nodes(): readonly ClusterNode[] {
    return this.members;
  }

  /** Every live node but this one. */
  peers(): readonly ClusterNode[] {
    return this.members.filter((node) => node.id !== this.self.id);
  }
}
