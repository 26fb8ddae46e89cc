import type { GroupMember } from '../../adapters/kafka/shard-group.js';

/** Natural order of node ids (n2 before n10), the same on every node. */
export const byNodeId = new Intl.Collator('en', { numeric: true });

/**
 * The shard group's placement rule (pure; the leader runs it on every rebalance, docs/cluster.md):
 *
 * 1. Every member gets a target count: the shards divided evenly, the remainder going to the members
 *    that hold the most already (so the fewest shards move).
 * 2. A member keeps the shards it holds, up to its target. One over its target gives away first the
 *    shards whose home node (below) is in the group, then its highest.
 * 3. A free shard goes to its home node if that node has room, else to the member with the most room.
 *
 * A shard's home is node `s mod N` of the cluster's known nodes in natural order of their ids (n1, n2,
 * …, n10). The known nodes are the members and every node any member has seen in the group since it
 * started (each member's `known`), so a node that is away keeps its homes: its shards go to the members
 * with most room meanwhile, and it takes them back when it returns (with evenly divisible shards,
 * exactly the ones balance must move anyway). With every node up and nothing held, nodes n1…nN hold
 * shard s on n(s mod N + 1). No list of the nodes is configured: a node the running members have never
 * seen is not counted, and a node gone for good is forgotten once every member has restarted.
 */
export function placeShards(members: readonly GroupMember[], shardCount: number): Map<string, number[]> {
  const placed = new Map<string, number[]>(members.map((member) => [member.memberId, []]));
  if (members.length === 0) return placed;
  const sorted = [...members].sort((a, b) => byNodeId.compare(a.node, b.node) || a.memberId.localeCompare(b.memberId));
  const nodeOrder = [...new Set([...sorted.map((member) => member.node), ...sorted.flatMap((member) => member.known)])].sort((a, b) => byNodeId.compare(a, b));
  const memberOfNode = new Map<string, string>();
  for (const member of sorted) if (!memberOfNode.has(member.node)) memberOfNode.set(member.node, member.memberId);
  // Undefined: the home node is away (the shard goes to the member with most room).
  const homeOf = (shard: number): string | undefined => memberOfNode.get(nodeOrder[shard % nodeOrder.length]!);

  // A shard claimed twice (a member that rejoined before its old membership expired) stays with the first claimant.
  const claimed = new Set<number>();
  const holds = new Map<string, number[]>();
  for (const member of sorted) {
    const own = [...new Set(member.held)].filter((shard) => shard >= 0 && shard < shardCount && !claimed.has(shard)).sort((a, b) => a - b);
    for (const shard of own) claimed.add(shard);
    holds.set(member.memberId, own);
  }

  const base = Math.floor(shardCount / sorted.length);
  let extra = shardCount % sorted.length;
  const target = new Map<string, number>();
  for (const member of [...sorted].sort((a, b) => holds.get(b.memberId)!.length - holds.get(a.memberId)!.length)) {
    target.set(member.memberId, base + (extra > 0 ? 1 : 0));
    if (extra > 0) extra -= 1;
  }

  for (const member of sorted) {
    const own = holds.get(member.memberId)!;
    const limit = target.get(member.memberId)!;
    // Keep first the shards whose home is this member or absent; give away the ones a present home node wants.
    const keepOrder = [...own].sort((a, b) => awayRank(a) - awayRank(b) || a - b);
    placed.set(member.memberId, keepOrder.slice(0, limit));
    function awayRank(shard: number): number {
      const home = homeOf(shard);
      return home === undefined || home === member.memberId ? 0 : 1;
    }
  }

  const taken = new Set([...placed.values()].flat());
  const room = (memberId: string): number => target.get(memberId)! - placed.get(memberId)!.length;
  for (let shard = 0; shard < shardCount; shard += 1) {
    if (taken.has(shard)) continue;
    const home = homeOf(shard);
    const to = home !== undefined && room(home) > 0 ? home : sorted.map((member) => member.memberId).reduce((best, memberId) => (room(memberId) > room(best) ? memberId : best));
    placed.get(to)!.push(shard);
  }
  for (const shards of placed.values()) shards.sort((a, b) => a - b);
  return placed;
}
