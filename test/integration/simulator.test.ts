import mqtt, { type MqttClient } from 'mqtt';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { signToken, type Role } from '../../actors/contract/tokens.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../adapters/mqtt/embedded-broker.js';
import { ALL_TELEMETRY, commandsTopic, vehicleIdOf } from '../../actors/contract/device-topics.js';
import { parseOperatingArea, ruleAt } from '../../actors/contract/operating-area.js';
import { INVARIANTS, type Invariant } from '../../simulator/invariants.js';
import type { SimulationReport } from '../../simulator/report.js';
import { DEFAULT_SIMULATION, runSimulation, type SimulationSettings } from '../../simulator/simulation.js';
import { plainBrokerSecrets, signedFor } from '../helpers/devices.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `npm run sim` end to end. First a short run against the whole system (real HTTP port, embedded
 * broker, real SQLite) with light devices in worker threads, open-loop arrivals and every behaviour,
 * checked against what the server itself says. Then, against a fake server that breaks one rule on
 * purpose, each invariant detector must catch its breach (and only its own).
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const tokensFor = (secret: string) => (sub: string, role: Role) => signToken({ sub, role, ttlSeconds: 600 }, secret);

const AREA_FILE = fileURLToPath(new URL('../fixtures/operating-area/berlin-mitte.json', import.meta.url));

const broken = (report: SimulationReport): Invariant[] => INVARIANTS.filter((name) => report.invariants[name].broken > 0);
const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

describe('fleet simulator against the whole system', () => {
  it('200 light devices in 2 threads, open-loop journeys with every mix: counts add up, every invariant holds, the server agrees', { timeout: 120_000 }, async () => {
    // A short reservation window: a silent device's booking holds its vehicle until the window ends (below).
    const fleet: TestFleet = await startTestFleet({ UNLOCK_TIMEOUT_MS: '2000', PAYMENT_LATENCY_MS: '0', RESERVATION_WINDOW_MS: '8000' }, { listen: true });
    cleanups.push(() => fleet.close());
    const report = await runSimulation({
      ...DEFAULT_SIMULATION,
      apiUrl: fleet.fleet.url!,
      mqttUrl: fleet.fleet.mqttUrl,
      protocolVersion: 4,
      vehicles: 200,
      idPrefix: 'ci-',
      workers: 2,
      connectRate: 2000,
      telemetryMs: 2000,
      keepaliveS: 30,
      replyDelayMs: 10,
      slowReplyMs: 2500,
      flapEveryMs: 1500,
      deviceMix: { silent: 0.05, slow: 0.05, flapping: 0.05, duplicate: 0.05, reject: 0.03 },
      rate: 15,
      durationMs: 3000,
      ride: '0.1-0.3',
      journeyMix: { cancel: 0.15, retry: 0.15, race: 0.1, outside: 0 },
      radiusM: 1000,
      searchRadiusM: 1500,
      drainMs: 20_000,
      seed: 11,
      tokens: tokensFor(fleet.config.auth.jwtSecret),
    });
    const { devices: d, journeys: j } = report;

    expect(broken(report), JSON.stringify(report.invariants)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.errors).toEqual({});
    expect(d.secondsUntilServerSawThemOnline).not.toBeNull();
    expect(d).toMatchObject({ requested: 200, withCredentials: 200, registered: 200, threads: 2, onlineAtStart: 200, refused: 0 });
    expect(d.behaviours).toEqual({ answer: 154, silent: 10, slow: 10, flapping: 10, duplicate: 10, reject: 6 });
    expect(d.telemetrySent).toBeGreaterThan(200);
    // Flapping devices dropped and came back on their own.
    expect(d.drops).toBeGreaterThan(0);
    expect(d.reconnects).toBeGreaterThan(0);

    // Poisson arrivals at 15/s for 3 s: 45 expected (sd 6.7); far outside 20…75 the process is not Poisson at that rate.
    expect(j.offered).toBeGreaterThan(20);
    expect(j.offered).toBeLessThan(75);
    expect(j.finished).toBe(j.offered);
    expect(j.inFlightAtEnd).toBe(0);
    expect(sum(j.outcomes)).toBe(j.offered);
    expect(j.outcomes.completed).toBeGreaterThan(5);
    expect(j.outcomes.cancelled).toBeGreaterThan(0);
    expect(Object.keys(j.outcomes).filter((outcome) => outcome.startsWith('error:'))).toEqual([]);

    const { latency } = report;
    expect(latency.book.count).toBeGreaterThanOrEqual(j.offered - (j.outcomes['failed:search:no-vehicle-nearby'] ?? 0));
    expect(latency.search.count).toBeGreaterThanOrEqual(j.offered);
    for (const step of ['search', 'book', 'unlock', 'end'] as const) {
      expect(latency[step].p50Ms).toBeGreaterThan(0);
      expect(latency[step].p50Ms).toBeLessThanOrEqual(latency[step].p99Ms);
    }
    expect(latency.mqttRoundTrip.count).toBeGreaterThan(200);
    expect(latency.commandDelivery.count).toBe(d.commands.ok + d.commands.expired + d.commands['bad-signature']);
    expect(d.commands['bad-signature']).toBe(0);

    // The server's own account: every unlock the devices answered is an event, and nothing is held.
    const events = await allEvents(fleet);
    const unlockedEvents = events.filter((event) => event.type === 'vehicle.unlocked').length;
    expect(unlockedEvents).toBeGreaterThanOrEqual(j.outcomes.completed!);
    // Nothing is held for ever. A booking whose unlock went unanswered (a silent device) cannot be cancelled
    // free of charge, since the car may be open (409 unlock-outcome-unknown): it holds its vehicle until its
    // reservation window ends, then expires and releases it.
    const held = await waitFor(async () => ((await heldVehicles(fleet, 'ci-')).length === 0 ? [] : null), { what: 'every vehicle released', timeoutMs: 30_000 }).catch(async () => heldVehicles(fleet, 'ci-'));
    expect(held).toEqual([]);
  });
});

describe('fleet simulator in an operating area', () => {
  it('riders end where the area allows; an outside journey is refused outside (409 ride-end-not-allowed), then ends inside', { timeout: 120_000 }, async () => {
    // Berlin Mitte allowed, the Tiergarten and the rest of the world not: the devices start within 1 km
    // of Alexanderplatz (inside), the outside places lie kilometres away.
    const fleet: TestFleet = await startTestFleet({ FLEET_OPERATING_AREA: AREA_FILE, UNLOCK_TIMEOUT_MS: '2000', PAYMENT_LATENCY_MS: '0' }, { listen: true });
    cleanups.push(() => fleet.close());
    const report = await runSimulation({
      ...DEFAULT_SIMULATION,
      apiUrl: fleet.fleet.url!,
      mqttUrl: fleet.fleet.mqttUrl,
      protocolVersion: 4,
      vehicles: 30,
      idPrefix: 'oa-',
      // One device thread: the rider's ride-to reaches a device in another thread.
      workers: 1,
      connectRate: 2000,
      telemetryMs: 1000,
      replyDelayMs: 10,
      rate: 6,
      durationMs: 2500,
      ride: '0.1-0.3',
      journeyMix: { cancel: 0, retry: 0, race: 0, outside: 0.5 },
      radiusM: 1000,
      searchRadiusM: 1500,
      drainMs: 40_000,
      seed: 5,
      tokens: tokensFor(fleet.config.auth.jwtSecret),
    });
    const { journeys: j, area } = report;

    expect(broken(report), JSON.stringify(report.invariants)).toEqual([]);
    expect(report.errors).toEqual({});
    expect(Object.keys(j.outcomes).filter((outcome) => outcome.startsWith('error:'))).toEqual([]);
    expect(area.restricted).toBe(true);
    expect(area.notPlaced).toEqual({});
    expect(area.outsideOther).toEqual({});
    // Every try outside was refused, and every refused rider then ended inside.
    expect(area.outsideTries).toBeGreaterThan(0);
    expect(area.outsideRefused).toBe(area.outsideTries);
    expect(area.outsideAccepted).toBe(0);
    expect(area.endedInsideAfterRefusal).toBe(area.outsideRefused);
    // Every completed ride was ridden to an allowed place first (an outside one twice: out, then back in).
    expect(j.outcomes.completed).toBeGreaterThan(area.outsideTries);
    expect(area.riddenInside).toBe(j.outcomes.completed);

    // The server's account: the refusals were its own, and every vehicle stands where a ride may end.
    const ended = (await allEvents(fleet)).filter((event) => event.type === 'booking.completed').length;
    expect(ended).toBe(j.outcomes.completed);
    const parsed = parseOperatingArea(JSON.parse(readFileSync(AREA_FILE, 'utf8')));
    if (!parsed.ok) throw new Error(parsed.errors.join('; '));
    const vehicles = (await fleet.request({ method: 'GET', url: '/vehicles?limit=1000', as: 'ops', role: 'operator' })).json() as { items: Array<{ id: string; type: string; location: { lat: number; lon: number } }> };
    const standingOutside = vehicles.items.filter((vehicle) => vehicle.id.startsWith('oa-') && !ruleAt(parsed.area, vehicle.location.lon, vehicle.location.lat, vehicle.type, Date.now()).ride_end_allowed);
    expect(standingOutside).toEqual([]);
  });
});

async function allEvents(fleet: TestFleet): Promise<Array<{ type: string }>> {
  const events: Array<{ type: string }> = [];
  for (let after = 0; ; ) {
    const page = (await fleet.request({ method: 'GET', url: `/events?after=${after}&limit=1000`, as: 'ops', role: 'operator' })).json() as { items: Array<{ type: string }>; next: number };
    events.push(...page.items);
    if (page.items.length === 0) return events;
    after = page.next;
  }
}

async function heldVehicles(fleet: TestFleet, prefix: string): Promise<string[]> {
  const response = await fleet.request({ method: 'GET', url: '/vehicles?limit=1000', as: 'ops', role: 'operator' });
  const { items } = response.json() as { items: Array<{ id: string; status: string }> };
  return items.filter((vehicle) => vehicle.id.startsWith(prefix) && (vehicle.status === 'RESERVED' || vehicle.status === 'IN_USE')).map((vehicle) => `${vehicle.id}:${vehicle.status}`);
}

/**
 * Just enough of the HTTP contract for the simulator, over a real MQTT broker, with one fault on purpose:
 * - `double-booking`: a held vehicle is booked again;
 * - `phantom-unlock`: SUCCESS without sending the UNLOCK;
 * - `misrouted-unlock`: the UNLOCK (signed for the receiver, so it verifies) goes to the next vehicle;
 * - `server-error`: ending a ride answers 500;
 * - `off-contract`: ending a ride answers 418;
 * - `end-anywhere`: publishes an operating area (Berlin Mitte), shows the vehicles where their telemetry
 *   puts them, and ends every ride wherever the vehicle stands.
 */
type Fault = 'none' | 'double-booking' | 'phantom-unlock' | 'misrouted-unlock' | 'server-error' | 'off-contract' | 'end-anywhere';

async function fakeServer(fault: Fault, broker: EmbeddedBroker): Promise<{ url: string }> {
  const control: MqttClient = await mqtt.connectAsync(broker.url, { clientId: `fake-${randomUUID().slice(0, 8)}`, protocolVersion: 4 });
  cleanups.push(() => control.endAsync(true));
  const vehicles: string[] = [];
  const holder = new Map<string, string>();
  const bookings = new Map<string, { vehicleId: string; status: string }>();
  const replays = new Map<string, unknown>();
  const positions = new Map<string, { lat: number; lon: number }>();
  if (fault === 'end-anywhere') {
    await control.subscribeAsync(ALL_TELEMETRY, { qos: 0 });
    control.on('message', (topic, payload) => {
      const id = vehicleIdOf(topic, 'telemetry');
      const reading = JSON.parse(payload.toString()) as { lat: number; lon: number };
      if (id !== null) positions.set(id, { lat: reading.lat, lon: reading.lon });
    });
  }
  const send = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' });
    response.end(JSON.stringify(body));
  };
  const problem = (response: ServerResponse, status: number, slug: string) => send(response, status, { type: `https://fleetactors.dev/problems/${slug}`, title: slug, status });
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    let text = '';
    for await (const chunk of request) text += String(chunk);
    const body = text ? (JSON.parse(text) as Record<string, string>) : {};
    const url = new URL(request.url!, 'http://fake');
    const bookingPath = /^\/bookings\/([^/]+)(?:\/(unlock|end|cancel))?$/.exec(url.pathname);
    if (request.method === 'POST' && url.pathname === '/vehicles') {
      vehicles.push(body.id!);
      return send(response, 201, { id: body.id, status: 'AVAILABLE', credentials: { username: body.id, password: 'not-checked', commandKey: plainBrokerSecrets(body.id!).commandKey } });
    }
    if (request.method === 'GET' && url.pathname === '/vehicles') return send(response, 200, { items: vehicles.filter((id) => !holder.has(id)).map((id) => ({ id, type: 'scooter' })) });
    if (fault === 'end-anywhere' && request.method === 'GET' && url.pathname === '/gbfs/geofencing_zones.json') {
      return send(response, 200, { last_updated: new Date().toISOString(), ttl: 0, version: '3.0', data: JSON.parse(readFileSync(AREA_FILE, 'utf8')) });
    }
    const vehiclePath = /^\/vehicles\/([^/]+)$/.exec(url.pathname);
    if (request.method === 'GET' && vehiclePath && positions.has(vehiclePath[1]!)) return send(response, 200, { id: vehiclePath[1], type: 'scooter', location: positions.get(vehiclePath[1]!) });
    if (request.method === 'POST' && url.pathname === '/bookings') {
      const key = String(request.headers['idempotency-key'] ?? '');
      const replay = key ? replays.get(key) : undefined;
      if (replay) return send(response, 201, replay);
      if (holder.has(body.vehicleId!) && fault !== 'double-booking') return problem(response, 409, 'vehicle-unavailable');
      const id = `bk_${randomUUID().slice(0, 8)}`;
      if (key) replays.set(key, { id, status: 'CONFIRMED', vehicleId: body.vehicleId });
      holder.set(body.vehicleId!, id);
      bookings.set(id, { vehicleId: body.vehicleId!, status: 'CONFIRMED' });
      return send(response, 201, { id, status: 'CONFIRMED', vehicleId: body.vehicleId });
    }
    const booking = bookingPath ? bookings.get(bookingPath[1]!) : undefined;
    if (!bookingPath || !booking) return problem(response, 404, 'not-found');
    const release = () => {
      if (holder.get(booking.vehicleId) === bookingPath[1]) holder.delete(booking.vehicleId);
    };
    switch (bookingPath[2]) {
      case 'unlock': {
        const target = fault === 'misrouted-unlock' ? vehicles[(vehicles.indexOf(booking.vehicleId) + 1) % vehicles.length]! : booking.vehicleId;
        if (fault !== 'phantom-unlock') {
          const issuedAt = new Date();
          const command = signedFor(target, { commandId: randomUUID(), type: 'UNLOCK', bookingId: bookingPath[1]!, issuedAt: issuedAt.toISOString(), expiresAt: new Date(issuedAt.getTime() + 5000).toISOString() });
          await control.publishAsync(commandsTopic(target), JSON.stringify(command), { qos: 1 });
        }
        booking.status = 'ACTIVE';
        return send(response, 200, { bookingId: bookingPath[1], vehicleId: booking.vehicleId, status: 'SUCCESS', unlockedAt: new Date().toISOString() });
      }
      case 'end':
        if (fault === 'server-error') return problem(response, 500, 'internal');
        if (fault === 'off-contract') return problem(response, 418, 'teapot');
        release();
        booking.status = 'COMPLETED';
        return send(response, 200, { id: bookingPath[1], status: 'COMPLETED' });
      case 'cancel':
        release();
        booking.status = 'CANCELLED';
        return send(response, 200, { id: bookingPath[1], status: 'CANCELLED' });
      default:
        return send(response, 200, { id: bookingPath[1], status: booking.status });
    }
  };
  const server: Server = createServer((request, response) => {
    handle(request, response).catch(() => problem(response, 500, 'fake-failed'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function runAgainst(fault: Fault, settings: Partial<SimulationSettings> = {}): Promise<SimulationReport> {
  const broker = await startEmbeddedBroker({ port: 0, security: 'open' });
  cleanups.push(() => broker.close());
  const server = await fakeServer(fault, broker);
  return runSimulation({
    ...DEFAULT_SIMULATION,
    apiUrl: server.url,
    mqttUrl: broker.url,
    protocolVersion: 4,
    vehicles: 8,
    idPrefix: 'fk-',
    workers: 0,
    telemetryMs: 0,
    rate: 30,
    durationMs: 700,
    ride: '0',
    journeyMix: { cancel: 0, retry: 0, race: 0, outside: 0 },
    drainMs: 5000,
    // The fake has no GET /vehicles/:id to show presence with.
    settleMs: 0,
    tokens: tokensFor('fake-server-secret-0123456789'),
    ...settings,
  });
}

describe('invariant detectors, each against a server that breaks its rule on purpose', () => {
  it('a server that keeps its rules breaks none', async () => {
    const report = await runAgainst('none', { journeyMix: { cancel: 0.2, retry: 0.2, race: 0.3, outside: 0 } });
    expect(broken(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.journeys.outcomes.completed).toBeGreaterThan(0);
  });

  it('closed loop: customers ride one journey after the other', async () => {
    const report = await runAgainst('none', { rate: 0, customers: 3, journeyMix: { cancel: 0.3, retry: 0.3, race: 0, outside: 0 } });
    expect(broken(report)).toEqual([]);
    expect(report.journeys.offered).toBeGreaterThan(3);
    expect(report.journeys.finished).toBe(report.journeys.offered);
    expect((report.journeys.outcomes.completed ?? 0) + (report.journeys.outcomes.cancelled ?? 0)).toBe(report.journeys.offered);
  });

  it('double-booking: two races won at once', async () => {
    const report = await runAgainst('double-booking', { journeyMix: { cancel: 0, retry: 0, race: 1, outside: 0 } });
    expect(broken(report)).toEqual(['double-booking']);
    expect(report.ok).toBe(false);
  });

  it('unlock-not-delivered: SUCCESS without an UNLOCK', async () => {
    const report = await runAgainst('phantom-unlock');
    expect(broken(report)).toEqual(['unlock-not-delivered']);
  });

  it('foreign-unlock: the UNLOCK of one vehicle\'s booking reaches another', async () => {
    const report = await runAgainst('misrouted-unlock');
    // The vehicle that was booked never got its UNLOCK either.
    expect(broken(report)).toEqual(['unlock-not-delivered', 'foreign-unlock']);
    expect(report.invariants['foreign-unlock'].samples[0]).toMatch(/^fk-\d+ got the UNLOCK of bk_/);
  });

  it('server-error: a 500, which also leaves its journey unfinished', async () => {
    const report = await runAgainst('server-error');
    expect(broken(report)).toEqual(['server-error', 'unfinished-journey']);
    expect(report.errors['end: 500 internal']).toBeGreaterThan(0);
  });

  it('unfinished-journey: an answer outside the contract', async () => {
    const report = await runAgainst('off-contract');
    expect(broken(report)).toEqual(['unfinished-journey']);
  });

  it('end-outside-accepted: a ride ended where the area forbids it', async () => {
    // No periodic telemetry: the only readings are the ones a rider's ride-to sends.
    const report = await runAgainst('end-anywhere', { journeyMix: { cancel: 0, retry: 0, race: 0, outside: 1 } });
    expect(broken(report)).toEqual(['end-outside-accepted']);
    expect(report.area.outsideAccepted).toBe(report.area.outsideTries);
    expect(report.area.outsideTries).toBeGreaterThan(0);
    expect(report.invariants['end-outside-accepted'].samples[0]).toMatch(/^bk_\w+: fk-\d+ ended at [\d.]+,[\d.]+, where the area forbids an end$/);
  });
});
