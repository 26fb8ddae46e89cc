import { parseVehicleTopic } from '../../actors/contract/device-topics.js';

/**
 * Who may do what on the broker (docs/contract.md, "MQTT"): pure decisions, used by the embedded broker's
 * hooks and mirrored by the ACLs the dynamic-security provisioner writes into Mosquitto.
 *
 * A vehicle speaks only for itself: it publishes its own replies, telemetry and status (its last will
 * included) and reads only its own commands. Everything else, `$SYS` included, is the server's.
 */
export type DeviceIdentity = { readonly kind: 'server' } | { readonly kind: 'vehicle'; readonly id: string };

export const SERVER_IDENTITY: DeviceIdentity = Object.freeze({ kind: 'server' });

/** The channels a vehicle writes. `commands` is missing on purpose: only the server sends commands. */
const VEHICLE_PUBLISHES = new Set(['replies', 'telemetry', 'status']);

export function mayPublish(identity: DeviceIdentity, topic: string): boolean {
  if (identity.kind === 'server') return !topic.startsWith('$');
  const parsed = parseVehicleTopic(topic);
  return parsed !== null && parsed.vehicleId === identity.id && VEHICLE_PUBLISHES.has(parsed.channel);
}

/** `filter` may hold wildcards; a vehicle's only filter is the exact topic of its own commands. */
export function maySubscribe(identity: DeviceIdentity, filter: string): boolean {
  if (identity.kind === 'server') return true;
  const parsed = parseVehicleTopic(filter);
  return parsed !== null && parsed.vehicleId === identity.id && parsed.channel === 'commands';
}

/**
 * Client ids: a vehicle's is its username, so it can never take over another device's session (the
 * broker drops the older connection of a duplicate id). Ids in the server's reserved space
 * (`prefix` itself and `prefix-…`, one per shard after the split) need the server's login, so nobody
 * can kick the server off by reusing its id read from `$SYS`. Any number of server sessions may exist.
 */
export function mayUseClientId(identity: DeviceIdentity, clientId: string, serverClientIdPrefix: string): boolean {
  if (identity.kind === 'server') return clientId.length > 0;
  return clientId === identity.id && !isReservedClientId(clientId, serverClientIdPrefix);
}

export function isReservedClientId(clientId: string, serverClientIdPrefix: string): boolean {
  return clientId === serverClientIdPrefix || clientId.startsWith(`${serverClientIdPrefix}-`);
}
