import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AreaViolationView } from '../../api/ports.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `ride_through_allowed` and `maximum_speed_kph` during a ride (docs/gbfs.md, "During a ride"): real
 * telemetry over the embedded MQTT broker into the shard's pipeline, judged against the operating area
 * while the vehicle is on a ride, recorded as episodes, shown on GET /operating-area/violations and
 * counted in /metrics. Nothing is judged while the vehicle is not on a ride.
 */
const box = (west: number, south: number, east: number, north: number) => ({
  type: 'MultiPolygon',
  coordinates: [[[[west, south], [east, south], [east, north], [west, north], [west, south]]]],
});
const AREA = {
  geofencing_zones: {
    type: 'FeatureCollection',
    features: [
      {
        type: 'Feature',
        properties: { name: [{ text: 'Park (walk your scooter)', language: 'en' }], rules: [{ vehicle_type_ids: ['scooter'], ride_start_allowed: false, ride_end_allowed: false, ride_through_allowed: false }] },
        geometry: box(13.33, 52.51, 13.37, 52.52),
      },
      {
        type: 'Feature',
        properties: { name: [{ text: 'Mitte', language: 'en' }], rules: [{ ride_start_allowed: true, ride_end_allowed: true, ride_through_allowed: true, maximum_speed_kph: 20 }] },
        geometry: box(13.3, 52.48, 13.5, 52.56),
      },
    ],
  },
  global_rules: [{ ride_start_allowed: false, ride_end_allowed: false, ride_through_allowed: true }],
};

const VEHICLE = 'oa-scooter-1';
const MITTE = { lat: 52.5219, lon: 13.4132 };
const PARK = { lat: 52.515, lon: 13.35 };

describe('operating-area violations during a ride, from telemetry over MQTT', () => {
  let t: TestFleet;
  let device: VirtualVehicle;
  let folder: string;
  let step = 0;

  /** A reading, then wait until the server shows it: every reading is judged on its own, in order. */
  const report = async (where: { lat: number; lon: number }, speedKmh: number): Promise<void> => {
    // A distinct position per reading (a few metres apart), so the wait sees this one and not the last.
    step += 1;
    const at = { lat: Number((where.lat + step * 1e-5).toFixed(6)), lon: where.lon };
    await device.publishTelemetry({ ...at, battery: 80, speedKmh });
    await waitFor(
      async () => {
        const vehicle = (await t.request({ method: 'GET', url: `/vehicles/${VEHICLE}`, as: 'ops', role: 'operator' })).json<{ location: { lat: number; lon: number } }>();
        return vehicle.location.lat === at.lat && vehicle.location.lon === at.lon ? true : null;
      },
      { what: `the reading at ${at.lat},${at.lon}` },
    );
  };
  const violations = async (query = ''): Promise<AreaViolationView[]> => {
    const response = await t.request({ method: 'GET', url: `/operating-area/violations${query}`, as: 'ops', role: 'operator' });
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ items: AreaViolationView[] }>().items;
  };

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'fleet-area-'));
    const file = join(folder, 'area.json');
    writeFileSync(file, JSON.stringify(AREA));
    t = await startTestFleet({ FLEET_OPERATING_AREA: file, PAYMENT_LATENCY_MS: '0' });
    expect((await t.registerVehicle(VEHICLE, 'scooter', MITTE)).statusCode).toBe(201);
    device = await VirtualVehicle.start({ id: VEHICLE, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(VEHICLE) });
  });

  afterAll(async () => {
    await device?.stop();
    await t?.close();
    rmSync(folder, { recursive: true, force: true });
  });

  it('a ride above the speed limit and through a no-ride zone is recorded, one episode each; nothing before or after the ride', async () => {
    // Parked (AVAILABLE): a fast reading is a device moved by a van, not a rider.
    await report(MITTE, 30);

    const booking = (await t.book('alice', VEHICLE)).json<{ id: string }>();
    expect((await t.request({ method: 'POST', url: '/unlock', as: 'alice', body: { bookingId: booking.id } })).statusCode).toBe(200);

    await report(MITTE, 15); // within the limit
    await report(MITTE, 25); // above Mitte's 20 km/h: an episode begins
    await report(MITTE, 28); // ... and goes on
    await report(PARK, 12); // in the park, no ride-through for scooters (the park has no speed limit): the speeding ends
    await report(MITTE, 10); // back within the rules

    const items = await violations();
    expect(items.map((item) => item.kind)).toEqual(['ride-through-not-allowed', 'speed-limit-exceeded']);
    const [through, speeding] = items as [AreaViolationView, AreaViolationView];
    expect(speeding).toMatchObject({ vehicleId: VEHICLE, vehicleType: 'scooter', bookingId: booking.id, zone: 'Mitte', limitKph: 20, maxSpeedKmh: 28, readings: 2 });
    expect(speeding.location.lon).toBe(MITTE.lon);
    expect(Date.parse(speeding.lastAt)).toBeGreaterThan(Date.parse(speeding.startedAt));
    expect(through).toMatchObject({ vehicleId: VEHICLE, bookingId: booking.id, zone: 'Park (walk your scooter)', limitKph: null, maxSpeedKmh: 12, readings: 1 });
    expect(through.location.lon).toBe(PARK.lon);
    expect(through.id).not.toBe(speeding.id);

    // The ride ends in Mitte (a fresh fix, allowed); a parked vehicle's readings are not judged.
    expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/end`, as: 'alice' })).statusCode).toBe(200);
    await report(PARK, 30);
    expect(await violations()).toHaveLength(2);

    // Filters.
    expect((await violations('?limit=1')).map((item) => item.kind)).toEqual(['ride-through-not-allowed']);
    expect(await violations(`?vehicleId=${VEHICLE}&bookingId=${booking.id}`)).toHaveLength(2);
    expect(await violations('?bookingId=bk_s0_other')).toEqual([]);
    expect(await violations(`?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).toEqual([]);

    const text = await waitFor(async () => {
      const body = (await t.request({ method: 'GET', url: '/metrics', as: 'ops', role: 'operator' })).body;
      return /fleet_operating_area_violations_total\{[^}]*kind="ride-through-not-allowed"[^}]*\} 1/.test(body) ? body : null;
    }, { what: 'the violations in /metrics' });
    expect(text).toMatch(/fleet_operating_area_violations_total\{[^}]*kind="speed-limit-exceeded"[^}]*\} 1/);
  });

  it('operators only; a bad filter is a problem+json 400; the route is in the OpenAPI document', async () => {
    const asCustomer = await t.request({ method: 'GET', url: '/operating-area/violations', as: 'alice' });
    expect(asCustomer.statusCode).toBe(403);
    expect(asCustomer.headers['content-type']).toContain('application/problem+json');
    const bad = await t.request({ method: 'GET', url: '/operating-area/violations?limit=0', as: 'ops', role: 'operator' });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toContain('application/problem+json');
    const document = (await t.request({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(document.paths['/operating-area/violations']?.get).toBeDefined();
  });
});
