import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseOperatingArea, ruleAt, type OperatingArea } from '../../actors/contract/operating-area.js';
import { areaPlaces } from '../../simulator/area-places.js';
import { seededRandom } from '../../simulator/random.js';

const ALEXANDERPLATZ = { lat: 52.5219, lon: 13.4132 };

function fixture(): OperatingArea {
  const parsed = parseOperatingArea(JSON.parse(readFileSync(new URL('../fixtures/operating-area/berlin-mitte.json', import.meta.url), 'utf8')));
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.area;
}

describe('where the simulator ends rides (areaPlaces)', () => {
  it('inside places allow start and end, outside places forbid the end, for every type', () => {
    const area = fixture();
    const places = areaPlaces(area, ALEXANDERPLATZ, 1000, seededRandom(3));
    const random = seededRandom(4);
    for (const type of ['car', 'scooter', 'bike'] as const) {
      expect(places.restricts(type)).toBe(true);
      for (let draw = 0; draw < 20; draw += 1) {
        const inside = places.inside(type, random);
        const outside = places.outside(type, random);
        if (inside === null || outside === null) throw new Error(`no ${inside === null ? 'inside' : 'outside'} place for ${type}`);
        const there = ruleAt(area, inside.lon, inside.lat, type, Date.now());
        expect(there.ride_end_allowed && there.ride_start_allowed).toBe(true);
        expect(ruleAt(area, outside.lon, outside.lat, type, Date.now()).ride_end_allowed).toBe(false);
      }
    }
  });

  it('inside places come from near the centre: within the run radius when the area allows it there', () => {
    const places = areaPlaces(fixture(), ALEXANDERPLATZ, 500, seededRandom(1));
    const inside = places.inside('scooter', seededRandom(2));
    if (inside === null) throw new Error('no inside place');
    const metres = Math.hypot((inside.lat - ALEXANDERPLATZ.lat) * 111_320, (inside.lon - ALEXANDERPLATZ.lon) * 111_320 * Math.cos((ALEXANDERPLATZ.lat * Math.PI) / 180));
    expect(metres).toBeLessThanOrEqual(500);
  });

  it('a type the area never forbids to end is not restricted, and has no outside place', () => {
    const area = fixture();
    const scootersOnly: OperatingArea = { ...area, global_rules: [{ ...area.global_rules[0]!, vehicle_type_ids: ['scooter'] }], geofencing_zones: { ...area.geofencing_zones, features: area.geofencing_zones.features.map((feature) => ({ ...feature, properties: { ...feature.properties, rules: feature.properties.rules?.map((rule) => ({ ...rule, vehicle_type_ids: ['scooter'] })) } })) } };
    const places = areaPlaces(scootersOnly, ALEXANDERPLATZ, 1000, seededRandom(1));
    expect(places.restricts('car')).toBe(false);
    expect(places.outside('car', seededRandom(1))).toBeNull();
    expect(places.restricts('scooter')).toBe(true);
  });
});
