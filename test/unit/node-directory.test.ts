import { AssignerProtocol } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { groupNodes } from '../../adapters/kafka/shard-group.js';
import { NodeDirectory } from '../../server/cluster/node-directory.js';

/** A member's subscription metadata as the shard group's assigner writes it (its userData: node, URL, shards held). */
const metadata = (userData: unknown): Buffer =>
  AssignerProtocol.MemberMetadata.encode({ version: 1, topics: ['c.shards'], userData: Buffer.from(typeof userData === 'string' ? userData : JSON.stringify(userData)) });

describe('the node list from the shard group', () => {
  it('reads each member\'s node and URL from its subscription, once per node, and skips what it cannot read', () => {
    const nodes = groupNodes([
      metadata({ node: 'n2', url: 'http://127.0.0.1:4001', held: [1, 4] }),
      metadata({ node: 'n1', url: 'http://127.0.0.1:4000', held: [] }),
      // A node that rejoined before its old membership expired: the same node twice.
      metadata({ node: 'n2', url: 'http://127.0.0.1:4001', held: [] }),
      // A member without a URL (an older node) or with userData that is not a claim.
      metadata({ node: 'n9', held: [] }),
      metadata('not json'),
    ]);
    expect(nodes).toEqual([
      { node: 'n2', url: 'http://127.0.0.1:4001' },
      { node: 'n1', url: 'http://127.0.0.1:4000' },
    ]);
  });

  it('knows only itself until the group describes its members, then the live members in natural order, itself always among them', () => {
    const directory = new NodeDirectory({ id: 'n2', url: 'http://127.0.0.1:4001' });
    expect(directory.nodes()).toEqual([{ id: 'n2', url: 'http://127.0.0.1:4001' }]);
    expect(directory.peers()).toEqual([]);

    directory.update([
      { id: 'n10', url: 'http://127.0.0.1:4009/' },
      { id: 'n1', url: 'http://127.0.0.1:4000' },
      { id: 'n2', url: 'http://127.0.0.1:4001' },
    ]);
    expect(directory.nodes().map((node) => node.id)).toEqual(['n1', 'n2', 'n10']);
    expect(directory.peers()).toEqual([
      { id: 'n1', url: 'http://127.0.0.1:4000' },
      { id: 'n10', url: 'http://127.0.0.1:4009' },
    ]);

    // n10 left the group; a description that missed this node (it was being dropped) still lists it.
    directory.update([{ id: 'n1', url: 'http://127.0.0.1:4000' }]);
    expect(directory.nodes().map((node) => node.id)).toEqual(['n1', 'n2']);
    // It remembers n10 for the shard homes: a node away keeps its homes.
    expect(directory.known()).toEqual(['n1', 'n2', 'n10']);
  });
});
