import { describe, expect, it } from 'vitest';
import { notModified } from '../../api/routes/gbfs.js';
import type { GbfsFeed } from '../../api/ports.js';
import { gbfsVehicle, systemPricingPlans } from '../../server/gbfs/documents.js';
import { tariffOf } from '../../actors/booking/pricing.js';

const feed: GbfsFeed = { body: Buffer.from('{}'), gzipped: null, etag: '"abc"', lastModified: Date.UTC(2026, 0, 5, 10, 0, 0), ttlSeconds: 30 };

describe('conditional GBFS requests', () => {
  it('If-None-Match: the same ETag (or *, or a weak form) is not modified; another one is', () => {
    expect(notModified('"abc"', undefined, feed)).toBe(true);
    expect(notModified('"x", W/"abc"', undefined, feed)).toBe(true);
    expect(notModified('*', undefined, feed)).toBe(true);
    expect(notModified('"other"', undefined, feed)).toBe(false);
  });

  it('If-Modified-Since in whole seconds; If-None-Match wins when both are sent', () => {
    expect(notModified(undefined, new Date(feed.lastModified).toUTCString(), feed)).toBe(true);
    expect(notModified(undefined, new Date(feed.lastModified - 1000).toUTCString(), feed)).toBe(false);
    expect(notModified('"other"', new Date(feed.lastModified).toUTCString(), feed)).toBe(false);
    expect(notModified(undefined, 'not a date', feed)).toBe(false);
  });
});

describe('GBFS documents', () => {
  it('prices plans from the tariff the booking charges with', () => {
    const plans = (systemPricingPlans('en') as { plans: Array<{ plan_id: string; price: number; per_min_pricing: Array<{ rate: number }> }> }).plans;
    const car = plans.find((plan) => plan.plan_id === 'car-per-minute')!;
    expect(car.price).toBe(tariffOf('car').unlockFee / 100);
    expect(car.per_min_pricing[0]!.rate).toBe(tariffOf('car').perMinute / 100);
  });

  it('a vehicle offline, low on battery or never reporting its charge is published disabled', () => {
    const at = Date.UTC(2026, 0, 5);
    expect(gbfsVehicle(['p1', 'scooter', 'AVAILABLE', 52.5, 13.4, 80, 1, at, at])).toMatchObject({ vehicle_id: 'p1', is_disabled: false, is_reserved: false, current_range_meters: 32_000, current_fuel_percent: 0.8 });
    expect(gbfsVehicle(['p2', 'scooter', 'RESERVED', 52.5, 13.4, 80, 0, at, at])).toMatchObject({ is_disabled: true, is_reserved: true });
    expect(gbfsVehicle(['p3', 'car', 'AVAILABLE', 52.5, 13.4, 10, null, at, at])).toMatchObject({ is_disabled: true });
    const unknown = gbfsVehicle(['p4', 'bike', 'AVAILABLE', 52.5, 13.4, null, null, null, at]);
    expect(unknown).toMatchObject({ is_disabled: true, current_range_meters: 0, last_reported: '2026-01-05T00:00:00Z' });
    expect(unknown).not.toHaveProperty('current_fuel_percent');
  });
});
