import { describe, expect, it } from 'vitest';
import { decodeOwnerRecord, encodeOwnerRecord } from '../../adapters/kafka/shard-owners.js';
import { RoutingTable } from '../../server/cluster/routing-table.js';

describe('the routing table of owner records', () => {
  it('routes a shard to the owner of its newest record, and ignores an older owner\'s record read late', () => {
    const table = new RoutingTable(4);
    expect(table.ownerOf(1)).toBeNull();
    table.apply({ shard: 1, owner: 'n1', url: 'http://n1', epoch: 3 });
    table.apply({ shard: 1, owner: 'n2', url: 'http://n2', epoch: 9 });
    table.apply({ shard: 1, owner: 'n1', url: 'http://n1', epoch: 5 });
    expect(table.ownerOf(1)).toEqual({ id: 'n2', url: 'http://n2' });
    expect(table.record(1)?.epoch).toBe(9);
    expect(table.shardsOf('n2')).toEqual([1]);
    table.apply({ shard: 7, owner: 'n1', url: 'http://n1', epoch: 1 });
    expect(table.ownerOf(7)).toBeNull();
  });

  it('wakes a caller told "not mine" when a newer record arrives', async () => {
    const table = new RoutingTable(2);
    const waiting = table.refresh();
    table.apply({ shard: 0, owner: 'n2', url: 'http://n2', epoch: 1 });
    await waiting;
    expect(table.ownerOf(0)?.id).toBe('n2');
  });

  it('reads back what it writes, and refuses what is not an owner record', () => {
    const record = { shard: 2, owner: 'n1', url: 'http://n1', epoch: 12 };
    const { key, value } = encodeOwnerRecord(record);
    expect(key).toBe('2');
    expect(decodeOwnerRecord(Buffer.from(value))).toEqual(record);
    expect(decodeOwnerRecord(Buffer.from('{"shard":"2"}'))).toBeNull();
    expect(decodeOwnerRecord(null)).toBeNull();
  });
});
