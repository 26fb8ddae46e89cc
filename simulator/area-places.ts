import { endAllowedEverywhere, ruleAt, type OperatingArea } from '../actors/contract/operating-area.js';
import type { VehicleType } from '../actors/contract/views.js';
import type { Random } from './random.js';

/**
 * Where the simulator's riders leave their vehicles, from the operating area the server publishes
 * (`/gbfs/geofencing_zones.json`), pure and seeded. A rider ends a ride at an `inside` place (the type
 * may end a ride and start the next one there); a rider of the `outside` journey kind first tries a
 * place where the type may not end one.
 */

export interface GeoPoint {
  readonly lat: number;
  readonly lon: number;
}

export interface AreaPlaces {
  /** The area forbids this type to end a ride somewhere: a rider must choose where to end. */
  restricts(type: VehicleType): boolean;
  /** A place where the type may end a ride (and start the next); null: none found near the centre. */
  inside(type: VehicleType, random: Random): GeoPoint | null;
  /** A place where the type may not end a ride; null: none found within reach. */
  outside(type: VehicleType, random: Random): GeoPoint | null;
}

const TYPES: readonly VehicleType[] = ['car', 'scooter', 'bike'];
const METRES_PER_DEGREE = 111_320;
/** Candidates drawn per ring; places kept per type and kind. */
const SAMPLES_PER_RING = 96;
const KEPT = 16;
/** Rings double from the run's radius up to this: an outside place may lie beyond a whole city district. */
const FURTHEST_M = 64_000;

/**
 * Samples discs of growing radius around `centre` (the run's radius, then twice, four times … as far)
 * and keeps, per type, the first places where an end is allowed and where it is not. Insides come
 * from the smallest discs, so riders stay where the customers are.
 */
export function areaPlaces(area: OperatingArea, centre: GeoPoint, radiusM: number, random: Random, at = Date.now()): AreaPlaces {
  const insides = new Map<VehicleType, GeoPoint[]>(TYPES.map((type) => [type, []]));
  const outsides = new Map<VehicleType, GeoPoint[]>(TYPES.map((type) => [type, []]));
  const restricted = new Set(TYPES.filter((type) => !endAllowedEverywhere(area, type)));
  const full = () => TYPES.every((type) => !restricted.has(type) || (insides.get(type)!.length >= KEPT && outsides.get(type)!.length >= KEPT));
  for (let ringM = Math.min(FURTHEST_M, Math.max(1, radiusM)); !full(); ringM = Math.min(FURTHEST_M, ringM * 2)) {
    for (let sample = 0; sample < SAMPLES_PER_RING; sample += 1) {
      const point = pointWithin(centre, ringM, random);
      for (const type of restricted) {
        const rule = ruleAt(area, point.lon, point.lat, type, at);
        const list = rule.ride_end_allowed && rule.ride_start_allowed ? insides.get(type)! : rule.ride_end_allowed ? null : outsides.get(type)!;
        if (list && list.length < KEPT) list.push(point);
      }
    }
    if (ringM >= FURTHEST_M) break;
  }
  const pick = (lists: Map<VehicleType, GeoPoint[]>, type: VehicleType, random: Random): GeoPoint | null => {
    const list = lists.get(type) ?? [];
    return list.length === 0 ? null : list[Math.floor(random() * list.length)]!;
  };
  return {
    restricts: (type) => restricted.has(type),
    inside: (type, rng) => pick(insides, type, rng),
    outside: (type, rng) => pick(outsides, type, rng),
  };
}

/** Uniform in a disc of `radiusM` around the centre, rounded as a GPS reports (6 decimals, ~0.1 m). */
function pointWithin(centre: GeoPoint, radiusM: number, random: Random): GeoPoint {
  const angle = random() * 2 * Math.PI;
  const distance = radiusM * Math.sqrt(random());
  return {
    lat: round6(centre.lat + (distance * Math.cos(angle)) / METRES_PER_DEGREE),
    lon: round6(centre.lon + (distance * Math.sin(angle)) / (METRES_PER_DEGREE * Math.cos((centre.lat * Math.PI) / 180))),
  };
}

const round6 = (value: number): number => Math.round(value * 1e6) / 1e6;
