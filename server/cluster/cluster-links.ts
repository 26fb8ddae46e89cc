import { ShardUnavailableError } from '../../runtime/kernel/shard-link.js';
import type { ShardLinks } from '../fleet-service.js';
import type { FleetShardCaller, ShardCall, ShardEvent } from '../shard-calls.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import type { OwnerMap } from './owner-map.js';
import { RemoteShardLink } from './remote-shard-link.js';

/**
 * The router's shards in cluster mode: this node's own shards through its supervisor, every other
 * shard through a link to its owner. The router (server/fleet-service.ts, fleet-reads.ts) cannot tell
 * the difference: a fleet-wide read fans out to every owner as it fanned out to every worker.
 */
export class ClusterShardLinks implements ShardLinks {
  private readonly links: readonly FleetShardCaller[];

  constructor(local: ShardSupervisor, owners: OwnerMap, token: string) {
    this.links = Array.from({ length: owners.shardCount }, (_, shard): FleetShardCaller => {
      if (local.has(shard)) return local.link(shard);
      const owner = owners.ownerOf(shard);
      return owner ? new RemoteShardLink({ shard, owner, token, shardCount: owners.shardCount }) : new UnownedShardLink(shard);
    });
  }

  get count(): number {
    return this.links.length;
  }

  link(shard: number): FleetShardCaller {
    return this.links[shard] ?? new UnownedShardLink(shard);
  }
}

/** A shard between owners: every call is refused at once (503 shard-unavailable with Retry-After), never held. */
export class UnownedShardLink implements FleetShardCaller {
  constructor(readonly shard: number) {}

  call<T>(_call: ShardCall, _deadlineMs: number): Promise<T> {
    return Promise.reject(new ShardUnavailableError(this.shard, 'no node owns it at the moment'));
  }

  onEvents(_listener: (events: readonly ShardEvent[]) => void): () => void {
    return () => {};
  }

  onUp(_listener: () => void): () => void {
    return () => {};
  }

  followEvents(_on: boolean): void {}
}
