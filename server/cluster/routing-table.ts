import type { OwnerRecord } from '../../adapters/kafka/shard-owners.js';
import type { ClusterNode } from '../config.js';
import type { OwnerMap } from './owner-map.js';

/** How long a caller told "not mine" waits for a newer owner record before it answers 503. */
const STALE_WAIT_MS = 500;

/**
 * The routing table of a cluster node (docs/cluster.md, "Routing"): each shard's latest owner record,
 * as its owner wrote it inside its fenced transaction (adapters/kafka/shard-owners.ts). A record with a
 * lower epoch than the one known is an older owner's and is ignored. A shard without a record has had
 * no owner yet: callers get 503 shard-unavailable at once.
 */
export class RoutingTable implements OwnerMap {
  private readonly records = new Map<number, OwnerRecord>();
  private readonly listeners = new Set<() => void>();
  private waiters: Array<() => void> = [];

  constructor(readonly shardCount: number) {}

  /** A record read from Kafka: the table takes it when it is the shard's newest. */
  apply(record: OwnerRecord): void {
    if (!Number.isInteger(record.shard) || record.shard < 0 || record.shard >= this.shardCount) return;
    const known = this.records.get(record.shard);
    if (known && known.epoch > record.epoch) return;
    this.records.set(record.shard, record);
    for (const listener of this.listeners) listener();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  record(shard: number): OwnerRecord | null {
    return this.records.get(shard) ?? null;
  }

  ownerOf(shard: number): ClusterNode | null {
    const record = this.records.get(shard);
    return record ? { id: record.owner, url: record.url } : null;
  }

  shardsOf(nodeId: string): number[] {
    return [...this.records.values()].filter((record) => record.owner === nodeId).map((record) => record.shard).sort((a, b) => a - b);
  }

  /** Called after every record taken (the links rebind their live events to the new owners). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * After an owner answered "not mine" or refused the connection: the records are pushed, so this
   * waits (briefly) for the next one. `maxAgeMs` > 0 (a shard with no record): nothing to wait for.
   */
  refresh(maxAgeMs = 0): Promise<void> {
    if (maxAgeMs > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, STALE_WAIT_MS);
      timer.unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
