import { AssignerProtocol, type Kafka, type PartitionAssigner } from 'kafkajs';
import { evictGroupMember } from './group-eviction.js';
import type { Logger } from '../../runtime/ground/logger.js';

/**
 * Placement of a cluster's shards through a Kafka consumer group (docs/cluster.md, "Ownership"): every
 * node is a member of `<name>.nodes` over `<name>.shards`, one partition per shard. The group's leader
 * runs a custom assigner. Each member's subscription `userData` names its node, the URL the other nodes
 * reach it at, and the shards it holds now (kafkajs 2.2.4: member userData reaches the leader's
 * `assign`, src/consumer/assignerProtocol.js), so the leader can keep them where they are. The
 * assignment's own userData does not reach the members (consumerGroup.js keeps only `.assignment`): the
 * routing table is built elsewhere.
 *
 * The members are also the cluster's node list: after each rebalance (every join or leave, and a member
 * dropped past its session, makes one, which every live member completes) each member reads the group's
 * members and their userData from the coordinator (DescribeGroups) and hands them to `onMembers`.
 *
 * Membership decides placement only; it is not the fence. A member that was paused past its session
 * does not know it lost its shards: the next owner's transactional producer fences it.
 */

/** One member as the leader sees it. */
export interface GroupMember {
  readonly memberId: string;
  readonly node: string;
  readonly held: readonly number[];
  /** Every node this member has seen in the group since it started (itself included): the cluster's nodes, also those away now. */
  readonly known: readonly string[];
}

/** A node of the group, as its members describe themselves. */
export interface GroupNode {
  readonly node: string;
  readonly url: string;
}

/** A member of the group as it describes itself, with the process start it belongs to. */
interface DescribedMember {
  readonly memberId: string;
  readonly claim: Claim | null;
}

/** The placement rule (pure): which shards each member gets, by member id. */
export type PlaceShards = (members: readonly GroupMember[], shardCount: number) => ReadonlyMap<string, readonly number[]>;

export interface ShardGroupOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly topic: string;
  readonly node: string;
  /** Where the other nodes reach this one (FLEET_ADVERTISED_URL): the node list is the group's members. */
  readonly url: string;
  /** This process start's own id (a new one each start): what a peer names when it asks to drop a dead one's member. */
  readonly start: string;
  /** The shards this node holds when it (re)joins: its claim to keep them. */
  readonly held: () => readonly number[];
  /** Every node this node has seen in the group since it started. */
  readonly known: () => readonly string[];
  readonly place: PlaceShards;
  /**
   * Each completed rebalance: the shards this node is to run now, and its member id (a new id means the
   * group dropped this node meanwhile, e.g. it was paused past its session, and took in a new member).
   */
  readonly onAssignment: (shards: readonly number[], memberId: string) => void;
  /** After each rebalance: the group's members (this node included), once the coordinator describes them. */
  readonly onMembers: (nodes: readonly GroupNode[]) => void;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly logger: Logger;
}

export interface ShardGroup {
  /** Leaves the group (the others rebalance at once, without waiting out the session). */
  leave(): Promise<void>;
  /**
   * Asks the coordinator to drop the members of another node's process start, known dead (its process
   * is gone: server/cluster/peer-watch.ts), so the group rebalances now instead of after its session.
   * The members dropped; none when the group has no member of that start, or kafkajs cannot.
   */
  evictStart(start: string): Promise<number>;
}

const ASSIGNER = 'fleet-sticky-shards';

/** Describing the group after a join: every half second, for up to 30 s (a rebalance takes a few). */
const DESCRIBE_RETRY_MS = 500;
const DESCRIBE_ATTEMPTS = 60;

interface Claim {
  readonly node: string;
  /** Absent in a claim of a node that predates the node list from the group: it is then not listed. */
  readonly url?: string;
  /** The member's process start (absent from nodes that predate dead-peer eviction: never evicted). */
  readonly start?: string;
  readonly held: readonly number[];
  readonly known?: readonly string[];
}

function decodeClaim(metadata: Buffer): Claim | null {
  try {
    const { userData } = AssignerProtocol.MemberMetadata.decode(metadata) ?? { userData: Buffer.alloc(0) };
    const claim = JSON.parse(userData.toString('utf8')) as Partial<Claim>;
    if (typeof claim.node !== 'string' || !Array.isArray(claim.held)) return null;
    return {
      node: claim.node,
      ...(typeof claim.url === 'string' && { url: claim.url }),
      ...(typeof claim.start === 'string' && { start: claim.start }),
      held: claim.held.filter((shard): shard is number => Number.isInteger(shard)),
      known: Array.isArray(claim.known) ? claim.known.filter((node): node is string => typeof node === 'string') : [],
    };
  } catch {
    return null;
  }
}

/** The group's members as nodes (one per node id: a node that rejoined may briefly be there twice, with the same URL). */
export function groupNodes(memberMetadata: readonly Buffer[]): GroupNode[] {
  const nodes = new Map<string, GroupNode>();
  for (const metadata of memberMetadata) {
    const claim = decodeClaim(metadata);
    if (claim?.url !== undefined && !nodes.has(claim.node)) nodes.set(claim.node, { node: claim.node, url: claim.url });
  }
  return [...nodes.values()];
}

function stickyAssigner(options: ShardGroupOptions): PartitionAssigner {
  const { topic, place } = options;
  return ({ cluster }) => ({
    name: ASSIGNER,
    version: 1,
    protocol: ({ topics }) => ({
      name: ASSIGNER,
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.from(JSON.stringify({ node: options.node, url: options.url, start: options.start, held: options.held(), known: options.known() } satisfies Claim)) }),
    }),
    assign: async ({ members }) => {
      const shardCount = cluster.findTopicPartitionMetadata(topic).length;
      const claims = members.map((member): GroupMember => {
        const claim = decodeClaim(member.memberMetadata);
        return { memberId: member.memberId, node: claim?.node ?? member.memberId, held: claim?.held ?? [], known: claim?.known ?? [] };
      });
      const placed = place(claims, shardCount);
      return members.map((member) => ({
        memberId: member.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: { [topic]: [...(placed.get(member.memberId) ?? [])] }, userData: Buffer.alloc(0) }),
      }));
    },
  });
}

/** Joins the group and keeps the node in it; every assignment goes to `onAssignment`. */
export async function joinShardGroup(options: ShardGroupOptions): Promise<ShardGroup> {
  const log = options.logger.child({ component: 'shard-group' });
  const consumer = options.kafka.consumer({
    groupId: options.groupId,
    partitionAssigners: [stickyAssigner(options)],
    sessionTimeout: options.sessionTimeoutMs,
    heartbeatInterval: options.heartbeatIntervalMs,
    rebalanceTimeout: Math.max(10_000, options.sessionTimeoutMs),
    // The topic carries no records: a short fetch wait keeps the loop (and its heartbeats, which run
    // between fetches, kafkajs #1083/#447) turning well inside the session.
    maxWaitTimeInMs: Math.min(500, options.heartbeatIntervalMs),
    allowAutoTopicCreation: false,
  });
  const admin = options.kafka.admin();
  let joins = 0;
  let closed = false;
  /** The members with their claims as last described while Stable: whose process each member is, during a rebalance too. */
  let lastDescribed: readonly DescribedMember[] = [];
  const described = (members: ReadonlyArray<{ memberId: string; memberMetadata: Buffer }>): DescribedMember[] =>
    members.map((member) => ({ memberId: member.memberId, claim: decodeClaim(member.memberMetadata) }));
  /**
   * The members, as the coordinator describes them: it gives their metadata only while the group is
   * Stable, which it is right after this member's join unless another rebalance began; then this retries
   * until that one is done (its own join asks again, and supersedes this one).
   */
  const describeMembers = async (join: number): Promise<void> => {
    for (let attempt = 0; attempt < DESCRIBE_ATTEMPTS && join === joins && !closed; attempt += 1) {
      try {
        const { groups } = await admin.describeGroups([options.groupId]);
        const group = groups[0];
        if (group?.state === 'Stable') {
          lastDescribed = described(group.members);
          if (join === joins) options.onMembers(groupNodes(group.members.map((member) => member.memberMetadata)));
          return;
        }
      } catch (error) {
        log.debug({ err: error }, 'shard group not described; trying again');
      }
      await new Promise((resolve) => setTimeout(resolve, DESCRIBE_RETRY_MS).unref());
    }
  };
  /**
   * The members with their claims: as the coordinator describes them now if the group is Stable (only
   * then does it give their metadata), else as last described while it was. A member dropped meanwhile
   * answers not-a-member; a member that joined in the rebalance under way is not named, and it is a
   * new start anyway.
   */
  const membersNow = async (): Promise<readonly DescribedMember[]> => {
    const { groups } = await admin.describeGroups([options.groupId]);
    const group = groups[0];
    if (group?.state !== 'Stable') return lastDescribed;
    lastDescribed = described(group.members);
    return lastDescribed;
  };
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const shards = [...(payload.memberAssignment[options.topic] ?? [])].sort((a, b) => a - b);
    log.info({ shards, leader: payload.isLeader, memberId: payload.memberId }, 'shard group assignment');
    options.onAssignment(shards, payload.memberId);
    joins += 1;
    void describeMembers(joins);
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    log.error({ err: payload.error, restart: payload.restart }, 'shard group consumer crashed');
  });
  await admin.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [options.topic], fromBeginning: false });
  // Nothing is ever produced to the topic: the group exists for its assignment.
  await consumer.run({ eachBatch: async () => {} });
  return {
    evictStart: async (start) => {
      if (start === options.start) return 0;
      const members = await membersNow();
      let evicted = 0;
      for (const { memberId } of members.filter((member) => member.claim?.start === start)) {
        const outcome = await evictGroupMember(options.kafka, options.groupId, memberId, log);
        log.warn({ memberId, start, outcome }, 'asked the group coordinator to drop a dead process\'s member');
        if (outcome === 'evicted') evicted += 1;
      }
      return evicted;
    },
    leave: async () => {
      closed = true;
      await consumer.disconnect().catch((error: unknown) => log.warn({ err: error }, 'shard group consumer did not leave cleanly'));
      await admin.disconnect().catch(() => undefined);
    },
  };
}
