/**
 * The devices of the unlock scenario, in a process of their own: `node --import tsx bench/devices.ts
 * '<json>'` with {url, prefix, pad, count} connects one VirtualVehicle (simulator/virtual-vehicle.ts,
 * MQTT 5) per id, prints `{"ready": count}` on stdout, and answers commands until SIGTERM.
 */
import { deriveCommandKey } from '../runtime/mqtt/command-signature.js';
import { deviceSecretFrom } from '../runtime/mqtt/device-secrets.js';
import { DEV_JWT_SECRET } from '../runtime/config.js';
import { forEachLimited } from '../simulator/fleet.js';
import { VirtualVehicle } from '../simulator/virtual-vehicle.js';

interface DevicesConfig {
  readonly url: string;
  readonly prefix: string;
  readonly pad: number;
  readonly count: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as DevicesConfig;
const ids = Array.from({ length: config.count }, (_, index) => `${config.prefix}${String(index + 1).padStart(config.pad, '0')}`);
const devices: VirtualVehicle[] = [];
await forEachLimited(ids, 50, async (id) => {
  // The bench server runs on the development secret, from which every command key derives; the bench's
  // Mosquitto lets any login in, so the password is never checked there.
  const credentials = { password: 'bench-device', commandKey: deriveCommandKey(deviceSecretFrom(undefined, DEV_JWT_SECRET), id) };
  devices.push(await VirtualVehicle.start({ id, url: config.url, protocolVersion: 5, credentials }));
});
process.stdout.write(`${JSON.stringify({ ready: devices.length })}\n`);
process.on('SIGTERM', () => {
  void Promise.all(devices.map((device) => device.stop())).then(() => process.exit(0));
});
