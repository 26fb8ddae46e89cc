/**
 * The devices of the unlock scenario, in a process of their own: `node --import tsx bench/devices.ts
 * '<json>'` with {url, prefix, pad, count} connects one VirtualVehicle (simulator/virtual-vehicle.ts,
 * MQTT 5) per id, prints `{"ready": count}` on stdout, and answers commands until SIGTERM.
 */
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
  devices.push(await VirtualVehicle.start({ id, url: config.url, protocolVersion: 5 }));
});
process.stdout.write(`${JSON.stringify({ ready: devices.length })}\n`);
process.on('SIGTERM', () => {
  void Promise.all(devices.map((device) => device.stop())).then(() => process.exit(0));
});
