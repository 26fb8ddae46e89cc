import type { DeviceLink, VehicleMessage } from '../../actors/vehicle/actor.js';
import type { Logger } from '../../runtime/ground/logger.js';
import type { MqttConnection } from './connection.js';
import { trustedDeviceTime } from '../../actors/contract/device-clock.js';
import { parseDeviceReply, parsePresence, type DeviceCommand, type UnsignedDeviceCommand } from '../../actors/contract/device-protocol.js';
import { commandsTopic, repliesTopic, statusTopic } from '../../actors/contract/device-topics.js';

/** Signs a command for one vehicle (actors/contract/command-signature.ts with the vehicle's derived key). */
export type CommandSigner = (vehicleId: string, command: UnsignedDeviceCommand) => string;

/**
 * The vehicle actor's MQTT port. Payloads from devices are parsed here: a malformed one is logged and
 * dropped, so only well-formed replies reach the actor's mailbox. Commands are signed here, on the way
 * out, so that the actor's journal never holds a signature.
 */
export class MqttDeviceLink implements DeviceLink {
  constructor(
    private readonly mqtt: MqttConnection,
    private readonly logger: Logger,
    private readonly sign: CommandSigner,
  ) {}

  async send(vehicleId: string, unsigned: UnsignedDeviceCommand): Promise<void> {
    const command: DeviceCommand = { ...unsigned, sig: this.sign(vehicleId, unsigned) };
    const ttlSeconds = Math.max(1, Math.ceil((Date.parse(command.expiresAt) - Date.now()) / 1000));
    // MQTT 5 brokers drop the command once it is stale (3.1.1 ignores these; the device checks expiresAt).
    await this.mqtt.publish(commandsTopic(vehicleId), command, { qos: 1, messageExpirySeconds: ttlSeconds, correlationData: command.commandId });
  }

  watch(vehicleId: string, deliver: (message: Extract<VehicleMessage, { type: 'DeviceReplied' | 'DevicePresence' }>) => void): () => void {
    const log = this.logger.child({ vehicleId });
    const subscriptions = [
      this.mqtt.subscribe(repliesTopic(vehicleId), (_topic, payload) => {
        const reply = parseDeviceReply(payload);
        if (!reply.ok) return log.warn({ error: reply.error }, 'malformed device reply dropped');
        const { commandId, type, at, reason } = reply.value;
        // The reply itself counts (the car is open); only its time is the device's claim: never the future.
        const now = Date.now();
        deliver({ type: 'DeviceReplied', commandId, reply: type, reason: reason ?? null, at: trustedDeviceTime(Date.parse(at), now) ?? now });
      }),
      this.mqtt.subscribe(statusTopic(vehicleId), (_topic, payload) => {
        // Empty: an operator cleared the retained presence (DELETE /vehicles/:id/presence).
        if (payload.length === 0) return deliver({ type: 'DevicePresence', online: null, at: Date.now() });
        const presence = parsePresence(payload);
        if (!presence.ok) return log.warn({ error: presence.error }, 'malformed presence dropped');
        const now = Date.now();
        const at = presence.value.at === undefined ? now : trustedDeviceTime(Date.parse(presence.value.at), now);
        if (at === null) return log.warn({ at: presence.value.at }, 'presence dated in the future dropped');
        deliver({ type: 'DevicePresence', online: presence.value.online, at });
      }),
    ];
    // Not awaited by the actor: a broker that is down must not stall activation. Unsubscribing waits
    // for the subscribe to have happened.
    for (const subscription of subscriptions) subscription.catch((error: unknown) => log.warn({ err: error }, 'vehicle subscription failed'));
    return () => {
      for (const subscription of subscriptions) {
        subscription.then((unsubscribe) => unsubscribe()).catch(() => undefined);
      }
    };
  }
}
