/**
 * The devices of the unlock scenario, in a process of their own: `node --import tsx bench/devices.ts
 * '<json>'` with {url, prefix, pad, count} runs one light device (simulator/light-device.ts: mqtt-packet
 * over a raw socket, MQTT 5) per id on this process's main thread, prints `{"ready": count}` on stdout
 * once all are online, and answers commands at once until SIGTERM.
 */
import { deriveCommandKey } from '../actors/contract/command-signature.js';
import { deviceSecretFrom } from '../actors/contract/device-secrets.js';
import { DEV_JWT_SECRET } from '../actors/contract/device-secrets.js';
import { startDeviceFleet } from '../simulator/device-fleet.js';

interface DevicesConfig {
  readonly url: string;
  readonly prefix: string;
  readonly pad: number;
  readonly count: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as DevicesConfig;
const broker = new URL(config.url);
const deviceSecret = deviceSecretFrom(undefined, DEV_JWT_SECRET);
const fleet = startDeviceFleet({
  // The bench server runs on the development secret, from which every command key derives; the bench's
  // Mosquitto lets any login in, so the password is never checked there.
  specs: Array.from({ length: config.count }, (_, index) => {
    const id = `${config.prefix}${String(index + 1).padStart(config.pad, '0')}`;
    return { id, password: 'bench-device', commandKey: deriveCommandKey(deviceSecret, id), behaviour: 'answer' as const };
  }),
  // One thread: a light device costs a few µs per command, and the server needs the other core.
  workers: 0,
  seed: 1,
  sink: { command: () => undefined, roundTrip: () => undefined },
  settings: {
    host: broker.hostname,
    port: Number(broker.port || 1883),
    protocolVersion: 5,
    keepaliveS: 60,
    sessionExpiryS: 600,
    connectTimeoutMs: 30_000,
    replyDelayMs: 0,
    slowReplyMs: 0,
    connectRate: 5000,
    reconnectMinMs: 200,
    reconnectMaxMs: 5000,
    telemetryMs: 0,
    flapEveryMs: 60_000,
    localAddresses: [],
    centre: { lat: 52.5219, lon: 13.4132 },
    radiusM: 2000,
  },
});
while (fleet.stats().online < config.count) await new Promise((resolve) => setTimeout(resolve, 50));
process.stdout.write(`${JSON.stringify({ ready: fleet.stats().online })}\n`);
process.on('SIGTERM', () => {
  void fleet.stop().then(() => process.exit(0));
});
