import { afterEach, describe, expect, it } from 'vitest';
import { areaViolationPurge, AreaViolationReads } from '../../persistence/area-violations.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { loadConfig } from '../../server/config.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

/**
 * AREA_VIOLATION_RETENTION_MS: the shard's hourly housekeeping deletes the ride violation episodes whose
 * last reading is older than the retention (server/housekeeping.ts), in chunks, open ones too (an
 * episode is closed only by a later judged reading, which a silent vehicle never sends).
 */
describe('ride violation episodes past their retention', () => {
  let temp: TempDbFile | undefined;
  let db: Db | undefined;
  afterEach(() => {
    db?.close();
    temp?.cleanup();
  });

  const DAY = 24 * 60 * 60_000;
  const now = Date.UTC(2026, 11, 7);
  const episode = (db: Db, id: string, startedAt: number, lastAt: number, open: boolean): void => {
    db.prepare(
      `INSERT INTO area_violations (vehicle_id, vehicle_type, booking_id, kind, zone, limit_kph, lat, lon, max_speed_kmh, readings, started_at, last_at, open)
       VALUES (?, 'scooter', ?, 'speed-limit-exceeded', 'Mitte', 20, 52.5, 13.4, 31, 3, ?, ?, ?)`,
    ).run(`v-${id}`, `bk-${id}`, startedAt, lastAt, open ? 1 : 0);
  };
  const left = (db: Db): string[] =>
    new AreaViolationReads(db)
      .list({ since: null, vehicleId: null, bookingId: null, limit: 100 })
      .map((row) => row.vehicleId)
      .sort();

  it('deletes the episodes last seen before the cut, in chunks, open ones too, and keeps those seen since', () => {
    temp = tempDbFile();
    db = openDatabase(temp.file);
    const cut = now - 90 * DAY;
    for (let n = 0; n < 7; n += 1) episode(db, `old-${n}`, cut - 10 * DAY, cut - 9 * DAY, false);
    episode(db, 'old-and-open', cut - 10 * DAY, cut - 9 * DAY, true);
    episode(db, 'began-before-ended-after', cut - DAY, cut + DAY, false);
    episode(db, 'began-before-still-open', cut - DAY, now - DAY, true);
    episode(db, 'recent', now - DAY, now - DAY, false);
    const purge = areaViolationPurge(db);

    expect(purge(cut, 5)).toBe(5);
    expect(purge(cut, 5)).toBe(3);
    expect(purge(cut, 5)).toBe(0);
    expect(left(db)).toEqual(['v-began-before-ended-after', 'v-began-before-still-open', 'v-recent']);
  });

  it('keeps 90 days unless told otherwise', () => {
    expect(loadConfig({}).areaViolationRetentionMs).toBe(90 * DAY);
    expect(loadConfig({ AREA_VIOLATION_RETENTION_MS: String(DAY) }).areaViolationRetentionMs).toBe(DAY);
    expect(() => loadConfig({ AREA_VIOLATION_RETENTION_MS: '0' })).toThrow(/AREA_VIOLATION_RETENTION_MS/);
  });
});
