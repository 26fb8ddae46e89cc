import type { DeviceCredentials } from './views.js';
import { DEV_JWT_SECRET } from './device-secrets.js';
import { deriveCommandKey } from './command-signature.js';
import { demoVehiclePassword, deviceSecretFrom } from './device-secrets.js';

/** `FLEET_SEED` vehicles are `demo-0001` …: only these get derivable credentials. */
export const isDemoVehicleId = (vehicleId: string): boolean => /^demo-\d{4,}$/.test(vehicleId);

/**
 * What a demo vehicle logs in with against a server on the development secrets (FLEET_JWT_SECRET and
 * FLEET_DEVICE_SECRET unset): the same derivation the server uses when it seeds them. Anybody can
 * compute these, which is why the server only accepts them on the development secret.
 */
export function demoDeviceCredentials(vehicleId: string): DeviceCredentials {
  return {
    username: vehicleId,
    password: demoVehiclePassword(DEV_JWT_SECRET, vehicleId),
    commandKey: deriveCommandKey(deviceSecretFrom(undefined, DEV_JWT_SECRET), vehicleId),
  };
}
