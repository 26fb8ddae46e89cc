import type { OwnerRecord } from '../../adapters/kafka/shard-owners.js';
import type { ClusterNode } from '../config.js';
import type { FleetShardLink, ShardStats } from '../shard-calls.js';
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
  /** The live nodes (in a cluster: the shard group's members, server/cluster/node-directory.ts). */
  readonly nodes: readonly ClusterNode[];
  readonly shardCount: number;
  readonly localLinks: () => readonly FleetShardLink[];
  /** The node credential (server/cluster/node-credential.ts); null in single-process mode (no peers to ask). */
  readonly token: string | null;
  /** Cluster mode: each shard's owner record (its owner and epoch); absent: owners are whoever runs the shard. */
  readonly records?: (shard: number) => OwnerRecord | null;
}

/**
 * GET /cluster: in a cluster, every shard's owner and epoch from its owner record, with the state that
 * owner reports for it: `unowned` when the owner does not answer or no longer runs it (a move under
 * way), or when no owner ever wrote a record. The single process: its own shards, epoch 0.
 */
export async function clusterView(source: ClusterViewSource): Promise<ClusterDocument> {
  const running = await collectPerNode(source);
  return {
    node: source.self,
    nodes: source.nodes,
    shards: Array.from({ length: source.shardCount }, (_, shard) => {
      const record = source.records ? source.records(shard) : { owner: source.self.id, epoch: 0 };
      const report = record ? running.get(record.owner)?.get(shard) : undefined;
      return { shard, owner: record?.owner ?? null, epoch: record?.epoch ?? 0, state: report?.state ?? 'unowned', offset: report?.offset ?? null };
    }),
  };
}

/**
 * Per node, the shards it says it runs. Asked: every live node, and every owner a record names that the
 * node list does not (yet) hold, at the URL of its record (a node that just joined, before this node's
 * view of the group caught up; one that is gone simply does not answer).
 */
async function collectPerNode(source: ClusterViewSource): Promise<Map<string, Map<number, LocalShardReport>>> {
  const asked = new Map(source.nodes.map((node) => [node.id, node]));
  for (let shard = 0; shard < source.shardCount; shard += 1) {
    const record = source.records?.(shard);
    if (record && !asked.has(record.owner)) asked.set(record.owner, { id: record.owner, url: record.url });
  }
  const nodes = [...asked.values()];
  const answers = await Promise.all(nodes.map((node) => (node.id === source.self.id ? Promise.resolve(localShardReports(source.localLinks())) : peerReports(node, source.token))));
  return new Map(nodes.map((node, index) => [node.id, new Map((answers[index] ?? []).map((report) => [report.shard, report]))]));
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
