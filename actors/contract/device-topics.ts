/**
 * The MQTT topic tree of docs/contract.md: `fleet/vehicles/{id}/{channel}`.
 * A vehicle id is validated before it becomes part of a topic, so an id can never smuggle a topic
 * level (`/`) or a wildcard (`+`, `#`) into a subscription or a publish.
 */

export const VEHICLE_CHANNELS = ['commands', 'replies', 'telemetry', 'status'] as const;
export type VehicleChannel = (typeof VEHICLE_CHANNELS)[number];

const VEHICLE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const PREFIX = 'fleet/vehicles/';

export class InvalidVehicleIdError extends Error {
  override readonly name = 'InvalidVehicleIdError';
  constructor(readonly vehicleId: string) {
    super(`Invalid vehicle id ${JSON.stringify(vehicleId)}: expected 1 to 64 of [A-Za-z0-9._-]`);
  }
}

export function isValidVehicleId(id: string): boolean {
  return VEHICLE_ID.test(id);
}

/** Throws InvalidVehicleIdError: a topic with any other character is never built. */
export function vehicleTopic(vehicleId: string, channel: VehicleChannel): string {
  if (!VEHICLE_ID.test(vehicleId)) throw new InvalidVehicleIdError(vehicleId);
  return `${PREFIX}${vehicleId}/${channel}`;
}

export const commandsTopic = (vehicleId: string): string => vehicleTopic(vehicleId, 'commands');
export const repliesTopic = (vehicleId: string): string => vehicleTopic(vehicleId, 'replies');
export const telemetryTopic = (vehicleId: string): string => vehicleTopic(vehicleId, 'telemetry');
export const statusTopic = (vehicleId: string): string => vehicleTopic(vehicleId, 'status');

/** Filters over the whole fleet, for the telemetry pipeline (one subscription, not one per vehicle). */
export const ALL_TELEMETRY = `${PREFIX}+/telemetry`;
export const ALL_STATUS = `${PREFIX}+/status`;
/** Every vehicle's replies: one subscription per shard, routed in memory to the vehicle actors that are active (adapters/mqtt/device-link.ts). */
export const ALL_REPLIES = `${PREFIX}+/replies`;

export interface VehicleTopic {
  readonly vehicleId: string;
  readonly channel: VehicleChannel;
}

/** Null for anything that is not exactly `fleet/vehicles/{valid id}/{channel}`. */
export function parseVehicleTopic(topic: string): VehicleTopic | null {
  if (!topic.startsWith(PREFIX)) return null;
  const slash = topic.indexOf('/', PREFIX.length);
  if (slash < 0) return null;
  const vehicleId = topic.slice(PREFIX.length, slash);
  const channel = topic.slice(slash + 1);
  if (!isChannel(channel) || !VEHICLE_ID.test(vehicleId)) return null;
  return { vehicleId, channel };
}

/**
 * The id inside a topic already known to end with `/{channel}` (a message that matched a
 * `fleet/vehicles/+/{channel}` filter); null when the id is not valid. Cheaper than parseVehicleTopic
 * on the telemetry hot path.
 */
export function vehicleIdOf(topic: string, channel: VehicleChannel): string | null {
  const vehicleId = topic.slice(PREFIX.length, topic.length - channel.length - 1);
  return VEHICLE_ID.test(vehicleId) ? vehicleId : null;
}

function isChannel(value: string): value is VehicleChannel {
  return (VEHICLE_CHANNELS as readonly string[]).includes(value);
}
