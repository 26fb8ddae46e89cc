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
  readonly nodes: readonly ClusterNode[];
  readonly shardCount: number;
  readonly localLinks: () => readonly FleetShardLink[];
  /** The node credential (server/cluster/node-credential.ts); null in single-process mode (no peers to ask). */
  readonly token: string | null;
}

/** Per shard, the node that runs it and its report. */
export type ShardReports = Map<number, { readonly node: ClusterNode; readonly report: LocalShardReport }>;

/** A shard two nodes report (a move in progress): the one serving it counts, then the one restoring it. */
const RANK: Record<ShardState, number> = { serving: 3, restoring: 2, fenced: 1, unowned: 0 };

/**
 * Asks every node (in parallel, each with a short deadline) which shards it runs. A node that does not
 * answer runs nothing as far as callers know: its shards are `unowned` until another node takes them.
 */
export async function collectReports(source: Omit<ClusterViewSource, 'shardCount'>): Promise<ShardReports> {
  const { self } = source;
  const answers = await Promise.all(source.nodes.map((node) => (node.id === self.id ? Promise.resolve(localShardReports(source.localLinks())) : peerReports(node, source.token))));
  const reports: ShardReports = new Map();
  for (const [index, answer] of answers.entries()) {
    const node = source.nodes[index]!;
    for (const report of answer) {
      const known = reports.get(report.shard);
      if (!known || RANK[report.state] > RANK[known.report.state]) reports.set(report.shard, { node, report });
    }
  }
  return reports;
}

/**
 * GET /cluster: every shard with the node that runs it, as the nodes report it. Epochs are 0 in this
 * slice (docs/cluster.md: the owner records will carry them).
 */
export async function clusterView(source: ClusterViewSource): Promise<ClusterDocument> {
  const reports = await collectReports(source);
  return {
    node: source.self,
    nodes: source.nodes,
    shards: Array.from({ length: source.shardCount }, (_, shard) => {
      const entry = reports.get(shard);
      return { shard, owner: entry?.node.id ?? null, epoch: 0, state: entry?.report.state ?? 'unowned', offset: entry?.report.offset ?? null };
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
