import type { DeviceLink, VehicleMessage } from '../actors/vehicle/actor.js';
import type { Logger } from './logger.js';
import type { MqttConnection } from './mqtt/connection.js';
import { parseDeviceReply, parsePresence, type DeviceCommand } from './mqtt/protocol.js';
import { commandsTopic, repliesTopic, statusTopic } from './mqtt/topics.js';

/**
 * The vehicle actor's MQTT port. Payloads from devices are parsed here: a malformed one is logged and
 * dropped, so only well-formed replies reach the actor's mailbox.
 */
export class MqttDeviceLink implements DeviceLink {
  constructor(
    private readonly mqtt: MqttConnection,
    private readonly logger: Logger,
  ) {}

  async send(vehicleId: string, command: DeviceCommand): Promise<void> {
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
        deliver({ type: 'DeviceReplied', commandId, reply: type, reason: reason ?? null, at: Date.parse(at) });
      }),
      this.mqtt.subscribe(statusTopic(vehicleId), (_topic, payload) => {
        const presence = parsePresence(payload);
        if (!presence.ok) return log.warn({ error: presence.error }, 'malformed presence dropped');
        deliver({ type: 'DevicePresence', online: presence.value.online, at: presence.value.at ? Date.parse(presence.value.at) : Date.now() });
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
