import { parseOperatingArea, type OperatingArea } from '../actors/contract/operating-area.js';
import type { AreaReplacement, AreaViolationFilter, AreaViolationView, OperatingAreaPort } from '../api/ports.js';
import type { AreaViolationRow } from '../persistence/area-violations.js';
import type { Logger } from '../runtime/ground/logger.js';
import { refuseUnavailable, type ShardLinks } from './fleet-service.js';
import { saveOperatingAreaFile } from './operating-area-file.js';

/**
 * The operating area on the main thread: what /gbfs/geofencing_zones.json publishes, and the operator's
 * replacement (PUT /operating-area). A replacement is checked, written to the FLEET_OPERATING_AREA file
 * durably (the file is what a restarted shard or server starts from), then sent to every shard. A shard
 * that is down meanwhile reads the new file when it starts again.
 */
export class OperatingAreaService implements OperatingAreaPort {
  constructor(
    private readonly file: string | null,
    private current: OperatingArea | null,
    private readonly shards: ShardLinks,
    private readonly logger: Logger,
  ) {}

  area(): OperatingArea | null {
    return this.current;
  }

  async replace(document: unknown): Promise<AreaReplacement> {
    if (this.file === null) return { ok: false, reason: 'not-configured' };
    const parsed = parseOperatingArea(document);
    if (!parsed.ok) return { ok: false, reason: 'invalid', errors: parsed.errors };
    saveOperatingAreaFile(this.file, parsed.area);
    this.current = parsed.area;
    const told = await Promise.allSettled(Array.from({ length: this.shards.count }, (_, shard) => this.shards.link(shard).call({ op: 'operating-area', area: parsed.area }, 5_000)));
    told.forEach((result, shard) => {
      if (result.status === 'rejected') this.logger.warn({ shard, err: result.reason }, 'shard did not take the new operating area; it reads the file when it starts again');
    });
    const zones = parsed.area.geofencing_zones.features.length;
    this.logger.info({ file: this.file, zones }, 'operating area replaced');
    return { ok: true, zones };
  }

  /** Each shard's newest `limit`, merged: the newest `limit` of the fleet. A shard that is down fails the read (503). */
  async violations(filter: AreaViolationFilter): Promise<AreaViolationView[]> {
    const pages = await Promise.all(
      Array.from({ length: this.shards.count }, (_, shard) =>
        this.shards
          .link(shard)
          .call({ op: 'read', read: { read: 'area-violations', query: filter } }, VIOLATIONS_DEADLINE_MS)
          .then((rows) => rows.map((row) => toView(shard, row)), refuseUnavailable),
      ),
    );
    return pages
      .flat()
      .sort((a, b) => b.startedAtMs - a.startedAtMs || (a.view.id < b.view.id ? 1 : -1))
      .slice(0, filter.limit)
      .map((entry) => entry.view);
  }
}

const VIOLATIONS_DEADLINE_MS = 15_000;

function toView(shard: number, row: AreaViolationRow): { startedAtMs: number; view: AreaViolationView } {
  const { id, lat, lon, startedAt, lastAt, ...rest } = row;
  return { startedAtMs: startedAt, view: { ...rest, id: `s${shard}-${id}`, location: { lat, lon }, startedAt: new Date(startedAt).toISOString(), lastAt: new Date(lastAt).toISOString() } };
}
