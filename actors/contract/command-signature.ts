import { timingSafeEqual } from 'node:crypto';
import { hmac } from './device-secrets.js';
import type { DeviceCommand, UnsignedDeviceCommand } from './device-protocol.js';

/**
 * Commands a vehicle can verify (docs/contract.md, "MQTT": `sig`). The server signs every command with a
 * per-vehicle key; the vehicle checks it, so a forged UNLOCK does not open a car even through a broker
 * that was compromised or misconfigured.
 *
 * The key is derived, not stored: `HMAC-SHA256(deviceSecret, 'command-key:' + vehicleId)`. Every shard
 * can sign with nothing but the device secret, without a lookup across threads; the operator receives
 * the key once, with the vehicle's credentials, to install it in the device.
 */

export function deriveCommandKey(deviceSecret: string, vehicleId: string): string {
  return hmac(deviceSecret, `command-key:${vehicleId}`).toString('base64url');
}

/**
 * The signed bytes: the fields in a fixed order as a JSON array, so that no two different commands
 * share a canonical form (no separator an id could contain) and both sides build it the same way.
 * vehicleId is in it although not in the payload: a command captured for one car is useless on another.
 */
export function canonicalCommand(vehicleId: string, command: UnsignedDeviceCommand): string {
  return JSON.stringify([command.commandId, command.type, command.bookingId, vehicleId, command.issuedAt, command.expiresAt]);
}

export function signCommand(commandKey: string, vehicleId: string, command: UnsignedDeviceCommand): string {
  return hmac(Buffer.from(commandKey, 'base64url'), canonicalCommand(vehicleId, command)).toString('base64url');
}

export function verifyCommandSignature(commandKey: string, vehicleId: string, command: DeviceCommand): boolean {
  const expected = Buffer.from(signCommand(commandKey, vehicleId, command), 'base64url');
  const actual = Buffer.from(command.sig, 'base64url');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
