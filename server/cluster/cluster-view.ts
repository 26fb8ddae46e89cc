import type { ClusterNode } from '../config.js';
import type { FleetShardLink, ShardStats } from '../shard-calls.js';
import type { OwnerMap } from './owner-map.js';
import { nodeAuthorization } from './node-credential.js';
import { LOCAL_SHARDS_PATH, type LocalShardReport, type LocalShardsAnswer, type ShardState } from './wire.js';

/** GET /cluster (docs/contract.md): who this node is, every node, and every shard's owner and state. */
export interface ClusterDocument {
  readonly node: ClusterNode;
  readonly nodes: readonly ClusterNode[];
  readonly shards: ReadonlyArray<{ readonly shard: number; readonly owner: string | null; readonly epoch: number; readonly state: ShardState; readonly offset: number | null }>;
}

/** How long GET /cluster waits for another node's report before it shows that node's shards unowned. */
const PEER_REPORT_TIMEOUT_MS = 2000;

/**
 * This node's own shards: serving when its worker is up, fenced when another producer took its
 * transactional id (it stays down here), restoring while it starts or restarts from its journal.
 */
export function localShardReports(links: readonly FleetShardLink[]): LocalShardReport[] {
  return links.map((link) => ({
    shard: link.shard,
    state: link.fenced ? 'fenced' : link.state === 'up' ? 'serving' : 'restoring',
    offset: link.state === 'up' ? offsetOf(link.stats()) : null,
  }));
}

/** Cluster mode: the Kafka offset of the shard's journal of record it applied up to; single process: its SQLite journal position. */
const offsetOf = (stats: ShardStats | null): number | null => (stats === null ? null : (stats.journalOfRecord?.offset ?? stats.journal.position));

export interface ClusterViewSource {
  readonly self: ClusterNode;
  readonly owners: OwnerMap;
  readonly localLinks: () => readonly FleetShardLink[];
  /** The node credential (server/cluster/node-credential.ts); null in single-process mode (no peers to ask). */
  readonly token: string | null;
}

/**
 * Asks every other node for its own shards (in parallel, each with a short deadline) and puts the
 * answers on the owner map. A node that does not answer leaves its shards `unowned`: nobody serves
 * them until it is back. Epochs are 0: the fixed owner map of this slice never moves a shard.
 */
export async function clusterView(source: ClusterViewSource): Promise<ClusterDocument> {
  const { self, owners } = source;
  const reports = new Map<number, LocalShardReport>();
  const answers = await Promise.all(owners.nodes.map((node) => (node.id === self.id ? Promise.resolve(localShardReports(source.localLinks())) : peerReports(node, source.token))));
  for (const [index, answer] of answers.entries()) {
    const node = owners.nodes[index]!;
    // Only what the owner map gives a node counts: a report for a shard it does not own is stale.
    for (const report of answer) if (owners.ownerOf(report.shard)?.id === node.id) reports.set(report.shard, report);
  }
  return {
    node: self,
    nodes: owners.nodes,
    shards: Array.from({ length: owners.shardCount }, (_, shard) => {
      const owner = owners.ownerOf(shard);
      const report = reports.get(shard);
      return { shard, owner: owner?.id ?? null, epoch: 0, state: report?.state ?? 'unowned', offset: report?.offset ?? null };
    }),
  };
}

async function peerReports(node: ClusterNode, token: string | null): Promise<readonly LocalShardReport[]> {
  if (token === null) return [];
  try {
    const response = await fetch(`${node.url}${LOCAL_SHARDS_PATH}`, { headers: { authorization: nodeAuthorization(token) }, signal: AbortSignal.timeout(PEER_REPORT_TIMEOUT_MS) });
    if (!response.ok) return [];
    const answer = (await response.json()) as LocalShardsAnswer;
    return answer.node === node.id ? answer.shards : [];
  } catch {
    return [];
  }
}
