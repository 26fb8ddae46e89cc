import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pointInMultiPolygon, pointInRing, ringProblem, selfIntersection } from '../../actors/contract/geometry.js';
import { endAllowedEverywhere, limitsRides, parseOperatingArea, ruleAt, zoneLabel, type OperatingArea } from '../../actors/contract/operating-area.js';
import { endRefusal, rideViolations, startRefusal, type AreaCheck } from '../../actors/vehicle/area-rules.js';
import { decide, evolve, type VehicleCommand, type VehicleEvent } from '../../actors/vehicle/decider.js';
import { initialVehicleState } from '../../actors/vehicle/state.js';
import { specification } from '../helpers/decider-spec.js';

const FIXTURE = new URL('../fixtures/operating-area/berlin-mitte.json', import.meta.url);
const area = (): OperatingArea => {
  const parsed = parseOperatingArea(JSON.parse(readFileSync(FIXTURE, 'utf8')));
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.area;
};

const square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]];
const INSIDE = { lat: 52.52, lon: 13.41 }; // Alexanderplatz, in Mitte
const PARK = { lat: 52.515, lon: 13.35 }; // Tiergarten: no start, no end
const OUTSIDE = { lat: 52.4, lon: 13.1 }; // Potsdam: global rules
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);

describe('geometry', () => {
  it('finds points inside and outside a ring, a point on an edge inside', () => {
    expect(pointInRing(5, 5, square)).toBe(true);
    expect(pointInRing(11, 5, square)).toBe(false);
    expect(pointInRing(10, 5, square)).toBe(true);
  });

  it('a hole is outside its polygon', () => {
    const withHole = [[square, [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]]];
    expect(pointInMultiPolygon(5, 5, withHole)).toBe(false);
    expect(pointInMultiPolygon(2, 2, withHole)).toBe(true);
  });

  it('names an open ring, a short ring and a ring that crosses itself', () => {
    expect(ringProblem(square)).toBeNull();
    expect(ringProblem([[0, 0], [10, 0], [10, 10], [0, 10]])).toMatch(/^is open/);
    expect(ringProblem([[0, 0], [1, 1], [0, 0]])).toMatch(/at least 4/);
    const bowTie = [[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]];
    expect(selfIntersection(bowTie)).toEqual([0, 2]);
    expect(ringProblem(bowTie)).toMatch(/intersects itself/);
  });
});

describe('parseOperatingArea', () => {
  it('accepts the fixture, and a whole GBFS feed file by its data', () => {
    expect(area().geofencing_zones.features).toHaveLength(2);
    expect(parseOperatingArea({ last_updated: '2026-01-01T00:00:00Z', ttl: 0, version: '3.0', data: area() }).ok).toBe(true);
  });

  it('refuses an open ring, naming the zone and ring', () => {
    const bad = area();
    const ring = bad.geofencing_zones.features[1]!.geometry.coordinates[0]![0]!;
    ring.pop();
    const parsed = parseOperatingArea(bad);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.errors[0]).toMatch(/^zone 1 \(Berlin Mitte\), polygon 0, ring 0 is open/);
  });

  it('refuses a wrong shape with the path of the problem', () => {
    const parsed = parseOperatingArea({ geofencing_zones: { type: 'FeatureCollection', features: [] } });
    expect(!parsed.ok && parsed.errors.join()).toMatch(/global_rules/);
  });
});

describe('ruleAt: GBFS precedence', () => {
  it('the first zone that contains the point wins, then the global rules', () => {
    expect(ruleAt(area(), INSIDE.lon, INSIDE.lat, 'car', T0).ride_end_allowed).toBe(true);
    expect(ruleAt(area(), PARK.lon, PARK.lat, 'car', T0).ride_end_allowed).toBe(false);
    expect(ruleAt(area(), OUTSIDE.lon, OUTSIDE.lat, 'car', T0).ride_start_allowed).toBe(false);
  });

  it('a rule for other vehicle types does not apply; a zone not yet in effect does not either', () => {
    const scoped = area();
    scoped.geofencing_zones.features[0]!.properties.rules![0]!.vehicle_type_ids = ['scooter'];
    expect(ruleAt(scoped, PARK.lon, PARK.lat, 'car', T0).ride_end_allowed).toBe(true);
    expect(ruleAt(scoped, PARK.lon, PARK.lat, 'scooter', T0).ride_end_allowed).toBe(false);
    const later = area();
    later.geofencing_zones.features[0]!.properties.start = '2030-01-01T00:00:00Z';
    expect(ruleAt(later, PARK.lon, PARK.lat, 'car', T0).ride_end_allowed).toBe(true);
  });
});

describe('start and end of a ride in the operating area', () => {
  const check = (position: { lat: number; lon: number }, fixAt: number | null): AreaCheck => ({ policy: { area: area(), maxFixAgeMs: 120_000 }, position: { ...position, fixAt } });

  it('a start is judged at the last known position, however old (a parked vehicle does not move)', () => {
    expect(startRefusal('v', 'car', check(INSIDE, null), T0)).toBeNull();
    expect(startRefusal('v', 'car', check(OUTSIDE, T0 - 86_400_000), T0)).toEqual({ type: 'RideStartNotAllowed', vehicleId: 'v', ...OUTSIDE });
  });

  it('an end needs a fresh fix where ending is allowed', () => {
    expect(endRefusal('v', 'car', check(INSIDE, T0 - 1_000), T0)).toBeNull();
    expect(endRefusal('v', 'car', check(PARK, T0 - 1_000), T0)).toEqual({ type: 'RideEndNotAllowed', vehicleId: 'v', ...PARK });
    expect(endRefusal('v', 'car', check(INSIDE, T0 - 120_001), T0)).toEqual({
      type: 'VehiclePositionUnknown',
      vehicleId: 'v',
      lastFixAt: new Date(T0 - 120_001).toISOString(),
      maxAgeMs: 120_000,
    });
    expect(endRefusal('v', 'car', check(INSIDE, null), T0)).toMatchObject({ type: 'VehiclePositionUnknown', lastFixAt: null });
  });

  it('needs no fix where no rule forbids an end for the type', () => {
    const open = area();
    open.global_rules[0]!.ride_end_allowed = true;
    open.geofencing_zones.features[0]!.properties.rules![0]!.vehicle_type_ids = ['scooter'];
    expect(endAllowedEverywhere(open, 'car')).toBe(true);
    expect(endRefusal('v', 'car', { policy: { area: open, maxFixAgeMs: 1 }, position: { ...OUTSIDE, fixAt: null } }, T0)).toBeNull();
    expect(endAllowedEverywhere(open, 'scooter')).toBe(false);
  });
});

describe('the vehicle decider with an operating area', () => {
  const spec = specification({ decide, evolve, initialState: () => initialVehicleState });
  const V = 'v-1';
  const registered: VehicleEvent = { type: 'VehicleRegistered', vehicleId: V, vehicleType: 'car', model: null, location: INSIDE, at: T0 };
  const inUse: VehicleEvent[] = [
    registered,
    { type: 'VehicleReserved', vehicleId: V, bookingId: 'b', at: T0 },
    { type: 'UnlockRequested', vehicleId: V, bookingId: 'b', commandId: 'u', at: T0, expiresAt: T0 + 5_000 },
    { type: 'VehicleUnlocked', vehicleId: V, bookingId: 'b', commandId: 'u', at: T0 + 1_000 },
  ];
  const at = T0 + 600_000;
  const areaCheck = (position: { lat: number; lon: number }, fixAt: number | null = at - 1_000): AreaCheck => ({ policy: { area: area(), maxFixAgeMs: 120_000 }, position: { ...position, fixAt } });
  const reserve = (position: { lat: number; lon: number }): VehicleCommand => ({ type: 'ReserveVehicle', vehicleId: V, bookingId: 'b', conditions: { online: true, battery: 80 }, at, areaCheck: areaCheck(position, null) });
  const lock = (check?: AreaCheck): VehicleCommand => ({ type: 'RequestDeviceCommand', vehicleId: V, command: 'LOCK', bookingId: 'b', commandId: 'l', online: true, neverSeen: false, at, expiresAt: at + 5_000, ...(check && { areaCheck: check }) });

  it('refuses a reservation outside the area and records nothing', () => {
    spec.given([registered]).when(reserve(OUTSIDE)).thenRejects({ type: 'RideStartNotAllowed', vehicleId: V, ...OUTSIDE });
    spec.given([registered]).when(reserve(INSIDE)).then([{ type: 'VehicleReserved', vehicleId: V, bookingId: 'b', at }]);
  });

  it('refuses the LOCK that would end a trip where ending is not allowed; allows it inside', () => {
    spec.given(inUse).when(lock(areaCheck(PARK))).thenRejects({ type: 'RideEndNotAllowed', vehicleId: V, ...PARK });
    spec.given(inUse).when(lock(areaCheck(INSIDE))).then([{ type: 'LockRequested', vehicleId: V, bookingId: 'b', commandId: 'l', at, expiresAt: at + 5_000 }]);
  });

  it('a LOCK without a check (a relock, an operator ending the trip) is never refused for where the vehicle is', () => {
    spec.given(inUse).when(lock()).then([{ type: 'LockRequested', vehicleId: V, bookingId: 'b', commandId: 'l', at, expiresAt: at + 5_000 }]);
  });
});

describe('during a ride: ride-through and speed limits (rideViolations)', () => {
  // The fixture: the Tiergarten (zone 0) limits every type to 10 km/h and allows riding through;
  // Mitte (zone 1) has no limit; the global rules none either.
  const reading = (where: { lat: number; lon: number }, speedKmh: number) => ({ ...where, speedKmh, at: T0 });
  const noThrough = (base: OperatingArea, types?: string[]): OperatingArea => ({
    ...base,
    geofencing_zones: {
      ...base.geofencing_zones,
      features: base.geofencing_zones.features.map((feature, index) =>
        index === 0 ? { ...feature, properties: { ...feature.properties, rules: [{ ride_start_allowed: false, ride_end_allowed: false, ride_through_allowed: false, ...(types && { vehicle_type_ids: types }) }] } } : feature,
      ),
    },
  });

  it('above the zone\'s maximum_speed_kph is speeding, at or below it is not', () => {
    expect(rideViolations(area(), 'scooter', reading(PARK, 10))).toEqual([]);
    expect(rideViolations(area(), 'scooter', reading(PARK, 10.5))).toEqual([{ kind: 'speed-limit-exceeded', zone: 0, zoneName: 'Tiergarten (no parking)', limitKph: 10 }]);
    // Mitte and the rest of the world have no limit.
    expect(rideViolations(area(), 'car', reading(INSIDE, 120))).toEqual([]);
    expect(rideViolations(area(), 'car', reading(OUTSIDE, 120))).toEqual([]);
  });

  it('a zone without ride-through is a violation at any speed, for the types its rule names only', () => {
    expect(rideViolations(noThrough(area()), 'bike', reading(PARK, 0))).toEqual([{ kind: 'ride-through-not-allowed', zone: 0, zoneName: 'Tiergarten (no parking)', limitKph: null }]);
    // A rule for scooters only: a car in the park falls through to the next zone that has one for it (Mitte).
    expect(rideViolations(noThrough(area(), ['scooter']), 'car', reading(PARK, 30))).toEqual([]);
    expect(rideViolations(noThrough(area(), ['scooter']), 'scooter', reading(PARK, 30)).map((violation) => violation.kind)).toEqual(['ride-through-not-allowed']);
  });

  it('the global rules apply where no zone does, named as such', () => {
    const limited: OperatingArea = { ...area(), global_rules: [{ ride_start_allowed: false, ride_end_allowed: false, ride_through_allowed: false, maximum_speed_kph: 25 }] };
    expect(rideViolations(limited, 'car', reading(OUTSIDE, 30))).toEqual([
      { kind: 'ride-through-not-allowed', zone: null, zoneName: 'global rules', limitKph: null },
      { kind: 'speed-limit-exceeded', zone: null, zoneName: 'global rules', limitKph: 25 },
    ]);
    expect(zoneLabel(limited, 1)).toBe('Berlin Mitte');
  });

  it('an area is worth judging rides by only when a rule limits rides', () => {
    expect(limitsRides(area())).toBe(true);
    const startEndOnly: OperatingArea = { ...area(), geofencing_zones: { ...area().geofencing_zones, features: area().geofencing_zones.features.slice(1) } };
    expect(limitsRides(startEndOnly)).toBe(false);
  });
});
