import { randomBytes } from 'node:crypto';
import type { DeviceAccess, DeviceCredentials } from '../actors/contract/views.js';
import { CredentialStore } from '../persistence/credential-store.js';
import type { Db } from '../persistence/sqlite.js';
import { DEV_JWT_SECRET } from '../actors/contract/device-secrets.js';
import { type FleetConfig } from './config.js';
import type { Logger } from '../runtime/ground/logger.js';
import { deriveCommandKey, signCommand } from '../actors/contract/command-signature.js';
import type { MqttConnection } from '../adapters/mqtt/connection.js';
import { mayUseClientId, SERVER_IDENTITY, type DeviceIdentity } from '../adapters/mqtt/device-auth.js';
import {
  deviceSecretFrom,
  demoVehiclePassword,
  hashDevicePassword,
  newDevicePassword,
  passwordPepper,
  safeEqual,
  verifyDevicePassword,
} from '../actors/contract/device-secrets.js';
import { DynsecProvisioner, noProvisioning, type DeviceProvisioner } from '../adapters/mqtt/dynsec-provisioner.js';
import type { BrokerSecurity, EmbeddedBroker } from '../adapters/mqtt/embedded-broker.js';
import type { UnsignedDeviceCommand } from '../actors/contract/device-protocol.js';
import { isValidVehicleId, statusTopic } from '../actors/contract/device-topics.js';

/** docs/contract.md: no legitimate packet comes near it (commands and replies are a few hundred bytes). */
export const MAX_MQTT_PACKET_BYTES = 64 * 1024;

/**
 * Client ids of the server's own sessions: `MQTT_CLIENT_ID` itself, or `fleetactors-…` (one per process,
 * one per shard after the split: `<prefix>-s<N>`). Nobody else may use them.
 */
export const serverClientIdPrefix = (config: FleetConfig): string => config.mqtt.clientId ?? 'fleetactors';

export interface DeviceSecurity extends BrokerSecurity {
  /** The login the server's own MQTT connections use (every shard the same). */
  readonly serverLogin: { readonly username: string; readonly password: string };
  readonly store: CredentialStore;
  /** Signs a command for `vehicleId`: pure, derived keys, so any thread can call it. */
  sign(vehicleId: string, command: UnsignedDeviceCommand): string;
  commandKey(vehicleId: string): string;
  /** Hash-only credential changes (the broker is provisioned by DeviceAccess). */
  newCredentials(vehicleId: string): DeviceCredentials;
  /** The demo password's hash unless the vehicle has credentials already; null when it had. */
  putDemoCredentials(vehicleId: string): DeviceCredentials | null;
}

/**
 * Device logins and command signatures (issue 10). Everything here is local and synchronous: a broker
 * CONNECT is checked against the credential store without waking an actor.
 */
export function createDeviceSecurity(parts: { db: Db; config: FleetConfig; logger: Logger }): DeviceSecurity {
  const { config } = parts;
  const deviceSecret = deviceSecretFrom(config.mqttSecurity.deviceSecret ?? undefined, config.auth.jwtSecret);
  const pepper = passwordPepper(deviceSecret);
  const store = new CredentialStore(parts.db);
  // Unset MQTT_USERNAME/MQTT_PASSWORD with the embedded broker: nobody outside this process needs the
  // server's login, so it is a fresh random secret per start-up.
  const serverLogin = config.mqttSecurity.serverLogin ?? { username: 'fleetactors-server', password: randomBytes(24).toString('base64url') };
  const prefix = serverClientIdPrefix(config);
  const log = parts.logger.child({ component: 'device-security' });
  const commandKey = (vehicleId: string): string => deriveCommandKey(deviceSecret, vehicleId);

  const identify = (username: string | undefined, password: Buffer | undefined): DeviceIdentity | null => {
    if (username === undefined || password === undefined) return null;
    const secret = password.toString('utf8');
    if (username === serverLogin.username) return safeEqual(secret, serverLogin.password) ? SERVER_IDENTITY : null;
    if (!isValidVehicleId(username)) return null;
    const stored = store.get(username);
    return stored && verifyDevicePassword(pepper, secret, stored.passwordHash) ? { kind: 'vehicle', id: username } : null;
  };

  return {
    serverLogin,
    store,
    maxPacketBytes: MAX_MQTT_PACKET_BYTES,
    authenticate: (clientId, username, password) => {
      const identity = identify(username, password);
      if (!identity) return null;
      if (!mayUseClientId(identity, clientId, prefix)) {
        log.info({ clientId, username }, 'client id not allowed for this login');
        return null;
      }
      return identity;
    },
    sign: (vehicleId, command) => signCommand(commandKey(vehicleId), vehicleId, command),
    commandKey,
    newCredentials: (vehicleId) => {
      const password = newDevicePassword();
      store.put(vehicleId, hashDevicePassword(pepper, password), 'issued');
      return { username: vehicleId, password, commandKey: commandKey(vehicleId) };
    },
    putDemoCredentials: (vehicleId) => {
      // A restart with 100,000 demo vehicles must not derive 200,000 HMACs for credentials it has.
      if (store.get(vehicleId)) return null;
      const password = demoVehiclePassword(DEV_JWT_SECRET, vehicleId);
      const stored = store.putIfAbsent(vehicleId, hashDevicePassword(pepper, password), 'demo');
      return stored ? { username: vehicleId, password, commandKey: commandKey(vehicleId) } : null;
    },
  };
}

/** MQTT_PROVISIONING picks it; the embedded broker needs none but closes a rotated vehicle's sessions itself. */
export function createProvisioner(config: FleetConfig, parts: { mqtt: MqttConnection; broker: EmbeddedBroker | null; logger: Logger }): DeviceProvisioner {
  if (parts.broker) {
    const broker = parts.broker;
    return { provision: async () => undefined, rotate: async (vehicleId) => void broker.disconnectVehicle(vehicleId) };
  }
  if (config.mqttSecurity.provisioning === 'dynsec') return new DynsecProvisioner(parts.mqtt, parts.logger.child({ component: 'dynsec' }));
  return noProvisioning;
}

/** The API's DeviceAccess port: the credential store, the broker's own logins, and presence on MQTT. */
export function createDeviceAccess(parts: { security: DeviceSecurity; provisioner: DeviceProvisioner; mqtt: MqttConnection }): DeviceAccess {
  const { security, provisioner, mqtt } = parts;
  return {
    issueCredentials: async (vehicleId) => {
      const credentials = security.newCredentials(vehicleId);
      await provisioner.provision(vehicleId, credentials.password);
      return credentials;
    },
    rotateCredentials: async (vehicleId) => {
      const credentials = security.newCredentials(vehicleId);
      await provisioner.rotate(vehicleId, credentials.password);
      return credentials;
    },
    // An empty retained message deletes the retained one and reaches every current subscriber: the
    // telemetry pipeline and the vehicle actor read it as "presence unknown".
    clearPresence: (vehicleId) => mqtt.publishRaw(statusTopic(vehicleId), Buffer.alloc(0), { qos: 1, retain: true }),
  };
}

/**
 * FLEET_SEED vehicles get passwords derived from the public development secret, so `npm run sim` can
 * log in without copying secrets, but only while the server runs with that secret. With a real
 * FLEET_JWT_SECRET the derived ones are removed: anyone could compute them.
 */
export async function seedDemoCredentials(
  parts: { security: DeviceSecurity; provisioner: DeviceProvisioner; config: FleetConfig; logger: Logger },
  vehicleIds: readonly string[],
): Promise<void> {
  const { security, provisioner, config, logger } = parts;
  if (!config.auth.usingDevSecret) {
    const removed = security.store.deleteDemoCredentials();
    if (removed > 0) logger.warn({ removed }, 'demo vehicle credentials removed: FLEET_JWT_SECRET is set; rotate them with POST /vehicles/:id/credentials');
    return;
  }
  // One transaction for the store (one fsync, not one per vehicle: FLEET_SEED=100000 starts in seconds).
  const fresh = security.store.inTransaction(() => vehicleIds.map((vehicleId) => security.putDemoCredentials(vehicleId)).filter((credentials) => credentials !== null));
  let provisioned = 0;
  for (const credentials of fresh) {
    await provisioner.provision(credentials.username, credentials.password);
    provisioned += 1;
  }
  if (provisioned > 0) logger.info({ provisioned }, 'demo vehicle credentials derived from the development secret');
}
