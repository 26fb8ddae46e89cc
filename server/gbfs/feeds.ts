import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { constants, gzip } from 'node:zlib';
import type { OperatingArea } from '../../actors/contract/operating-area.js';
import type { GbfsFeed, GbfsPort } from '../../api/ports.js';
import type { FleetConfig } from '../config.js';
import type { ShardLinks } from '../fleet-service.js';
import { refuseUnavailable } from '../fleet-service.js';
import { readCall } from '../shard-calls.js';
import { FEED_NAMES, GBFS_VERSION, gbfsDiscovery, geofencingZones, rfc3339, systemInformation, systemPricingPlans, vehicleTypes, type FeedName, type GbfsVehicleChunk } from './documents.js';

const gzipAsync = promisify(gzip);

/** Rows per shard read: a few ms of one shard's thread, then its actors run again. */
export const VEHICLE_PAGE_SIZE = 5_000;
/** Below this a body goes uncompressed (gzip would not pay for its header). */
const GZIP_FROM_BYTES = 1_024;

export interface GbfsFeedsDeps {
  readonly shards: ShardLinks;
  readonly config: Pick<FleetConfig, 'gbfs' | 'timing'>;
  /** PUBLIC_BASE_URL, or the URL the server listens on (known only once it listens). */
  readonly baseUrl: () => string;
  /** The operating area in force (replaced by PUT /operating-area). */
  readonly area: () => OperatingArea | null;
  readonly now?: () => number;
  readonly readTimeoutMs: number;
}

interface Built {
  readonly feed: GbfsFeed;
  /** Hash of the data alone, so that a rebuild with the same data keeps the previous feed. */
  readonly dataHash: string;
  readonly builtAt: number;
}

/**
 * The GBFS feeds as read models (docs/gbfs.md, "Caching"). Each feed is a finished body with its ETag,
 * kept until its data can have changed: the static feeds until the configuration does (never, in a
 * process), geofencing_zones until the area is replaced, vehicle_status for at most `ttl` seconds.
 *
 * vehicle_status is rebuilt on the first request after its `ttl` ran out, by one rebuild at a time that
 * every waiting request joins: each shard is read in pages of 5,000 vehicles (one indexed scan each, on
 * its own thread, between its actors' messages), each page is turned into JSON on this thread as it
 * arrives, and the chunks are joined. Neither a shard nor this thread is held for the whole fleet at
 * once, so bookings keep flowing while 100,000 vehicles are published. Unchanged data keeps its
 * `last_updated` and ETag, so pollers get 304s.
 */
export class GbfsFeeds implements GbfsPort {
  private readonly cache = new Map<FeedName, Built>();
  private vehicleRebuild: Promise<Built> | null = null;
  private readonly rebuilds = { count: 0, lastMs: 0 };
  private areaSeen: OperatingArea | null | undefined = undefined;
  private readonly now: () => number;

  constructor(private readonly deps: GbfsFeedsDeps) {
    this.now = deps.now ?? Date.now;
  }

  async feed(name: string): Promise<GbfsFeed | null> {
    if (!isFeedName(name)) return null;
    if (name === 'vehicle_status') return (await this.vehicleStatus()).feed;
    if (name === 'geofencing_zones' && this.areaSeen !== this.deps.area()) {
      this.areaSeen = this.deps.area();
      await this.store(name, JSON.stringify(geofencingZones(this.areaSeen)), null);
    }
    const cached = this.cache.get(name);
    if (cached) return cached.feed;
    return (await this.store(name, JSON.stringify(this.staticData(name)), null)).feed;
  }

  private staticData(name: Exclude<FeedName, 'vehicle_status'>): unknown {
    const { gbfs, timing } = this.deps.config;
    switch (name) {
      case 'gbfs':
        return gbfsDiscovery(this.deps.baseUrl());
      case 'system_information':
        return systemInformation(gbfs);
      case 'vehicle_types':
        return vehicleTypes(gbfs.language, timing.reservationWindowMs);
      case 'system_pricing_plans':
        return systemPricingPlans(gbfs.language);
      case 'geofencing_zones':
        return geofencingZones(this.deps.area());
    }
  }

  /** Rebuilds of vehicle_status.json so far, and the last one's duration (/metrics). */
  rebuildStats(): { readonly count: number; readonly lastMs: number } {
    return { ...this.rebuilds };
  }

  /**
   * Within `ttl`: the snapshot. Past it: one rebuild starts, and requests meanwhile get the previous
   * snapshot (stale by at most one rebuild), so a poller never waits for the fleet to be read. Only the
   * first request, and every request with `ttl` 0 ("always refresh"), waits for the rebuild.
   */
  private async vehicleStatus(): Promise<Built> {
    const current = this.cache.get('vehicle_status');
    const ttlMs = this.deps.config.gbfs.ttlSeconds * 1000;
    if (current && this.now() - current.builtAt < ttlMs) return current;
    this.vehicleRebuild ??= this.rebuildVehicles().finally(() => {
      this.vehicleRebuild = null;
    });
    if (current && ttlMs > 0) {
      this.vehicleRebuild.catch(() => undefined);
      return current;
    }
    return this.vehicleRebuild;
  }

  private async rebuildVehicles(): Promise<Built> {
    const started = performance.now();
    const chunks = (await Promise.all(Array.from({ length: this.deps.shards.count }, (_, shard) => this.shardChunks(shard)))).flat();
    const dataHash = createHash('sha256');
    for (const chunk of chunks) dataHash.update(chunk.hash);
    const items = chunks.filter((chunk) => chunk.json !== '').map((chunk) => chunk.json);
    const built = await this.store('vehicle_status', `{"vehicles":[${items.join(',')}]}`, dataHash.digest('base64url'));
    this.rebuilds.count += 1;
    this.rebuilds.lastMs = performance.now() - started;
    return built;
  }

  /** One shard's vehicles as JSON fragments (a page each, made on the shard's thread), in its public-id order. */
  private async shardChunks(shard: number): Promise<GbfsVehicleChunk[]> {
    const chunks: GbfsVehicleChunk[] = [];
    let after = '';
    for (;;) {
      const chunk = await this.deps.shards
        .link(shard)
        .call(readCall({ read: 'gbfs-vehicles', afterId: after, limit: VEHICLE_PAGE_SIZE }), this.deps.readTimeoutMs)
        .catch(refuseUnavailable);
      chunks.push(chunk);
      if (chunk.next === null) return chunks;
      after = chunk.next;
    }
  }

  /** Wraps `data` (JSON text) as a GBFS file; the same data as before keeps the feed as it was. `hash`: of the data, when known. */
  private async store(name: FeedName, dataJson: string, hash: string | null): Promise<Built> {
    const dataHash = hash ?? createHash('sha256').update(dataJson).digest('base64url');
    const now = this.now();
    const previous = this.cache.get(name);
    if (previous && previous.dataHash === dataHash) {
      const kept = { ...previous, builtAt: now };
      this.cache.set(name, kept);
      return kept;
    }
    const lastModified = Math.floor(now / 1000) * 1000;
    const ttl = this.deps.config.gbfs.ttlSeconds;
    const body = Buffer.from(`{"last_updated":"${rfc3339(lastModified)}","ttl":${ttl},"version":"${GBFS_VERSION}","data":${dataJson}}`);
    // Compressed off this thread (libuv's pool): a 25 MB body is ~2 MB gzipped.
    // The fastest level: a fifth of the CPU of the default for a few percent more bytes.
    const gzipped = body.length >= GZIP_FROM_BYTES ? await gzipAsync(body, { level: constants.Z_BEST_SPEED }) : null;
    const built: Built = { feed: { body, gzipped, etag: `"${dataHash.slice(0, 27)}"`, lastModified, ttlSeconds: ttl }, dataHash, builtAt: now };
    this.cache.set(name, built);
    return built;
  }
}

const isFeedName = (name: string): name is FeedName => (FEED_NAMES as readonly string[]).includes(name);
