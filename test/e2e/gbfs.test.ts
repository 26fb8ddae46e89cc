import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import ajvErrors from 'ajv-errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { startServer, runServerToExit, type ServerProcess } from '../helpers/server-process.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import { asCustomer, asOperator, TEST_JWT_SECRET } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The GBFS 3.0 feeds and the operating area on the real server process over HTTP: every feed checked
 * against MobilityData's official JSON schemas (test/fixtures/gbfs-v3.0, see its README), the public id
 * rotated by a trip, 304 for an unchanged feed, an end of trip refused outside the area and allowed
 * inside, and a zone file with an open ring refused at start-up.
 */

const SCHEMAS = new URL('../fixtures/gbfs-v3.0/', import.meta.url);
const AREA_FIXTURE = new URL('../fixtures/operating-area/berlin-mitte.json', import.meta.url);
const FEEDS = ['gbfs', 'system_information', 'vehicle_types', 'vehicle_status', 'system_pricing_plans', 'geofencing_zones'] as const;

const INSIDE = { lat: 52.52, lon: 13.41 };
const PARK = { lat: 52.515, lon: 13.35 }; // a zone where rides may neither start nor end
const OUTSIDE = { lat: 52.4, lon: 13.1 };

function validators(): Record<(typeof FEEDS)[number], ValidateFunction> {
  // The schemas use ajv-errors' `errorMessage` and the draft-07 formats (date-time, uri, email).
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats.default(ajv);
  ajvErrors.default(ajv);
  return Object.fromEntries(FEEDS.map((feed) => [feed, ajv.compile(JSON.parse(readFileSync(new URL(`${feed}.json`, SCHEMAS), 'utf8')) as object)])) as Record<(typeof FEEDS)[number], ValidateFunction>;
}

describe('GBFS 3.0 feeds and the operating area (server process)', () => {
  let server: ServerProcess;
  let data: TempDbFile;
  let areaFile: string;
  let mqttUrl: string;
  const devices: VirtualVehicle[] = [];

  const api = (path: string, init: RequestInit = {}) => fetch(server.url + path, init);
  const json = (body: unknown, headers: Record<string, string>) => ({ method: 'POST', body: JSON.stringify(body), headers: { ...headers, 'content-type': 'application/json' } });

  /** A vehicle registered at `where`, its device online and reporting that position. */
  async function vehicleAt(id: string, where: { lat: number; lon: number }) {
    const registered = await api('/vehicles', json({ id, type: 'car', location: where }, asOperator()));
    expect(registered.status).toBe(201);
    const { credentials } = (await registered.json()) as { credentials: { password: string; commandKey: string } };
    const device = await VirtualVehicle.start({ id, url: mqttUrl, protocolVersion: 4, credentials });
    devices.push(device);
    await report(device, where);
    return device;
  }

  async function report(device: VirtualVehicle, where: { lat: number; lon: number }) {
    const sent = await device.publishTelemetry({ ...where, battery: 80, speedKmh: 0 });
    await waitFor(async () => {
      const vehicle = (await (await api(`/vehicles/${device.id}`, { headers: asOperator() })).json()) as { lastSeenAt: string | null; location: { lat: number } };
      return vehicle.lastSeenAt === sent.at && vehicle.location.lat === where.lat;
    }, { what: `${device.id} at ${where.lat},${where.lon}` });
  }

  async function vehicleStatus(): Promise<Array<{ vehicle_id: string; lat: number; lon: number; is_reserved: boolean }>> {
    const feed = (await (await api('/gbfs/vehicle_status.json')).json()) as { data: { vehicles: Array<{ vehicle_id: string; lat: number; lon: number; is_reserved: boolean }> } };
    return feed.data.vehicles;
  }

  const publicIdAt = async (where: { lat: number; lon: number }) => (await vehicleStatus()).filter((vehicle) => vehicle.lat === where.lat && vehicle.lon === where.lon).map((vehicle) => vehicle.vehicle_id);

  beforeAll(async () => {
    data = tempDbFile();
    areaFile = join(data.file, '..', 'operating-area.json');
    copyFileSync(AREA_FIXTURE, areaFile);
    server = await startServer({ FLEET_DB: data.file, FLEET_JWT_SECRET: TEST_JWT_SECRET, FLEET_OPERATING_AREA: areaFile, GBFS_TTL_SECONDS: '0', PUBLIC_BASE_URL: 'https://fleet.example.org', FLEET_SEED: '30' });
    mqttUrl = server.logs.find((record) => record.msg === 'fleetactors ready')!.mqtt as string;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(devices.map((device) => device.stop()));
    await server?.kill();
    data?.cleanup();
  });

  it('every feed validates against the official GBFS 3.0 schema; gbfs.json lists them all under PUBLIC_BASE_URL', async () => {
    await vehicleAt('gbfs-schema-car', INSIDE);
    const validate = validators();
    for (const feed of FEEDS) {
      const response = await api(`/gbfs/${feed}.json`);
      expect(response.status, feed).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await response.json()) as { version: string; ttl: number; last_updated: string };
      const valid = validate[feed](body);
      expect(valid ? [] : validate[feed].errors, feed).toEqual([]);
      expect(body.version).toBe('3.0');
      expect(body.ttl).toBe(0);
      expect(response.headers.get('cache-control')).toBe('public, max-age=0');
    }
    const discovery = (await (await api('/gbfs/gbfs.json')).json()) as { data: { feeds: Array<{ name: string; url: string }> } };
    expect(discovery.data.feeds.map((feed) => feed.url)).toEqual(FEEDS.map((feed) => `https://fleet.example.org/gbfs/${feed}.json`));
    const vehicles = await vehicleStatus();
    expect(vehicles.length).toBe(31);
    const openApi = (await (await api('/openapi.json')).json()) as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    expect(openApi.paths['/gbfs/{feed}']?.get?.security).toEqual([]);
    expect(openApi.paths['/operating-area']?.put).toBeDefined();
  }, 60_000);

  it('an unchanged feed answers 304 to If-None-Match and If-Modified-Since; a changed one 200 with a new ETag', async () => {
    const first = await api('/gbfs/vehicle_status.json');
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    expect(etag).toMatch(/^".+"$/);
    const again = await api('/gbfs/vehicle_status.json', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect((await api('/gbfs/vehicle_status.json', { headers: { 'if-modified-since': lastModified } })).status).toBe(304);
    expect((await api('/gbfs/system_information.json', { headers: { 'if-none-match': etag } })).status).toBe(200);
    await vehicleAt('gbfs-etag-car', { lat: 52.5, lon: 13.4 });
    const changed = await api('/gbfs/vehicle_status.json', { headers: { 'if-none-match': etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
  }, 60_000);

  it('a vehicle\'s public id is never its internal id, is gone while it is on a trip, and is new after the trip', async () => {
    const where = { lat: 52.5301, lon: 13.4001 };
    await vehicleAt('gbfs-rotating-car', where);
    const [before] = await publicIdAt(where);
    expect(before).toBeDefined();
    expect(before).not.toContain('gbfs-rotating-car');
    const booked = await api('/bookings', json({ vehicleId: 'gbfs-rotating-car' }, asCustomer('rider-1')));
    expect(booked.status).toBe(201);
    const { id: bookingId } = (await booked.json()) as { id: string };
    expect((await vehicleStatus()).find((vehicle) => vehicle.vehicle_id === before)?.is_reserved).toBe(true);
    expect((await api('/unlock', json({ bookingId }, asCustomer('rider-1')))).status).toBe(200);
    expect(await publicIdAt(where)).toEqual([]);
    const ended = await api(`/bookings/${bookingId}/end`, json({}, asCustomer('rider-1')));
    expect(ended.status).toBe(200);
    const [after] = await publicIdAt(where);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(after).not.toContain('gbfs-rotating-car');
    expect((await vehicleStatus()).some((vehicle) => vehicle.vehicle_id === before)).toBe(false);
  }, 60_000);

  it('refuses to book a vehicle standing outside the area, with nothing changed', async () => {
    await vehicleAt('gbfs-outside-car', OUTSIDE);
    const booked = await api('/bookings', json({ vehicleId: 'gbfs-outside-car' }, asCustomer('rider-2')));
    expect(booked.status).toBe(409);
    expect(booked.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await booked.json()) as { type: string }).type).toBe('https://fleetactors.dev/problems/ride-start-not-allowed');
    const vehicle = (await (await api('/vehicles/gbfs-outside-car', { headers: asCustomer() })).json()) as { status: string };
    expect(vehicle.status).toBe('AVAILABLE');
  }, 60_000);

  it('refuses an end of trip where the area forbids it (the trip goes on), allows it inside', async () => {
    const device = await vehicleAt('gbfs-ending-car', INSIDE);
    const booked = await api('/bookings', json({ vehicleId: 'gbfs-ending-car' }, asCustomer('rider-3')));
    const { id: bookingId } = (await booked.json()) as { id: string };
    expect((await api('/unlock', json({ bookingId }, asCustomer('rider-3')))).status).toBe(200);

    for (const [where, slug] of [[PARK, 'ride-end-not-allowed'], [OUTSIDE, 'ride-end-not-allowed']] as const) {
      await report(device, where);
      const refused = await api(`/bookings/${bookingId}/end`, json({}, asCustomer('rider-3')));
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { type: string }).type).toBe(`https://fleetactors.dev/problems/${slug}`);
      const booking = (await (await api(`/bookings/${bookingId}`, { headers: asCustomer('rider-3') })).json()) as { status: string; endedAt: string | null };
      expect(booking).toMatchObject({ status: 'ACTIVE', endedAt: null });
    }

    await report(device, INSIDE);
    const ended = await api(`/bookings/${bookingId}/end`, json({}, asCustomer('rider-3')));
    expect(ended.status).toBe(200);
    expect(((await ended.json()) as { status: string }).status).toBe('COMPLETED');
  }, 60_000);

  it('PUT /operating-area: a bad document is a 400 that names the problem; a good one is saved, published and in force', async () => {
    const area = JSON.parse(readFileSync(AREA_FIXTURE, 'utf8')) as { global_rules: Array<{ ride_start_allowed: boolean; ride_end_allowed: boolean }>; geofencing_zones: { features: Array<{ geometry: { coordinates: number[][][][] } }> } };
    const open = structuredClone(area);
    open.geofencing_zones.features[0]!.geometry.coordinates[0]![0]!.pop();
    const refused = await api('/operating-area', { ...json(open, asOperator()), method: 'PUT' });
    expect(refused.status).toBe(400);
    const problem = (await refused.json()) as { type: string; errors: string[] };
    expect(problem.type).toBe('https://fleetactors.dev/problems/invalid-operating-area');
    expect(problem.errors[0]).toMatch(/zone 0 .* ring 0 is open/);
    expect((await api('/operating-area', { ...json(area, asCustomer()), method: 'PUT' })).status).toBe(403);

    const everywhere = structuredClone(area);
    everywhere.global_rules[0]!.ride_start_allowed = true;
    everywhere.global_rules[0]!.ride_end_allowed = true;
    const replaced = await api('/operating-area', { ...json(everywhere, asOperator()), method: 'PUT' });
    expect(replaced.status).toBe(200);
    expect((JSON.parse(readFileSync(areaFile, 'utf8')) as typeof area).global_rules[0]!.ride_start_allowed).toBe(true);
    const published = (await (await api('/gbfs/geofencing_zones.json')).json()) as { data: typeof area };
    expect(published.data.global_rules[0]!.ride_start_allowed).toBe(true);
    // The vehicle outside is bookable now.
    expect((await api('/bookings', json({ vehicleId: 'gbfs-outside-car' }, asCustomer('rider-2')))).status).toBe(201);
  }, 60_000);
});

describe('a zone file at start-up', () => {
  it('with an open ring: exit code 2 and one line naming the variable, the file and the ring', async () => {
    const data = tempDbFile();
    try {
      const area = JSON.parse(readFileSync(AREA_FIXTURE, 'utf8')) as { geofencing_zones: { features: Array<{ geometry: { coordinates: number[][][][] } }> } };
      area.geofencing_zones.features[1]!.geometry.coordinates[0]![0]!.pop();
      const file = join(data.file, '..', 'open-ring.json');
      writeFileSync(file, JSON.stringify(area));
      const exit = await runServerToExit({ FLEET_DB: data.file, FLEET_OPERATING_AREA: file });
      expect(exit.code).toBe(2);
      expect(exit.stderr).toContain(`Invalid configuration: FLEET_OPERATING_AREA names ${file}, which is not a valid operating area: zone 1 (Berlin Mitte), polygon 0, ring 0 is open`);
      expect(exit.stderr).not.toMatch(/^\s+at /m);
    } finally {
      data.cleanup();
    }
  }, 60_000);
});
