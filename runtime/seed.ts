import { VEHICLE, type VehicleMessage } from '../actors/vehicle/actor.js';
import type { VehicleType } from '../actors/vehicle/decider.js';
import type { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import type { ActorDirectory } from './directory.js';
import { rootContext } from './envelope.js';
import type { Logger } from './logger.js';

const TYPES: readonly VehicleType[] = ['scooter', 'car', 'bike'];
const MODELS: Record<VehicleType, string> = { scooter: 'Niu KQi3', car: 'Renault Zoe', bike: 'VanMoof S5' };
/** Around Berlin Alexanderplatz, so that `near=52.5219,13.4132` finds them. */
const CENTRE = { lat: 52.5219, lon: 13.4132 };

export const demoVehicleId = (index: number): string => `demo-${String(index).padStart(4, '0')}`;
export const demoVehicleIds = (count: number): string[] => Array.from({ length: count }, (_, index) => demoVehicleId(index + 1));

/** `demo-0001` … : a first run has something to book. Registration goes through the vehicle actors. */
export async function seedDemoFleet(directory: ActorDirectory, vehicles: VehicleReadModel, count: number, logger: Logger): Promise<void> {
  const trace = rootContext();
  const pending: Promise<unknown>[] = [];
  for (let index = 1; index <= count; index += 1) {
    const id = demoVehicleId(index);
    if (vehicles.get(id)) continue;
    const type = TYPES[index % TYPES.length]!;
    // Deterministic spread over ~2 km so that repeated runs put each vehicle at the same place.
    const angle = index * 2.399963;
    const distance = 0.018 * Math.sqrt(index / count);
    const message: VehicleMessage = {
      type: 'RegisterVehicle',
      vehicleType: type,
      model: MODELS[type],
      location: { lat: CENTRE.lat + distance * Math.cos(angle), lon: CENTRE.lon + distance * 1.6 * Math.sin(angle) },
    };
    pending.push(directory.ask({ kind: VEHICLE, id }, message, 'seed', trace));
  }
  await Promise.all(pending);
  if (pending.length > 0) logger.info({ registered: pending.length, total: vehicles.count() }, 'demo fleet seeded');
}
