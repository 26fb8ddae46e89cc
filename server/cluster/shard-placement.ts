import { createKafkaClient } from '../../adapters/kafka/client.js';
import { joinShardGroup, type ShardGroup } from '../../adapters/kafka/shard-group.js';
import type { Logger } from '../../runtime/ground/logger.js';
import type { ClusterConfig, ClusterNode } from '../config.js';
import type { ShardInit } from '../shard.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import { shardsTopic } from './shard-count.js';
import { placeShards } from './sticky-placement.js';

/**
 * The heartbeat interval of the shard group. The session timeout (FLEET_GROUP_SESSION_TIMEOUT_MS,
 * default 6 s, the smallest a default broker allows) is how long a node that stopped answering (paused,
 * cut off, its host gone) keeps its shards before the group moves them; a node whose process died is
 * dropped sooner, by its peers (peer-watch.ts). The interval is a sixth of the session, and at most
 * 300 ms: a member hears of a rebalance only in a heartbeat's answer, so after a dead peer's member is
 * dropped the interval is what the survivors wait before they rejoin, on average half of it (1 s at a
 * 6 s session measured 0.4–0.65 s). The cost is a few small requests a second per node.
 */
export const heartbeatIntervalMs = (sessionTimeoutMs: number): number => Math.max(100, Math.min(MAX_HEARTBEAT_INTERVAL_MS, Math.round(sessionTimeoutMs / 6)));
const MAX_HEARTBEAT_INTERVAL_MS = 300;

export const nodesGroup = (clusterName: string): string => `${clusterName}.nodes`;

export interface PlacementOptions {
  readonly cluster: ClusterConfig;
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly supervisor: ShardSupervisor;
  /** Every shard's start parameters, by shard number. */
  readonly inits: readonly ShardInit[];
  /** After each rebalance: the group's live members (server/cluster/node-directory.ts). */
  readonly onMembers: (nodes: readonly ClusterNode[]) => void;
  /** Every node seen in the group since this node started: the leader's shard homes count them all. */
  readonly known: () => readonly string[];
  /** This process start's id, in its claim (adapters/kafka/shard-group.ts). */
  readonly start: string;
  readonly logger: Logger;
}

export interface Placement {
  /** Resolves once the first assignment is applied (its shards serving, or left to their restart backoff). */
  readonly ready: Promise<void>;
  /** Leaves the group; the shards stay as they are (the supervisor stops them). */
  leave(): Promise<void>;
  /** Asks the group to drop the members of a dead process start of another node now (ShardGroup.evictStart). */
  evictStart(start: string): Promise<number>;
}

/**
 * A shard fenced here while the group still places it here: another process took its transactional id
 * out of turn (an owner that had not yet applied the move away, or a rogue producer). After this
 * pause, long enough for a previous owner to apply its own assignment, this node takes it back.
 */
export const FENCED_RETAKE_MS = 3000;

/**
 * Places this node's shards through the group (docs/cluster.md, "Ownership"): on each assignment, the
 * shards it lost are stopped (gracefully: they flush) and the shards it gained are started, each on its
 * own, at once (a slow start does not hold up a release). A gained shard's producer fences its
 * previous owner and restores from Kafka before it serves.
 *
 * A shard this node holds fenced is not claimed when the node rejoins. If the group still places it
 * here, the node takes it back after FENCED_RETAKE_MS: its new producer fences the other in turn.
 */
export async function placeShardsByGroup(options: PlacementOptions): Promise<Placement> {
  const { supervisor, cluster, logger } = options;
  const log = logger.child({ component: 'placement' });
  let assigned = new Set<number>();
  let member: string | null = null;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  const held = (): number[] => supervisor.links.filter((link) => !link.fenced).map((link) => link.shard);
  const start = (shard: number): Promise<void> => {
    const init = options.inits[shard];
    return init ? supervisor.acquire(init) : Promise.resolve();
  };

  const reconcile = (evicted: boolean): Promise<unknown> => {
    const lost = supervisor.links.filter((link) => !assigned.has(link.shard)).map((link) => link.shard);
    // A shard held fenced that the group gives (back) to this node starts afresh: its producer fences the
    // other. So does every shard it held before the group dropped it: others may have owned them since.
    const refenced = supervisor.links.filter((link) => (evicted || link.fenced) && assigned.has(link.shard)).map((link) => link.shard);
    const gained = [...assigned].filter((shard) => !supervisor.has(shard) && !refenced.includes(shard));
    if (lost.length > 0 || gained.length > 0 || refenced.length > 0) log.info({ lost, gained, refenced }, 'shards moving');
    return Promise.all([
      ...lost.map((shard) => supervisor.release(shard)),
      ...gained.map(start),
      ...refenced.map((shard) => supervisor.release(shard).then(() => (assigned.has(shard) ? start(shard) : undefined))),
    ]).catch((error: unknown) => log.error({ err: error }, 'an assignment could not be applied'));
  };

  supervisor.onFenced((shard) => {
    setTimeout(() => {
      if (!assigned.has(shard) || !supervisor.links.some((link) => link.shard === shard && link.fenced)) return;
      log.warn({ shard }, 'shard fenced while the group places it here; taking it back');
      void supervisor.release(shard).then(() => (assigned.has(shard) ? start(shard) : undefined));
    }, FENCED_RETAKE_MS).unref();
  });

  const kafka = createKafkaClient({ brokers: options.brokers, clientId: `${options.clientId}-${cluster.node.id}-group`, logger });
  const group: ShardGroup = await joinShardGroup({
    kafka,
    groupId: nodesGroup(cluster.name),
    topic: shardsTopic(cluster.name),
    node: cluster.node.id,
    url: cluster.node.url,
    start: options.start,
    held,
    known: () => options.known(),
    place: placeShards,
    onMembers: (nodes) => options.onMembers(nodes.map(({ node, url }) => ({ id: node, url }))),
    onAssignment: (shards, memberId) => {
      assigned = new Set(shards);
      const evicted = member !== null && member !== memberId;
      if (evicted) log.warn({ shards: supervisor.links.map((link) => link.shard) }, 'the group dropped this node meanwhile: the shards it held start afresh or stop');
      member = memberId;
      void reconcile(evicted).then(() => markReady());
    },
    sessionTimeoutMs: cluster.sessionTimeoutMs,
    heartbeatIntervalMs: heartbeatIntervalMs(cluster.sessionTimeoutMs),
    logger,
  });
  return { ready, leave: () => group.leave(), evictStart: (start) => group.evictStart(start) };
}
