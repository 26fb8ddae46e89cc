import { deriveCommandKey, signCommand } from '../../actors/contract/command-signature.js';
import type { DeviceCommand, UnsignedDeviceCommand } from '../../actors/contract/device-protocol.js';
import type { VehicleSecrets } from '../../simulator/virtual-vehicle.js';

/**
 * For tests of the MQTT plumbing on an open broker (no server, no credential store): the password is
 * not checked there, the command key is real, so the test that plays the server must sign.
 */
const TEST_DEVICE_SECRET = 'test-device-secret-for-plain-broker-tests';

export const plainBrokerSecrets = (vehicleId: string): VehicleSecrets => ({ password: 'not-checked', commandKey: deriveCommandKey(TEST_DEVICE_SECRET, vehicleId) });

export const signedFor = (vehicleId: string, command: UnsignedDeviceCommand): DeviceCommand => ({
  ...command,
  sig: signCommand(plainBrokerSecrets(vehicleId).commandKey, vehicleId, command),
});
