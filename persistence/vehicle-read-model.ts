import type { Location, VehicleFilter, VehicleStatus, VehicleType, VehicleView } from '../actors/contract/views.js';
import type { DeviceConditions } from '../actors/vehicle/decider.js';
import type { PositionFix } from '../actors/vehicle/area-rules.js';
import type { Statement } from 'better-sqlite3';
import type { Db } from './sqlite.js';

interface VehicleRow {
  id: string;
  type: VehicleType;
  model: string | null;
  status: Exclude<VehicleStatus, 'OFFLINE'>;
  lat: number;
  lon: number;
  battery: number | null;
  online: 0 | 1 | null;
  last_seen_at: number | null;
  updated_at: number;
}

const EARTH_RADIUS_M = 6_371_008.8;
const METERS_PER_DEGREE_LAT = 111_320;

/** Great-circle distance in metres. */
export function haversineMeters(a: Location, b: Location): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/**
 * What a customer may see (docs/contract.md, "Privacy"): a vehicle they could book (AVAILABLE, not
 * offline), or one held by a booking of theirs (the booking lives on its vehicle's shard, so the
 * bookings read model is here). Everybody else's ride, and its position, stays out of sight.
 */
const VISIBLE_TO_CUSTOMER = `((status = 'AVAILABLE' AND (online IS NULL OR online = 1)) OR booking_id IN (SELECT id FROM bookings WHERE customer_id = @visibleTo))`;

/** Queries behind GET /vehicles, and the device conditions the vehicle actor checks before a reserve. */
export class VehicleReadModel {
  private readonly byId;
  private readonly conditions;
  private readonly position;
  private readonly total;
  private readonly known;
  private readonly visibleById;
  private readonly seen;
  /** One prepared statement per filter combination (a dozen at most), not one per request. */
  private readonly listStatements = new Map<string, Statement<[Record<string, unknown>], VehicleRow>>();

  constructor(private readonly db: Db) {
    this.byId = db.prepare<[string], VehicleRow>('SELECT * FROM vehicles WHERE id = ?');
    this.conditions = db.prepare<[string], Pick<VehicleRow, 'online' | 'battery'>>('SELECT online, battery FROM vehicles WHERE id = ?');
    this.position = db.prepare<[string], { lat: number; lon: number; last_seen_at: number | null }>('SELECT lat, lon, last_seen_at FROM vehicles WHERE id = ?');
    this.total = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM vehicles');
    this.known = db.prepare<[string], { found: number }>('SELECT 1 AS found FROM vehicles WHERE id = ?');
    this.visibleById = db.prepare<{ id: string; visibleTo: string }, VehicleRow>(`SELECT * FROM vehicles WHERE id = @id AND ${VISIBLE_TO_CUSTOMER}`);
    this.seen = db.prepare<[string], { found: number }>('SELECT 1 AS found FROM vehicles WHERE id = ? AND (online IS NOT NULL OR last_seen_at IS NOT NULL)');
  }

  exists(id: string): boolean {
    return this.known.get(id) !== undefined;
  }

  /** `visibleTo`: a customer's id (VehicleFilter): undefined for a vehicle they may not see. */
  get(id: string, visibleTo?: string): VehicleView | undefined {
    const row = visibleTo === undefined ? this.byId.get(id) : this.visibleById.get({ id, visibleTo });
    return row && toView(row);
  }

  /**
   * Whether a device ever spoke for the vehicle: a presence on record (retained on the broker, so also
   * from before this process) or a telemetry reading. An operator's cleared presence keeps the
   * reading's time, so a vehicle seen once stays seen.
   */
  everSeen(id: string): boolean {
    return this.seen.get(id) !== undefined;
  }

  conditionsOf(id: string): DeviceConditions {
    const row = this.conditions.get(id);
    return { online: row?.online === null || row?.online === undefined ? null : row.online === 1, battery: row?.battery ?? null };
  }

  /** The latest telemetry fix, or the registered position before any (fixAt null); null for an unknown vehicle. */
  positionOf(id: string): PositionFix | null {
    const row = this.position.get(id);
    return row ? { lat: row.lat, lon: row.lon, fixAt: row.last_seen_at } : null;
  }

  list(filter: VehicleFilter): VehicleView[] {
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (filter.status === 'OFFLINE') where.push('online = 0');
    else if (filter.status) {
      where.push('status = @status AND (online IS NULL OR online = 1)');
      params.status = filter.status;
    }
    if (filter.visibleTo !== undefined) {
      where.push(VISIBLE_TO_CUSTOMER);
      params.visibleTo = filter.visibleTo;
    }
    if (filter.type) {
      where.push('type = @type');
      params.type = filter.type;
    }
    const near = filter.near;
    const radius = filter.radiusM ?? 1000;
    if (near) {
      // A bounding box narrows the scan in SQL; the exact circle is checked below.
      const dLat = radius / METERS_PER_DEGREE_LAT;
      const dLon = radius / (METERS_PER_DEGREE_LAT * Math.max(0.01, Math.cos((near.lat * Math.PI) / 180)));
      where.push('lat BETWEEN @minLat AND @maxLat AND lon BETWEEN @minLon AND @maxLon');
      Object.assign(params, { minLat: near.lat - dLat, maxLat: near.lat + dLat, minLon: near.lon - dLon, maxLon: near.lon + dLon });
    }
    const sql = `SELECT * FROM vehicles ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id ${near ? '' : 'LIMIT @limit'}`;
    if (!near) params.limit = filter.limit;
    let statement = this.listStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare<[Record<string, unknown>], VehicleRow>(sql);
      this.listStatements.set(sql, statement);
    }
    const rows = statement.all(params);
    if (!near) return rows.map(toView);
    return rows
      .map((row) => ({ row, distance: haversineMeters(near, row) }))
      .filter(({ distance }) => distance <= radius)
      .sort((a, b) => a.distance - b.distance)
      .slice(0, filter.limit)
      .map(({ row }) => toView(row));
  }

  count(): number {
    return this.total.get()!.n;
  }
}

function toView(row: VehicleRow): VehicleView {
  const online = row.online === null ? null : row.online === 1;
  return {
    id: row.id,
    type: row.type,
    model: row.model,
    status: online === false ? 'OFFLINE' : row.status,
    location: { lat: row.lat, lon: row.lon },
    battery: row.battery,
    online,
    lastSeenAt: row.last_seen_at === null ? null : new Date(row.last_seen_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}
