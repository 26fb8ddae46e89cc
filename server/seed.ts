import { type VehicleType } from '../actors/contract/views.js';
import { decide } from '../actors/vehicle/decider.js';
import { initialVehicleState } from '../actors/vehicle/state.js';
import { VEHICLE } from '../actors/vehicle/actor.js';
import type { SqliteJournalEngine } from '../persistence/journal-engine.js';
import type { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import type { SeedVehicle } from './shard-calls.js';
import type { Logger } from '../runtime/ground/logger.js';

const TYPES: readonly VehicleType[] = ['scooter', 'car', 'bike'];
const MODELS: Record<VehicleType, string> = { scooter: 'Niu KQi3', car: 'Renault Zoe', bike: 'VanMoof S5' };
/** Around Berlin Alexanderplatz, so that `near=52.5219,13.4132` finds them. */
const CENTRE = { lat: 52.5219, lon: 13.4132 };

export const demoVehicleId = (index: number): string => `demo-${String(index).padStart(4, '0')}`;
export const demoVehicleIds = (count: number): string[] => Array.from({ length: count }, (_, index) => demoVehicleId(index + 1));

/** `demo-0001` … : a first run has something to book. The same ids at the same places on every run. */
export function demoFleet(count: number): SeedVehicle[] {
  const vehicles: SeedVehicle[] = [];
  for (let index = 1; index <= count; index += 1) {
    const vehicleType = TYPES[index % TYPES.length]!;
    // Deterministic spread over ~2 km so that repeated runs put each vehicle at the same place.
    const angle = index * 2.399963;
    const distance = 0.018 * Math.sqrt(index / count);
    vehicles.push({
      id: demoVehicleId(index),
      vehicleType,
      model: MODELS[vehicleType],
      location: { lat: CENTRE.lat + distance * Math.cos(angle), lon: CENTRE.lon + distance * 1.6 * Math.sin(angle) },
    });
  }
  return vehicles;
}

/**
 * Registers vehicles that are not registered yet, in bulk: the vehicle decider decides each
 * registration, and its event is journalled as that vehicle's first event, all in one group commit,
 * without activating a single actor (100,000 activations would take minutes and gigabytes; an actor
 * recovers its one event when it is first asked). Only at start-up, before the shard serves: nothing
 * else can be registering the same ids.
 */
export async function registerInBulk(journal: SqliteJournalEngine, vehicles: VehicleReadModel, seed: readonly SeedVehicle[], logger: Logger): Promise<{ registered: number }> {
  const at = Date.now();
  const writes: Promise<void>[] = [];
  for (const vehicle of seed) {
    if (vehicles.exists(vehicle.id)) continue;
    const decision = decide(
      { type: 'RegisterVehicle', vehicleId: vehicle.id, vehicleType: vehicle.vehicleType as VehicleType, model: vehicle.model, location: vehicle.location, at },
      initialVehicleState,
    );
    if (!decision.ok) continue;
    decision.events.forEach((event, index) => {
      writes.push(journal.persist({ data: event, sequenceNumber: index + 1, key: `${VEHICLE}/${vehicle.id}`, tags: [], createdAt: at, isDeleted: false }));
    });
  }
  // Issued in one turn: one transaction, one fsync.
  await Promise.all(writes);
  if (writes.length > 0) logger.info({ registered: writes.length, total: vehicles.count() }, 'demo fleet seeded');
  return { registered: writes.length };
}
