/**
 * Where one unlock's time goes: `npx tsx bench/unlock-path.ts [count]` (default 200).
 *
 * The whole fleet in this process (its shard inline over a real MessageChannel, the embedded broker,
 * FULL journal on a temp file) and one virtual device over MQTT; `count` unlocks one at a time, each on a
 * booking made just before (untimed) and ended just after (untimed). Each unlock carries its own
 * `traceparent`, so its trace steps (what the directory records for every delivery: start in ms,
 * duration in µs) split its time into the hops:
 *   request → booking      HTTP (inject), auth, router, the shard port, the booking's activation
 *   vehicle: UnlockVehicle decide + the UnlockRequested commit + signing and handing the command to MQTT
 *   MQTT round trip        from the vehicle's handler end to the DeviceReplied delivery: broker → device → broker → shard
 *   vehicle: DeviceReplied decide + the commit of VehicleUnlocked (with the booking's BookingActivated)
 *   → response             from the reply's commit to the HTTP answer (booking's reply, the port, fastify)
 * Prints one JSON line: the median and p90 of each hop, ms.
 */
import { randomBytes } from 'node:crypto';
import { VirtualVehicle } from '../simulator/virtual-vehicle.js';
import { startTestFleet } from '../test/helpers/fleet.js';

const count = Number(process.argv[2] ?? 200);
const VEHICLE = 'path-v1';

interface Step {
  readonly to_actor: string;
  readonly message_type: string;
  readonly started_at: number;
  readonly duration_us: number;
}

const quantile = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN) * 100) / 100;
};

async function main(): Promise<void> {
  const t = await startTestFleet({ PAYMENT_LATENCY_MS: '0', TRACE_SAMPLE: '1' });
  if ((await t.registerVehicle(VEHICLE, 'car')).statusCode !== 201) throw new Error('register failed');
  const device = await VirtualVehicle.start({ id: VEHICLE, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(VEHICLE) });
  try {
    for (let tries = 0; ; tries += 1) {
      const view = (await t.request({ method: 'GET', url: `/vehicles/${VEHICLE}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null }>();
      if (view.online === true) break;
      if (tries > 200) throw new Error('device never online');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const runs: Array<{ traceId: string; t0: number; t3: number; totalMs: number }> = [];
    for (let i = 0; i < count + 20; i += 1) {
      const booked = await t.book('alice', VEHICLE);
      if (booked.statusCode !== 201) throw new Error(`book: ${booked.statusCode} ${booked.body}`);
      const bookingId = booked.json<{ id: string }>().id;
      const traceId = randomBytes(16).toString('hex');
      const t0 = Date.now();
      const started = performance.now();
      const unlocked = await t.request({ method: 'POST', url: `/bookings/${bookingId}/unlock`, headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } });
      const totalMs = performance.now() - started;
      const t3 = Date.now();
      if (unlocked.statusCode !== 200) throw new Error(`unlock: ${unlocked.statusCode} ${unlocked.body}`);
      // The first 20 warm up (JIT, statements, the actors' first activations).
      if (i >= 20) runs.push({ traceId, t0, t3, totalMs });
      const ended = await t.request({ method: 'POST', url: `/bookings/${bookingId}/end` });
      if (ended.statusCode !== 200) throw new Error(`end: ${ended.statusCode} ${ended.body}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500)); // trace steps are flushed every 100 ms
    const hops: Record<string, number[]> = { total: [], toBooking: [], unlockVehicle: [], mqttRoundTrip: [], deviceReplied: [], toResponse: [] };
    for (const run of runs) {
      const steps = t.traceRows<Step>('SELECT to_actor, message_type, started_at, duration_us FROM trace_steps WHERE trace_id = ? ORDER BY id', run.traceId);
      const find = (type: string) => steps.find((step) => step.message_type === type);
      const [booking, vehicle, replied] = [find('UnlockBooking'), find('UnlockVehicle'), find('DeviceReplied')];
      if (!booking || !vehicle || !replied) continue;
      hops.total!.push(run.totalMs);
      hops.toBooking!.push(booking.started_at - run.t0);
      hops.unlockVehicle!.push(vehicle.duration_us / 1000);
      hops.mqttRoundTrip!.push(replied.started_at - (vehicle.started_at + vehicle.duration_us / 1000));
      hops.deviceReplied!.push(replied.duration_us / 1000);
      hops.toResponse!.push(run.t3 - (replied.started_at + replied.duration_us / 1000));
    }
    const summary = Object.fromEntries(Object.entries(hops).map(([name, values]) => [name, { p50: quantile(values, 0.5), p90: quantile(values, 0.9), n: values.length }]));
    process.stdout.write(`${JSON.stringify({ unlocks: runs.length, note: 'ms; starts are whole ms (Date.now), durations µs', hops: summary })}\n`);
  } finally {
    await device.stop();
    await t.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
