import { MIN_BOOKABLE_BATTERY } from '../../actors/vehicle/decider.js';
import { CURRENCY, tariffOf } from '../../actors/booking/pricing.js';
import { UNRESTRICTED, type OperatingArea } from '../../actors/contract/operating-area.js';
import type { VehicleType } from '../../actors/contract/views.js';
import { createHash } from 'node:crypto';
import type { GbfsVehiclePage, GbfsVehicleRow } from '../../persistence/gbfs-vehicles.js';
import type { FleetConfig } from '../config.js';

/**
 * The GBFS 3.0 documents (docs/gbfs.md), pure: each feed's `data` from configuration, the tariff table,
 * the operating area or a page of vehicle rows. server/gbfs/feeds.ts wraps them with `last_updated`,
 * `ttl` and `version` and serves them.
 */

export const GBFS_VERSION = '3.0';
export const FEED_NAMES = ['gbfs', 'system_information', 'vehicle_types', 'vehicle_status', 'system_pricing_plans', 'geofencing_zones'] as const;
export type FeedName = (typeof FEED_NAMES)[number];

const VEHICLE_TYPE_IDS: readonly VehicleType[] = ['car', 'scooter', 'bike'];

/** The fleet's vehicle types as GBFS knows them; every one is motorized, so each has its range. */
const TYPE_PROFILES: Record<VehicleType, { readonly form_factor: string; readonly propulsion_type: string; readonly max_range_meters: number; readonly name: string }> = {
  car: { form_factor: 'car', propulsion_type: 'electric', max_range_meters: 300_000, name: 'Electric car' },
  scooter: { form_factor: 'scooter_standing', propulsion_type: 'electric', max_range_meters: 40_000, name: 'E-scooter' },
  bike: { form_factor: 'bicycle', propulsion_type: 'electric_assist', max_range_meters: 60_000, name: 'E-bike' },
};

export const pricingPlanId = (vehicleType: string): string => `${vehicleType}-per-minute`;

const text = (value: string, language: string) => [{ text: value, language }];

export function gbfsDiscovery(baseUrl: string): unknown {
  return { feeds: FEED_NAMES.map((name) => ({ name, url: `${baseUrl}/gbfs/${name}.json` })) };
}

export function systemInformation(gbfs: FleetConfig['gbfs']): unknown {
  return {
    system_id: gbfs.systemId,
    languages: [gbfs.language],
    name: text(gbfs.name, gbfs.language),
    opening_hours: gbfs.openingHours,
    feed_contact_email: gbfs.feedContactEmail,
    timezone: gbfs.timezone,
  };
}

export function vehicleTypes(language: string, reservationWindowMs: number): unknown {
  return {
    vehicle_types: VEHICLE_TYPE_IDS.map((id) => {
      const profile = TYPE_PROFILES[id];
      return {
        vehicle_type_id: id,
        form_factor: profile.form_factor,
        propulsion_type: profile.propulsion_type,
        max_range_meters: profile.max_range_meters,
        name: text(profile.name, language),
        default_reserve_time: Math.floor(reservationWindowMs / 60_000),
        return_constraint: 'free_floating',
        default_pricing_plan_id: pricingPlanId(id),
        pricing_plan_ids: [pricingPlanId(id)],
      };
    }),
  };
}

/**
 * The tariffs the booking charges with (actors/booking/pricing.ts): an unlock fee, then a rate per
 * started minute from minute 0 (the first minute is charged at once, as `tripCharge` counts it).
 */
export function systemPricingPlans(language: string): unknown {
  return {
    plans: VEHICLE_TYPE_IDS.map((id) => {
      const { unlockFee, perMinute } = tariffOf(id);
      const price = unlockFee / 100;
      const rate = perMinute / 100;
      return {
        plan_id: pricingPlanId(id),
        name: text(`${TYPE_PROFILES[id].name}, per minute`, language),
        currency: CURRENCY,
        price,
        is_taxable: false,
        description: text(`${price.toFixed(2)} ${CURRENCY} to unlock, then ${rate.toFixed(2)} ${CURRENCY} per started minute.`, language),
        per_min_pricing: [{ start: 0, rate, interval: 1 }],
      };
    }),
  };
}

/** The operating area as published; none: no zone, and a global rule that allows everything. */
export function geofencingZones(area: OperatingArea | null): unknown {
  return area ?? { geofencing_zones: { type: 'FeatureCollection', features: [] }, global_rules: [UNRESTRICTED] };
}

const iso = (epochMs: number): string => new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * One row of a shard's page as a GBFS vehicle. In-use vehicles never reach here (the shard leaves them
 * out). Offline, under MAINTENANCE, below the bookable charge, or with a charge never reported: on the
 * street but not rentable now, so `is_disabled`. The range is the type's range scaled by the charge.
 */
export function gbfsVehicle(row: GbfsVehicleRow): Record<string, unknown> {
  const [publicId, type, status, lat, lon, battery, online, lastSeenAt, updatedAt] = row;
  const maxRange = TYPE_PROFILES[type as VehicleType]?.max_range_meters ?? 0;
  const charge = battery === null ? 0 : Math.min(100, Math.max(0, battery));
  const disabled = online === 0 || status === 'MAINTENANCE' || battery === null || battery < MIN_BOOKABLE_BATTERY;
  return {
    vehicle_id: publicId,
    lat: Math.round(lat * 1e6) / 1e6,
    lon: Math.round(lon * 1e6) / 1e6,
    is_reserved: status === 'RESERVED',
    is_disabled: disabled,
    vehicle_type_id: type,
    last_reported: iso(lastSeenAt ?? updatedAt),
    current_range_meters: Math.round((maxRange * charge) / 100),
    ...(battery !== null && { current_fuel_percent: Math.round(charge) / 100 }),
    pricing_plan_id: pricingPlanId(type),
  };
}

export { iso as rfc3339 };

/** A page of vehicle_status.json as the shard answers it: JSON already, so the main thread only joins. */
export interface GbfsVehicleChunk {
  /** The page's vehicles as JSON array items without the brackets ('' for none). */
  readonly json: string;
  /** sha256 of `json`: the feed's ETag is a hash of the pages' hashes. */
  readonly hash: string;
  readonly next: string | null;
}

/**
 * Runs on the shard's thread (the `gbfs-vehicles` read): the per-vehicle work — building and
 * serializing each vehicle — is spread over the shards instead of the main thread, which serves HTTP
 * for every shard. A string crosses the thread boundary as one copy.
 */
export function gbfsVehicleChunk(page: GbfsVehiclePage): GbfsVehicleChunk {
  const json = page.rows.length === 0 ? '' : JSON.stringify(page.rows.map(gbfsVehicle)).slice(1, -1);
  return { json, hash: createHash('sha256').update(json).digest('base64url'), next: page.next };
}
