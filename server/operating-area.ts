import { parseOperatingArea, type OperatingArea } from '../actors/contract/operating-area.js';
import type { AreaReplacement, AreaViolationFilter, AreaViolationView, OperatingAreaPort } from '../api/ports.js';
import type { AreaViolationRow } from '../persistence/area-violations.js';
import type { Logger } from '../runtime/ground/logger.js';
import { refuseUnavailable, type ShardLinks } from './fleet-service.js';
import type { ShardSupervisor } from './shard-supervisor.js';
import { saveOperatingAreaFile } from './operating-area-file.js';

/**
 * The other nodes of a cluster (server/cluster/area-peers.ts): each takes a replacement as its own —
 * its file, its main thread, its shards. Answers the ids of the nodes that did not take it.
 */
export interface AreaPeers {
  tell(area: OperatingArea): Promise<string[]>;
}

export interface OperatingAreaParts {
  /** FLEET_OPERATING_AREA; null: not configured. */
  readonly file: string | null;
  readonly initial: OperatingArea | null;
  /** Every shard of the fleet (violations are read from all of them, through their owners in a cluster). */
  readonly shards: ShardLinks;
  /** The shards this process runs: a replacement is told to these; another node tells its own. */
  readonly own: Pick<ShardSupervisor, 'links'>;
  /** The other nodes of a cluster; null: single process. */
  readonly peers: AreaPeers | null;
  readonly logger: Logger;
}

/**
 * The operating area on the main thread: what /gbfs/geofencing_zones.json publishes, and the operator's
 * replacement (PUT /operating-area). A replacement is checked, written to the FLEET_OPERATING_AREA file
 * durably (the file is what a restarted shard or server starts from), then sent to every shard this
 * process runs; in a cluster, then to every other node, which does the same with its file and its shards
 * (`replaceHere`). A shard that is down meanwhile reads the new file when it starts again; a node that is
 * down is named in the answer (`notReached`) and keeps its own file's area until the PUT is repeated.
 */
export class OperatingAreaService implements OperatingAreaPort {
  private current: OperatingArea | null;
  private readonly file: string | null;
  private readonly shards: ShardLinks;
  private readonly logger: Logger;

  constructor(private readonly parts: OperatingAreaParts) {
    this.current = parts.initial;
    this.file = parts.file;
    this.shards = parts.shards;
    this.logger = parts.logger;
  }

  area(): OperatingArea | null {
    return this.current;
  }

  async replace(document: unknown): Promise<AreaReplacement> {
    const here = await this.replaceHere(document);
    if (!here.ok || this.parts.peers === null || this.current === null) return here;
    const notReached = await this.parts.peers.tell(this.current);
    return notReached.length > 0 ? { ...here, notReached } : here;
  }

  /** The replacement on this process only: its file, what it publishes, the shards it runs. */
  async replaceHere(document: unknown): Promise<AreaReplacement> {
    if (this.file === null) return { ok: false, reason: 'not-configured' };
    const parsed = parseOperatingArea(document);
    if (!parsed.ok) return { ok: false, reason: 'invalid', errors: parsed.errors };
    saveOperatingAreaFile(this.file, parsed.area);
    this.current = parsed.area;
    const own = this.parts.own.links;
    const told = await Promise.allSettled(own.map((link) => link.call({ op: 'operating-area', area: parsed.area }, 5_000)));
    told.forEach((result, index) => {
      if (result.status === 'rejected') this.logger.warn({ shard: own[index]?.shard, err: result.reason }, 'shard did not take the new operating area; it reads the file when it starts again');
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
