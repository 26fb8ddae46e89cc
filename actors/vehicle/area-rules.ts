import type { Rejection } from '../contract/rejections.js';
import { endAllowedEverywhere, ruleAt, zoneLabel, zoneRuleAt, type OperatingArea } from '../contract/operating-area.js';
import type { VehicleType } from '../contract/views.js';

/**
 * Where a ride may start and end (docs/gbfs.md, "The operating area"), pure. The position is the
 * vehicle's latest telemetry fix; before its first fix, the position it was registered at.
 */

export interface PositionFix {
  readonly lat: number;
  readonly lon: number;
  /** When the device reported it; null: no telemetry yet, the registered position. */
  readonly fixAt: number | null;
}

export interface AreaPolicy {
  readonly area: OperatingArea;
  /** An end of trip is judged only on a fix at most this old (OPERATING_AREA_MAX_FIX_AGE_MS). */
  readonly maxFixAgeMs: number;
}

/** What the shell hands the decider for a check: the policy in force and the vehicle's position. */
export interface AreaCheck {
  readonly policy: AreaPolicy;
  readonly position: PositionFix;
}

/**
 * A reservation (the start of a ride) is judged at the last known position whatever its age: a
 * parked, locked vehicle does not move, and before any telemetry it stands where it was registered.
 */
export function startRefusal(vehicleId: string, vehicleType: VehicleType, check: AreaCheck, at: number): Rejection | null {
  const { lat, lon } = check.position;
  return ruleAt(check.policy.area, lon, lat, vehicleType, at).ride_start_allowed ? null : { type: 'RideStartNotAllowed', vehicleId, lat, lon };
}

/**
 * An end of trip is judged at a fresh fix: the vehicle has been moving, so an old fix (or only the
 * registered position) says nothing about where it stands now. Without one the end is refused as
 * VehiclePositionUnknown — unless the area lets this type end a ride everywhere, which needs no fix.
 */
export function endRefusal(vehicleId: string, vehicleType: VehicleType, check: AreaCheck, at: number): Rejection | null {
  const { area, maxFixAgeMs } = check.policy;
  if (endAllowedEverywhere(area, vehicleType)) return null;
  const { lat, lon, fixAt } = check.position;
  if (fixAt === null || at - fixAt > maxFixAgeMs) {
    return { type: 'VehiclePositionUnknown', vehicleId, lastFixAt: fixAt === null ? null : new Date(fixAt).toISOString(), maxAgeMs: maxFixAgeMs };
  }
  return ruleAt(area, lon, lat, vehicleType, at).ride_end_allowed ? null : { type: 'RideEndNotAllowed', vehicleId, lat, lon };
}

/**
 * What a rider did wrong during a ride, judged on one telemetry reading (docs/gbfs.md, "During a
 * ride"): the rule at the reading's position (the same rule `ruleAt` finds for a start or an end)
 * forbids riding through (`ride_through_allowed: false`), or its `maximum_speed_kph` is below the
 * reported speed. The server only records these: the device limits its speed itself, and a LOCK of a
 * moving vehicle would endanger its rider.
 */
export type RideViolationKind = 'ride-through-not-allowed' | 'speed-limit-exceeded';

export interface RideViolation {
  readonly kind: RideViolationKind;
  /** The zone's index in the area; null: the global rules. */
  readonly zone: number | null;
  readonly zoneName: string;
  /** The zone's maximum_speed_kph (speed-limit-exceeded); null for ride-through-not-allowed. */
  readonly limitKph: number | null;
}

export interface RideReading {
  readonly lat: number;
  readonly lon: number;
  readonly speedKmh: number;
  /** When the device took it (a zone's start/end times are judged at this instant). */
  readonly at: number;
}

export function rideViolations(area: OperatingArea, vehicleType: VehicleType, reading: RideReading): RideViolation[] {
  const { rule, zone } = zoneRuleAt(area, reading.lon, reading.lat, vehicleType, reading.at);
  const violations: RideViolation[] = [];
  if (!rule.ride_through_allowed) violations.push({ kind: 'ride-through-not-allowed', zone, zoneName: zoneLabel(area, zone), limitKph: null });
  if (rule.maximum_speed_kph !== undefined && reading.speedKmh > rule.maximum_speed_kph) {
    violations.push({ kind: 'speed-limit-exceeded', zone, zoneName: zoneLabel(area, zone), limitKph: rule.maximum_speed_kph });
  }
  return violations;
}
