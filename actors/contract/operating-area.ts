import { z } from 'zod';
import { pointInMultiPolygon, ringProblem } from './geometry.js';

/**
 * The operating area (docs/gbfs.md, "The operating area"): the `data` of a GBFS 3.0
 * `geofencing_zones.json` — a GeoJSON FeatureCollection of MultiPolygons whose properties carry GBFS
 * rules, plus `global_rules` for everywhere no zone covers. The operator's file is exactly what the
 * public feed publishes, so there is one document and no translation.
 */

const localized = z.array(z.object({ text: z.string(), language: z.string().regex(/^[a-z]{2,3}(-[A-Z]{2})?$/) }).strict());

const rule = z
  .object({
    vehicle_type_ids: z.array(z.string().min(1)).optional(),
    ride_start_allowed: z.boolean(),
    ride_end_allowed: z.boolean(),
    ride_through_allowed: z.boolean(),
    maximum_speed_kph: z.number().int().min(0).optional(),
    station_parking: z.boolean().optional(),
  })
  .strict();

const position = z.array(z.number().finite()).min(2).max(3);
const zone = z
  .object({
    type: z.literal('Feature'),
    geometry: z.object({ type: z.literal('MultiPolygon'), coordinates: z.array(z.array(z.array(position))).min(1) }).strict(),
    properties: z
      .object({
        name: localized.optional(),
        start: z.iso.datetime({ offset: true }).optional(),
        end: z.iso.datetime({ offset: true }).optional(),
        rules: z.array(rule).optional(),
      })
      .strict(),
  })
  .strict();

export const operatingAreaSchema = z
  .object({
    geofencing_zones: z.object({ type: z.literal('FeatureCollection'), features: z.array(zone) }).strict(),
    global_rules: z.array(rule),
  })
  .strict();

export type OperatingArea = z.infer<typeof operatingAreaSchema>;
export type ZoneRule = z.infer<typeof rule>;

/** Everything allowed: what applies with no operating area at all (no file: no restriction). */
export const UNRESTRICTED: ZoneRule = { ride_start_allowed: true, ride_end_allowed: true, ride_through_allowed: true };

export type ParsedArea = { readonly ok: true; readonly area: OperatingArea } | { readonly ok: false; readonly errors: readonly string[] };

/**
 * Checks an operator's document: its shape (zod), then every ring (closed, 4 positions or more, not
 * crossing itself) and every position (lon −180…180, lat −90…90). A whole GBFS feed file (with
 * `version` and `data`) is accepted too: its `data` is the area.
 */
export function parseOperatingArea(input: unknown): ParsedArea {
  const document = isFeedFile(input) ? input.data : input;
  const parsed = operatingAreaSchema.safeParse(document);
  if (!parsed.success) {
    return { ok: false, errors: parsed.error.issues.slice(0, 10).map((issue) => `${issue.path.length ? issue.path.join('.') : '(document)'}: ${issue.message}`) };
  }
  const errors: string[] = [];
  parsed.data.geofencing_zones.features.forEach((feature, zoneIndex) => {
    feature.geometry.coordinates.forEach((polygon, polygonIndex) => {
      if (polygon.length === 0) errors.push(`zone ${zoneIndex}, polygon ${polygonIndex}: has no ring`);
      polygon.forEach((ring, ringIndex) => {
        const where = `zone ${zoneIndex}${zoneName(feature)}, polygon ${polygonIndex}, ring ${ringIndex}`;
        const bad = ring.find(([lon = Number.NaN, lat = Number.NaN]) => !(Math.abs(lon) <= 180 && Math.abs(lat) <= 90));
        if (bad) errors.push(`${where}: position [${bad.join(', ')}] is not [lon, lat] on earth`);
        const problem = ringProblem(ring);
        if (problem) errors.push(`${where} ${problem}`);
      });
    });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, area: parsed.data };
}

/**
 * The rule for a vehicle type at a point (GBFS 3.0): the first zone in the array that contains the
 * point and has a rule for the type wins (zones are listed by precedence); within a zone the first
 * matching rule; a rule without `vehicle_type_ids` applies to every type. Where no zone applies, the
 * first matching global rule; where none matches either, nothing is restricted.
 */
export function ruleAt(area: OperatingArea, lon: number, lat: number, vehicleTypeId: string, at: number): ZoneRule {
  return zoneRuleAt(area, lon, lat, vehicleTypeId, at).rule;
}

/** The rule `ruleAt` finds, and where it comes from: the zone's index, or null for the global rules (or none). */
export interface RuleAtPoint {
  readonly rule: ZoneRule;
  readonly zone: number | null;
}

export function zoneRuleAt(area: OperatingArea, lon: number, lat: number, vehicleTypeId: string, at: number): RuleAtPoint {
  for (const [zone, feature] of area.geofencing_zones.features.entries()) {
    const matching = feature.properties.rules?.find((candidate) => appliesTo(candidate, vehicleTypeId));
    if (!matching || !inEffect(feature.properties, at)) continue;
    if (pointInMultiPolygon(lon, lat, feature.geometry.coordinates)) return { rule: matching, zone };
  }
  return { rule: area.global_rules.find((candidate) => appliesTo(candidate, vehicleTypeId)) ?? UNRESTRICTED, zone: null };
}

/** How an operator recognises a zone: its first name, else `zone <index>`; null: the global rules. */
export function zoneLabel(area: OperatingArea, zone: number | null): string {
  if (zone === null) return 'global rules';
  return area.geofencing_zones.features[zone]?.properties.name?.[0]?.text ?? `zone ${zone}`;
}

/** Some rule limits what a rider does during a ride (no ride through, a speed limit): telemetry is worth judging. */
export function limitsRides(area: OperatingArea): boolean {
  const limits = (rule: ZoneRule) => !rule.ride_through_allowed || rule.maximum_speed_kph !== undefined;
  return area.global_rules.some(limits) || area.geofencing_zones.features.some((feature) => feature.properties.rules?.some(limits));
}

/** No rule that applies to the type forbids an end, in any zone or globally. */
export function endAllowedEverywhere(area: OperatingArea, vehicleType: string): boolean {
  const forbids = (rule: { readonly vehicle_type_ids?: readonly string[] | undefined; readonly ride_end_allowed: boolean }) =>
    !rule.ride_end_allowed && (!rule.vehicle_type_ids || rule.vehicle_type_ids.includes(vehicleType));
  return !area.global_rules.some(forbids) && !area.geofencing_zones.features.some((feature) => feature.properties.rules?.some(forbids));
}

const appliesTo = (candidate: ZoneRule, vehicleTypeId: string): boolean => !candidate.vehicle_type_ids || candidate.vehicle_type_ids.includes(vehicleTypeId);

/** A zone with `start`/`end` applies only between them. */
function inEffect(properties: { readonly start?: string | undefined; readonly end?: string | undefined }, at: number): boolean {
  if (properties.start && Date.parse(properties.start) > at) return false;
  if (properties.end && Date.parse(properties.end) <= at) return false;
  return true;
}

function zoneName(feature: { readonly properties: { readonly name?: ReadonlyArray<{ readonly text: string }> | undefined } }): string {
  const name = feature.properties.name?.[0]?.text;
  return name ? ` (${name})` : '';
}

function isFeedFile(input: unknown): input is { data: unknown } {
  return typeof input === 'object' && input !== null && 'version' in input && 'data' in input;
}
