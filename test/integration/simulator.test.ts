import { afterEach, describe, expect, it } from 'vitest';
import { signToken, type Role } from '../../api/auth.js';
import type { SimulationReport } from '../../simulator/report.js';
import { DEFAULT_SIMULATION, runSimulation, type SimulationSettings } from '../../simulator/simulation.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { startServer } from '../helpers/server-process.js';
import { tempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The simulator against the whole system in-process: real HTTP port, embedded MQTT broker, real SQLite.
 * Asserts the report and then checks it against what the server itself says (read model and events).
 */
let running: TestFleet | null = null;
afterEach(async () => {
  await running?.close();
  running = null;
});

async function simulate(env: Record<string, string>, settings: Partial<SimulationSettings>): Promise<{ fleet: TestFleet; report: SimulationReport }> {
  const fleet = await startTestFleet(env, { listen: true });
  running = fleet;
  const secret = fleet.config.auth.jwtSecret;
  const report = await runSimulation({
    ...DEFAULT_SIMULATION,
    apiUrl: fleet.fleet.url!,
    mqttUrl: fleet.fleet.mqttUrl,
    protocolVersion: 4,
    ...settings,
    tokens: (sub: string, role: Role) => signToken({ sub, role, ttlSeconds: 600 }, secret),
  });
  return { fleet, report };
}

interface ServerEvent {
  readonly type: string;
  readonly key: string;
}

async function allEvents(fleet: TestFleet): Promise<ServerEvent[]> {
  const events: ServerEvent[] = [];
  for (let after = 0; ; ) {
    const page = (await fleet.request({ method: 'GET', url: `/events?after=${after}&limit=1000`, as: 'ops', role: 'operator' })).json() as { items: ServerEvent[]; next: number };
    events.push(...page.items);
    if (page.items.length === 0) return events;
    after = page.next;
  }
}

const count = (events: readonly ServerEvent[], type: string) => events.filter((event) => event.type === type).length;

/** Vehicles of the simulation the read model shows as held (RESERVED or IN_USE). */
async function heldVehicles(fleet: TestFleet, prefix: string): Promise<string[]> {
  const response = await fleet.request({ method: 'GET', url: '/vehicles?limit=1000', as: 'ops', role: 'operator' });
  const { items } = response.json() as { items: Array<{ id: string; status: string }> };
  return items.filter((vehicle) => vehicle.id.startsWith(prefix) && (vehicle.status === 'RESERVED' || vehicle.status === 'IN_USE')).map((vehicle) => `${vehicle.id}:${vehicle.status}`);
}

describe('fleet simulator', () => {
  it('20 vehicles and 10 customers ride for 5 s: every confirmed booking is ridden or cancelled, and the server agrees', async () => {
    const { fleet, report } = await simulate({}, { vehicles: 20, customers: 10, durationMs: 5000, rideMs: 200, replyDelayMs: 20, telemetryMs: 250, cancelRatio: 0.2, seed: 7 });
    const { customers: c, vehicles: v } = report;

    expect(report.errors, JSON.stringify(c.errors)).toBe(0);
    expect(v).toMatchObject({ requested: 20, registered: 20, connected: 20, connectFailed: 0, registrationFailed: 0 });
    expect(v.telemetrySent).toBeGreaterThan(20);

    expect(c.bookings.confirmed).toBeGreaterThanOrEqual(10);
    expect(c.unlocks.ok).toBeGreaterThanOrEqual(5);
    expect(c.unlocks.timedOut).toBe(0);
    // Every confirmed booking was either unlocked or cancelled on purpose; every unlock ended its ride.
    expect(c.bookings.confirmed).toBeGreaterThanOrEqual(c.unlocks.ok);
    expect(c.unlocks.ok).toBeGreaterThanOrEqual(c.ends.completed);
    expect(c.unlocks.attempted + c.cancels.byChoice).toBe(c.bookings.confirmed);
    expect(c.unlocks.ok).toBe(c.unlocks.attempted);
    expect(c.ends.completed).toBe(c.unlocks.ok);
    expect(c.cancels.cancelled).toBe(c.cancels.attempted);
    // Each ride is one UNLOCK and one LOCK on a device, each answered.
    expect(v.commandsReceived).toBeGreaterThanOrEqual(2 * c.ends.completed);
    expect(v.repliesSent).toBe(v.commandsReceived);

    expect(c.latency.book.count).toBe(c.bookings.confirmed);
    expect(c.latency.unlock.p50Ms).toBeGreaterThan(0);
    expect(c.latency.unlock.p50Ms).toBeLessThanOrEqual(c.latency.unlock.p95Ms);
    expect(c.latency.unlock.p95Ms).toBeLessThanOrEqual(c.latency.unlock.p99Ms);
    expect(report.throughput.bookingsPerS).toBeGreaterThan(0);

    // The server's own account: the public events match the report one for one, and nothing is held.
    const events = await allEvents(fleet);
    expect(count(events, 'booking.created')).toBe(c.bookings.confirmed);
    expect(count(events, 'vehicle.unlocked')).toBe(c.unlocks.ok);
    expect(count(events, 'booking.completed')).toBe(c.ends.completed);
    expect(count(events, 'booking.cancelled')).toBe(c.cancels.cancelled);
    expect(await heldVehicles(fleet, 'sim-')).toEqual([]);
    // The telemetry reached the read model.
    const vehicle = (await fleet.request({ method: 'GET', url: '/vehicles/sim-0001', as: 'ops', role: 'operator' })).json() as { battery: number | null };
    expect(vehicle.battery).not.toBeNull();
  });

  it('silent and offline vehicles show up as unlock time-outs and offline rejections, and leave nothing held', async () => {
    const { fleet, report } = await simulate(
      { UNLOCK_TIMEOUT_MS: '400' },
      { vehicles: 10, customers: 5, durationMs: 3000, rideMs: 100, replyDelayMs: 10, telemetryMs: 0, cancelRatio: 0, silentRatio: 0.2, offlineRatio: 0.2, idPrefix: 'knob-', seed: 3 },
    );
    const { customers: c, vehicles: v } = report;

    expect(report.errors, JSON.stringify(c.errors)).toBe(0);
    expect(v).toMatchObject({ requested: 10, silent: 2, offline: 2, connected: 10 });
    expect(c.bookings.rejected['vehicle-offline'] ?? 0).toBeGreaterThan(0);
    expect(c.unlocks.timedOut).toBeGreaterThan(0);
    expect(c.unlocks.failed['unlock-timed-out']).toBe(c.unlocks.timedOut);
    expect(c.ends.completed).toBeGreaterThan(0);
    // A timed-out unlock is followed by a cancel: the silent vehicle is free again.
    expect(c.cancels.cancelled).toBe(c.unlocks.attempted - c.unlocks.ok);
    expect(c.failedTraceIds.length).toBeGreaterThan(0);
    await waitFor(async () => (await heldVehicles(fleet, 'knob-')).length === 0, { what: 'no simulated vehicle to be held', timeoutMs: 2000 });
  });

  it('500 vehicles connecting and reporting at once do not cost the server its embedded-broker connection', { timeout: 120_000 }, async () => {
    // The server in its own process, as in production: in one process with the simulator the burst
    // never builds up. aedes dropped the server's persistent session under it ("no such packet").
    const temp = tempDbFile();
    const mqttPort = await freePort();
    const secret = 'burst-test-secret-0123456789';
    const server = await startServer({ FLEET_DB: temp.file, MQTT_PORT: String(mqttPort), FLEET_JWT_SECRET: secret, PAYMENT_LATENCY_MS: '0' });
    try {
      const report = await runSimulation({
        ...DEFAULT_SIMULATION,
        apiUrl: server.url,
        mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
        protocolVersion: 4,
        vehicles: 500,
        customers: 10,
        durationMs: 4000,
        telemetryMs: 500,
        idPrefix: 'burst-',
        tokens: (sub: string, role: Role) => signToken({ sub, role, ttlSeconds: 600 }, secret),
      });
      expect(report.errors).toBe(0);
      expect(report.vehicles.connected).toBe(500);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const reconnects = [...metrics.matchAll(/^fleet_mqtt_reconnects_total\{shard="\d+"\} (\d+)$/gm)].map((match) => Number(match[1]));
      expect(reconnects).toEqual([0]);
    } finally {
      await server.kill();
      temp.cleanup();
    }
  });
});
