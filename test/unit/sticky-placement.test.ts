import { describe, expect, it } from 'vitest';
import { placeShards } from '../../server/cluster/sticky-placement.js';

const member = (node: string, held: number[] = []) => ({ memberId: `${node}-m`, node, held });
const byNode = (placed: Map<string, number[]>) => Object.fromEntries([...placed.entries()].map(([memberId, shards]) => [memberId.replace(/-m$/, ''), shards]));

describe('the shard group\'s sticky placement', () => {
  it('places shards on their home node (s mod N of the node ids in natural order) when every node joins with nothing held', () => {
    expect(byNode(placeShards([member('n1'), member('n2'), member('n3')], 6))).toEqual({ n1: [0, 3], n2: [1, 4], n3: [2, 5] });
    expect(byNode(placeShards([member('n10'), member('n2'), member('n1')], 3))).toEqual({ n1: [0], n2: [1], n10: [2] });
  });

  it('places the same whichever member leads (the order the members arrive in)', () => {
    const members = [member('n3', [2]), member('n1'), member('n2', [1, 4])];
    expect(byNode(placeShards(members, 6))).toEqual(byNode(placeShards([...members].reverse(), 6)));
  });

  it('keeps what a member holds and moves only the shards of a node that left', () => {
    const placed = byNode(placeShards([member('n1', [0, 3]), member('n2', [1, 4])], 6));
    expect(placed.n1).toEqual(expect.arrayContaining([0, 3]));
    expect(placed.n2).toEqual(expect.arrayContaining([1, 4]));
    expect([...placed.n1!, ...placed.n2!].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(placed.n1).toHaveLength(3);
  });

  it('gives a node that comes back its own shards, and nothing else moves', () => {
    const placed = byNode(placeShards([member('n1', [0, 2, 3]), member('n2', [1, 4, 5]), member('n3')], 6));
    expect(placed).toEqual({ n1: [0, 3], n2: [1, 4], n3: [2, 5] });
  });

  it('keeps a first node that holds every shard from giving away more than balance needs', () => {
    const placed = byNode(placeShards([member('n1', [0, 1, 2, 3, 4, 5]), member('n2')], 6));
    expect(placed.n1).toHaveLength(3);
    expect(placed.n2).toHaveLength(3);
    // Homes are counted over the nodes present: with two, n2's are the odd shards.
    expect(placed.n2).toEqual([1, 3, 5]);
  });

  it('assigns each shard once even when two members claim it', () => {
    const placed = byNode(placeShards([member('n1', [0, 1]), member('n2', [1, 2])], 3));
    expect([...placed.n1!, ...placed.n2!].sort()).toEqual([0, 1, 2]);
  });
});
