import type { Statement } from 'better-sqlite3';
import type { Db } from './sqlite.js';

/**
 * One vehicle as the public feed needs it, as a tuple (a page of 5,000 crosses the thread boundary as
 * structured clone, where tuples of primitives are the cheapest shape):
 * [publicId, type, status, lat, lon, battery, online (1/0/null), lastSeenAt, updatedAt].
 */
export type GbfsVehicleRow = readonly [string, string, string, number, number, number | null, 0 | 1 | null, number | null, number];

export interface GbfsVehiclePage {
  readonly rows: readonly GbfsVehicleRow[];
  /** Public id to continue after; null when this was the last page. */
  readonly next: string | null;
}

/**
 * The shard's side of `vehicle_status.json` (server/gbfs/): its vehicles in pages by public id — never
 * by internal id, whose order would let a reader follow a vehicle across its id rotations by its place
 * in the list.
 * In-use vehicles are left out here (GBFS: vehicles on a trip MUST NOT be published). A page is one
 * indexed range scan, a few milliseconds for 5,000 rows, so a feed rebuild interleaves with the shard's
 * actors instead of holding its thread for the whole fleet.
 */
export class GbfsVehicleReads {
  private readonly page: Statement<[string, number], GbfsVehicleRow>;

  constructor(db: Db) {
    this.page = db
      .prepare<[string, number], GbfsVehicleRow>(
        `SELECT public_id, type, status, lat, lon, battery, online, last_seen_at, updated_at FROM vehicles
          WHERE public_id > ? AND status != 'IN_USE' ORDER BY public_id LIMIT ?`,
      )
      .raw(true);
  }

  read(afterId: string, limit: number): GbfsVehiclePage {
    const rows = this.page.all(afterId, limit);
    const last = rows.at(-1);
    return { rows, next: rows.length === limit && last ? last[0] : null };
  }
}
