import type { ClusterNode } from '../config.js';
import type { FleetShardLink } from '../shard-calls.js';
import { collectReports, type ShardReports } from './cluster-view.js';
import type { OwnerMap } from './owner-map.js';

/** How often a node asks the others which shards they run: how long a move stays unseen by callers at most. */
export const ROUTING_REFRESH_MS = 1000;

/**
 * The routing table of a node whose shards are placed by the group (server/cluster/shard-placement.ts):
 * which node runs each shard, as the nodes themselves report it (GET /internal/shards), refreshed every
 * second and at once after an owner answered "not mine" or could not be reached. A shard that no
 * reachable node runs has no owner: callers get 503 shard-unavailable at once.
 *
 * This slice learns owners from the nodes; docs/cluster.md says what replaces it (owner records
 * written inside the fenced transaction, read from Kafka).
 */
export class RoutingTable implements OwnerMap {
  private reports: ShardReports = new Map();
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private again = false;
  private refreshedAt = 0;

  constructor(
    private readonly self: ClusterNode,
    readonly nodes: readonly ClusterNode[],
    readonly shardCount: number,
    private readonly token: string,
    private readonly localLinks: () => readonly FleetShardLink[],
  ) {}

  ownerOf(shard: number): ClusterNode | null {
    const owner = this.reports.get(shard)?.node;
    return owner ?? null;
  }

  shardsOf(nodeId: string): number[] {
    return [...this.reports.entries()].filter(([, entry]) => entry.node.id === nodeId).map(([shard]) => shard).sort((a, b) => a - b);
  }

  /** Called after every refresh (the links rebind their live events to the new owners). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.timer) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), ROUTING_REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Asks the nodes again now (one refresh at a time; a request during one runs one more after it).
   * `maxAgeMs`: nothing to do when the last refresh finished more recently than that.
   */
  refresh(maxAgeMs = 0): Promise<void> {
    if (maxAgeMs > 0 && !this.refreshing && Date.now() - this.refreshedAt < maxAgeMs) return Promise.resolve();
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        this.reports = await collectReports({ self: this.self, nodes: this.nodes, localLinks: this.localLinks, token: this.token });
        this.refreshedAt = Date.now();
        for (const listener of this.listeners) listener();
      } while (this.again);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
}
