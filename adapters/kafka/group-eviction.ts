import type { Kafka } from 'kafkajs';
import type { Logger } from '../../runtime/ground/logger.js';

/**
 * Asks a group's coordinator to drop another member now, instead of when its session runs out: a
 * LeaveGroup request naming that member (docs/cluster.md, "A dead node's member, dropped at once").
 *
 * The coordinator does not tie a member to the connection it joined on: LeaveGroup (v3 and later name
 * the leaving members in a list, KIP-345) removes the named member whoever sends it, and the group
 * rebalances at once, as after a clean leave. It is what Kafka's own admin tool does for a static member
 * (`RemoveMembersFromConsumerGroup`); kafkajs has no static membership (#884) and no such admin call, so
 * this sends the request through the broker object kafkajs already speaks to the coordinator with.
 *
 * Membership is a placement hint and never the fence, so a wrong eviction costs a rebalance, not a
 * double owner: the member that was dropped gets UNKNOWN_MEMBER_ID on its next heartbeat, rejoins
 * under a new id, and its shards start afresh (server/cluster/shard-placement.ts) behind the producers'
 * fence as after a pause.
 */

export type EvictionOutcome =
  /** The coordinator dropped the member. */
  | 'evicted'
  /** The group has no such member (it left, or was dropped, already). */
  | 'not-a-member'
  /** The installed kafkajs does not have the shape this reaches into: nothing was sent. */
  | 'unsupported';

interface CoordinatorBroker {
  leaveGroup(request: { groupId: string; memberId: string }): Promise<unknown>;
}
interface KafkajsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(request: { groupId: string }): Promise<CoordinatorBroker>;
}
type CreateCluster = (options: { allowAutoTopicCreation: boolean }) => KafkajsCluster;

/** kafkajs 2.2.4 keeps its cluster factory under a private symbol of the client (src/index.js). */
const CREATE_CLUSTER = 'private:Kafka:createCluster';

function clusterFactory(kafka: Kafka): CreateCluster | null {
  const key = Object.getOwnPropertySymbols(kafka).find((symbol) => symbol.description === CREATE_CLUSTER);
  const factory = key === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[key];
  return typeof factory === 'function' ? (factory as CreateCluster) : null;
}

/** The kafkajs error type of a member the group does not have. */
const UNKNOWN_MEMBER = 'UNKNOWN_MEMBER_ID';

export async function evictGroupMember(kafka: Kafka, groupId: string, memberId: string, logger: Logger): Promise<EvictionOutcome> {
  const create = clusterFactory(kafka);
  if (create === null) return 'unsupported';
  const cluster = create({ allowAutoTopicCreation: false });
  if (typeof cluster.findGroupCoordinator !== 'function') return 'unsupported';
  try {
    await cluster.connect();
    const coordinator = await cluster.findGroupCoordinator({ groupId });
    if (typeof coordinator.leaveGroup !== 'function') return 'unsupported';
    await coordinator.leaveGroup({ groupId, memberId });
    return 'evicted';
  } catch (error) {
    if ((error as { type?: unknown }).type === UNKNOWN_MEMBER) return 'not-a-member';
    throw error;
  } finally {
    await cluster.disconnect().catch((error: unknown) => logger.debug({ err: error }, 'eviction connection did not close cleanly'));
  }
}
