import type { Statement } from 'better-sqlite3';
import { limitsRides, type OperatingArea } from '../actors/contract/operating-area.js';
import type { VehicleType } from '../actors/contract/views.js';
import { rideViolations, type RideReading, type RideViolationKind } from '../actors/vehicle/area-rules.js';
import type { Db } from './sqlite.js';

/**
 * What riders did against the operating area during their rides (docs/gbfs.md, "During a ride"), kept
 * in the shard's database. One row is one **episode**: from the first reading of a ride that broke a
 * rule (a zone without ride-through, a speed limit) to the last consecutive one that broke the same rule
 * in the same zone; a reading that keeps it counts into `readings` and `max_speed_kmh`, a reading that
 * does not closes it. So a rider crossing a park at 20 km/h is one row, not one per reading.
 */

/** The vehicle's row as the telemetry update left it: a ride is judged only while the vehicle is IN_USE. */
export interface RidingVehicle {
  readonly vehicleId: string;
  readonly type: string;
  readonly status: string;
  readonly bookingId: string | null;
}

export interface AreaViolationRow {
  readonly id: number;
  readonly vehicleId: string;
  readonly vehicleType: string;
  readonly bookingId: string | null;
  readonly kind: RideViolationKind;
  readonly zone: string;
  readonly limitKph: number | null;
  /** Where the episode began. */
  readonly lat: number;
  readonly lon: number;
  readonly maxSpeedKmh: number;
  readonly readings: number;
  readonly startedAt: number;
  readonly lastAt: number;
}

export interface AreaViolationQuery {
  readonly limit: number;
  /** Only episodes that began at or after this instant (epoch ms). */
  readonly since: number | null;
  readonly vehicleId: string | null;
  readonly bookingId: string | null;
}

interface OpenEpisode {
  readonly id: number;
  readonly kind: string;
  readonly zone: string;
  readonly bookingId: string | null;
}

/** The new episodes since start, by kind (ShardStats `areaViolations`, /metrics). */
export type ViolationCounts = Record<RideViolationKind, number>;

/**
 * Judges the telemetry of vehicles on a ride against the area in force, inside the telemetry batch's
 * transaction (adapters/telemetry/pipeline.ts), so a reading and what it revealed commit together.
 */
export class AreaViolationRecorder {
  private readonly counts: ViolationCounts = { 'ride-through-not-allowed': 0, 'speed-limit-exceeded': 0 };
  private readonly openOf: Statement<[string], OpenEpisode>;
  private readonly extend: Statement<[number, number, number]>;
  private readonly closeOne: Statement<[number]>;
  private readonly closeAll: Statement<[string]>;
  private readonly insert: Statement<[string, string, string | null, string, string, number | null, number, number, number, number, number]>;
  private lastArea: OperatingArea | null = null;
  private lastLimits = false;

  constructor(
    db: Db,
    private readonly area: () => OperatingArea | null,
  ) {
    this.openOf = db.prepare('SELECT id, kind, zone, booking_id AS bookingId FROM area_violations WHERE vehicle_id = ? AND open = 1');
    this.extend = db.prepare('UPDATE area_violations SET readings = readings + 1, max_speed_kmh = max(max_speed_kmh, ?), last_at = max(last_at, ?) WHERE id = ?');
    this.closeOne = db.prepare('UPDATE area_violations SET open = 0 WHERE id = ?');
    this.closeAll = db.prepare('UPDATE area_violations SET open = 0 WHERE vehicle_id = ? AND open = 1');
    this.insert = db.prepare(
      `INSERT INTO area_violations (vehicle_id, vehicle_type, booking_id, kind, zone, limit_kph, lat, lon, max_speed_kmh, readings, started_at, last_at, open)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 1)`,
    );
  }

  /** The area to judge rides by, or null when none is in force or none of its rules limits a ride (then telemetry is not judged at all). */
  watching(): OperatingArea | null {
    const area = this.area();
    if (area !== this.lastArea) {
      this.lastArea = area;
      this.lastLimits = area !== null && limitsRides(area);
    }
    return this.lastLimits ? area : null;
  }

  /** One reading of a vehicle whose row it updated; call inside the batch's transaction. */
  judge(area: OperatingArea, vehicle: RidingVehicle, reading: RideReading): void {
    if (vehicle.status !== 'IN_USE') {
      this.closeAll.run(vehicle.vehicleId);
      return;
    }
    const now = rideViolations(area, vehicle.type as VehicleType, reading);
    const open = this.openOf.all(vehicle.vehicleId);
    const kept = new Set<string>();
    for (const episode of open) {
      const still = episode.bookingId === vehicle.bookingId && now.some((violation) => violation.kind === episode.kind && violation.zoneName === episode.zone);
      if (still) {
        this.extend.run(reading.speedKmh, reading.at, episode.id);
        kept.add(`${episode.kind}\n${episode.zone}`);
      } else {
        this.closeOne.run(episode.id);
      }
    }
    for (const violation of now) {
      if (kept.has(`${violation.kind}\n${violation.zoneName}`)) continue;
      this.insert.run(vehicle.vehicleId, vehicle.type, vehicle.bookingId, violation.kind, violation.zoneName, violation.limitKph, reading.lat, reading.lon, reading.speedKmh, reading.at, reading.at);
      this.counts[violation.kind] += 1;
    }
  }

  stats(): ViolationCounts {
    return { ...this.counts };
  }
}

/**
 * Deletes, at most `limit` at a time, the episodes whose last reading is older than `before`: the
 * housekeeping of AREA_VIOLATION_RETENTION_MS (server/housekeeping.ts). Open ones too: an episode is
 * closed only by a later reading that is judged, so one whose vehicle fell silent, or whose area was
 * replaced by one that limits no ride, stays open for ever. How many it deleted.
 */
export function areaViolationPurge(db: Db): (before: number, limit: number) => number {
  // started_at <= last_at: the index on started_at narrows the scan to episodes old enough.
  const purge = db.prepare<[number, number, number]>(
    `DELETE FROM area_violations WHERE id IN (
       SELECT id FROM area_violations WHERE started_at < ? AND last_at < ? LIMIT ?)`,
  );
  return (before, limit) => purge.run(before, before, limit).changes;
}

/** The operators' view of a shard's episodes, newest first (GET /operating-area/violations). */
export class AreaViolationReads {
  private readonly page: Statement<{ since: number | null; vehicleId: string | null; bookingId: string | null; limit: number }, AreaViolationRow>;

  constructor(db: Db) {
    this.page = db.prepare(
      `SELECT id, vehicle_id AS vehicleId, vehicle_type AS vehicleType, booking_id AS bookingId, kind, zone, limit_kph AS limitKph,
              lat, lon, max_speed_kmh AS maxSpeedKmh, readings, started_at AS startedAt, last_at AS lastAt
         FROM area_violations
        WHERE (@since IS NULL OR started_at >= @since)
          AND (@vehicleId IS NULL OR vehicle_id = @vehicleId)
          AND (@bookingId IS NULL OR booking_id = @bookingId)
        ORDER BY started_at DESC, id DESC
        LIMIT @limit`,
    );
  }

  list(query: AreaViolationQuery): AreaViolationRow[] {
    return this.page.all({ since: query.since, vehicleId: query.vehicleId, bookingId: query.bookingId, limit: query.limit });
  }
}
