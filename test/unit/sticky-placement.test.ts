import { describe, expect, it } from 'vitest';
import { placeShards } from '../../server/cluster/sticky-placement.js';

/** A member that has seen n1, n2 and n3 in the group (unless told otherwise). */
const member = (node: string, held: number[] = [], known = ['n1', 'n2', 'n3']) => ({ memberId: `${node}-m`, node, held, known });
const byNode = (placed: Map<string, number[]>) => Object.fromEntries([...placed.entries()].map(([memberId, shards]) => [memberId.replace(/-m$/, ''), shards]));

describe('the shard group\'s sticky placement', () => {
  it('places shards on their home node (s mod N of the known node ids in natural order) when every node joins with nothing held', () => {
    expect(byNode(placeShards([member('n1'), member('n2'), member('n3')], 6))).toEqual({ n1: [0, 3], n2: [1, 4], n3: [2, 5] });
    expect(byNode(placeShards([member('n10', [], []), member('n2', [], []), member('n1', [], [])], 3))).toEqual({ n1: [0], n2: [1], n10: [2] });
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

  it('gives a node that comes back its own shards, and nothing else moves: the others remembered it while it was away', () => {
    // n3 restarted: it knows only itself, the others remember it.
    const placed = byNode(placeShards([member('n1', [0, 2, 3]), member('n2', [1, 4, 5]), member('n3', [], ['n3'])], 6));
    expect(placed).toEqual({ n1: [0, 3], n2: [1, 4], n3: [2, 5] });
  });

  it('counts a node no member has seen only once it joins', () => {
    // Two nodes of a new cluster: homes by two; a third joins later and takes one shard from each.
    const two = byNode(placeShards([member('n1', [], ['n1']), member('n2', [], ['n1', 'n2'])], 6));
    expect(two).toEqual({ n1: [0, 2, 4], n2: [1, 3, 5] });
    const three = byNode(placeShards([member('n1', two.n1, ['n1', 'n2']), member('n2', two.n2, ['n1', 'n2']), member('n3', [], ['n3'])], 6));
    expect(three.n1).toHaveLength(2);
    expect(three.n2).toHaveLength(2);
    expect(three.n3).toHaveLength(2);
    expect([...three.n1!, ...three.n2!].every((shard) => [...two.n1!, ...two.n2!].includes(shard))).toBe(true);
  });

  it('keeps a first node that holds every shard from giving away more than balance needs', () => {
    const placed = byNode(placeShards([member('n1', [0, 1, 2, 3, 4, 5]), member('n2')], 6));
    expect(placed.n1).toHaveLength(3);
    expect(placed.n2).toHaveLength(3);
    expect(placed.n2).toEqual(expect.arrayContaining([1, 4]));
  });

  it('assigns each shard once even when two members claim it', () => {
    const placed = byNode(placeShards([member('n1', [0, 1], ['n1', 'n2']), member('n2', [1, 2], ['n1', 'n2'])], 3));
    expect([...placed.n1!, ...placed.n2!].sort()).toEqual([0, 1, 2]);
  });
});
