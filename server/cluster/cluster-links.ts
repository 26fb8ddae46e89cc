import { ShardUnavailableError } from '../../runtime/kernel/shard-link.js';
import type { AnswerOf } from '../../runtime/kernel/shard-protocol.js';
import type { ClusterNode } from '../config.js';
import type { ShardLinks } from '../fleet-service.js';
import type { FleetExchange, FleetShardCaller, ShardCall, ShardEvent } from '../shard-calls.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import type { OwnerMap } from './owner-map.js';
import { RemoteShardLink, StaleOwnerError } from './remote-shard-link.js';

export interface ClusterLinksOptions {
  readonly self: ClusterNode;
  readonly owners: OwnerMap;
  readonly token: string;
  /** Asked after an owner answered "not mine" or could not be reached: the routing table looks again. */
  readonly refresh?: (maxAgeMs?: number) => Promise<void>;
}

/**
 * The router's shards in cluster mode: this node's own shards through its supervisor, every other
 * shard through a link to its owner. The router (server/fleet-service.ts, fleet-reads.ts) cannot tell
 * the difference: a fleet-wide read fans out to every owner as it fanned out to every worker.
 *
 * Each shard has one link for the life of the node, which follows the shard from owner to owner (it
 * may move in and out of this node): a call goes to wherever the shard is now, and live events are
 * re-subscribed at the new owner (`rebind`, after each routing refresh).
 */
export class ClusterShardLinks implements ShardLinks {
  private readonly links: readonly RoutedShardLink[];

  constructor(local: ShardSupervisor, options: ClusterLinksOptions) {
    const { owners } = options;
    const remotes = new Map<string, RemoteShardLink>();
    const unowned = Array.from({ length: owners.shardCount }, (_, shard) => new UnownedShardLink(shard));
    const target = (shard: number): FleetShardCaller => {
      if (local.has(shard)) return local.link(shard);
      const owner = owners.ownerOf(shard);
      if (!owner || owner.id === options.self.id) return unowned[shard] ?? new UnownedShardLink(shard);
      const key = `${shard}@${owner.id}@${owner.url}`;
      let remote = remotes.get(key);
      if (!remote) {
        remote = new RemoteShardLink({ shard, owner, token: options.token, shardCount: owners.shardCount });
        remotes.set(key, remote);
      }
      return remote;
    };
    this.links = Array.from({ length: owners.shardCount }, (_, shard) => new RoutedShardLink(shard, () => target(shard), options.refresh ?? (async () => {})));
  }

  get count(): number {
    return this.links.length;
  }

  link(shard: number): FleetShardCaller {
    return this.links[shard] ?? new UnownedShardLink(shard);
  }

  /** After the owners changed: each shard's live events come from its owner now. */
  rebind(): void {
    for (const link of this.links) link.rebind();
  }
}

/** A table older than this is refreshed before a call for a shard it knows no owner of is refused. */
const UNOWNED_RECHECK_MS = 250;

/** One shard, wherever it runs: this node's worker, another node, or nobody for now. */
class RoutedShardLink implements FleetShardCaller {
  private readonly eventListeners = new Set<(events: readonly ShardEvent[]) => void>();
  private readonly upListeners = new Set<() => void>();
  private following = false;
  private bound: { readonly target: FleetShardCaller; readonly unsubscribe: () => void } | null = null;

  constructor(
    readonly shard: number,
    private readonly target: () => FleetShardCaller,
    private readonly refresh: (maxAgeMs?: number) => Promise<void>,
  ) {}

  async call<C extends ShardCall>(call: C, deadlineMs: number): Promise<AnswerOf<FleetExchange, C>> {
    let target = this.target();
    if (target instanceof UnownedShardLink) {
      // No owner known: unless the table is fresh, ask the nodes once (a shard may have just found one).
      await this.refresh(UNOWNED_RECHECK_MS);
      target = this.target();
    }
    try {
      return await target.call(call, deadlineMs);
    } catch (error) {
      if (!(error instanceof ShardUnavailableError) || target instanceof UnownedShardLink) throw error;
      // An owner that failed: the routing table looks again. The caller gets 503 now, unless the call
      // surely ran nowhere ("not mine", connection refused) and the shard has a new owner: it goes there, once.
      const refreshed = this.refresh();
      if (!(error instanceof StaleOwnerError)) throw error;
      await refreshed;
      const next = this.target();
      if (next === target || next instanceof UnownedShardLink) throw error;
      return next.call(call, deadlineMs);
    }
  }

  onEvents(listener: (events: readonly ShardEvent[]) => void): () => void {
    this.eventListeners.add(listener);
    this.rebind();
    return () => this.eventListeners.delete(listener);
  }

  onUp(listener: () => void): () => void {
    this.upListeners.add(listener);
    this.rebind();
    return () => this.upListeners.delete(listener);
  }

  followEvents(on: boolean): void {
    this.following = on;
    this.rebind();
    this.bound?.target.followEvents(on);
  }

  rebind(): void {
    const target = this.target();
    if (this.bound?.target === target) return;
    if (this.bound) {
      this.bound.unsubscribe();
      this.bound.target.followEvents(false);
    }
    const offEvents = target.onEvents((events) => {
      for (const listener of this.eventListeners) listener(events);
    });
    const offUp = target.onUp(() => this.announceUp());
    this.bound = {
      target,
      unsubscribe: () => {
        offEvents();
        offUp();
      },
    };
    if (this.following) {
      target.followEvents(true);
      // The shard moved: the streams re-read from their own cursors at its new owner.
      this.announceUp();
    }
  }

  private announceUp(): void {
    for (const listener of this.upListeners) listener();
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
