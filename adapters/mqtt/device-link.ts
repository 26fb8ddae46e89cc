import type { DeviceLink, DeviceRecipient } from '../../actors/vehicle/actor.js';
import type { Logger } from '../../runtime/ground/logger.js';
import type { MqttConnection } from './connection.js';
import { trustedDeviceTime } from '../../actors/contract/device-clock.js';
import { parseDeviceReply, parsePresence, type DeviceCommand, type UnsignedDeviceCommand } from '../../actors/contract/device-protocol.js';
import { ALL_REPLIES, ALL_STATUS, commandsTopic, vehicleIdOf } from '../../actors/contract/device-topics.js';

/** Signs a command for one vehicle (actors/contract/command-signature.ts with the vehicle's derived key). */
export type CommandSigner = (vehicleId: string, command: UnsignedDeviceCommand) => string;


/**
 * The vehicle actor's MQTT port. Payloads from devices are parsed here: a malformed one is logged and
 * dropped, so only well-formed replies reach the actor's mailbox. Commands are signed here, on the way
 * out, so that the actor's journal never holds a signature.
 *
 * The wire: one subscription per shard to every vehicle's replies and one to every vehicle's presence
 * (the latter shared with the telemetry pipeline), made on the first watch and kept for the shard's
 * life. An active vehicle actor still owns its conversation: `watch` registers it as the one recipient
 * of its vehicle's messages, and its passivation unregisters it; a message for a vehicle with no actor
 * here (passivated, or placed on another shard) is dropped. So an idle active vehicle costs one map
 * entry, not two subscriptions kept twice (by the client and by the embedded broker), and an
 * activation costs no SUBSCRIBE. Presence an actor has not heard yet comes from the telemetry read
 * model, which the same `+/status` subscription keeps (the vehicle actor's `conditionsOf`).
 */
export class MqttDeviceLink implements DeviceLink {
  /** Vehicle id → its active actor. */
  private readonly routes = new Map<string, DeviceRecipient>();
  private listening: Promise<unknown> | null = null;

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

  watch(vehicleId: string, recipient: DeviceRecipient): void {
    this.routes.set(vehicleId, recipient);
    this.listen();
  }

  unwatch(vehicleId: string, recipient: DeviceRecipient): void {
    // A newer activation of the same vehicle may have registered since: leave its route alone.
    if (this.routes.get(vehicleId) === recipient) this.routes.delete(vehicleId);
  }

  /** How many vehicle actors receive their device's messages now (tests, stats). */
  get watched(): number {
    return this.routes.size;
  }

  /** Not awaited by the actor: a broker that is down must not stall activation (the connection subscribes on reconnect). */
  private listen(): void {
    if (this.listening) return;
    this.listening = Promise.all([
      this.mqtt.subscribe(ALL_REPLIES, (topic, payload) => this.onReply(topic, payload)),
      this.mqtt.subscribe(ALL_STATUS, (topic, payload) => this.onPresence(topic, payload)),
    ]).catch((error: unknown) => {
      this.listening = null;
      this.logger.warn({ err: error }, 'vehicle reply subscription failed; tried again at the next activation');
    });
  }

  private onReply(topic: string, payload: Buffer): void {
    const vehicleId = vehicleIdOf(topic, 'replies');
    const recipient = vehicleId === null ? undefined : this.routes.get(vehicleId);
    if (!recipient) return;
    const reply = parseDeviceReply(payload);
    if (!reply.ok) return this.logger.warn({ vehicleId, error: reply.error }, 'malformed device reply dropped');
    const { commandId, type, at, reason } = reply.value;
    // The reply itself counts (the car is open); only its time is the device's claim: never the future.
    const now = Date.now();
    recipient.fromDevice({ type: 'DeviceReplied', commandId, reply: type, reason: reason ?? null, at: trustedDeviceTime(Date.parse(at), now) ?? now });
  }

  private onPresence(topic: string, payload: Buffer): void {
    const vehicleId = vehicleIdOf(topic, 'status');
    const recipient = vehicleId === null ? undefined : this.routes.get(vehicleId);
    if (!recipient) return;
    // Empty: an operator cleared the retained presence (DELETE /vehicles/:id/presence).
    if (payload.length === 0) return recipient.fromDevice({ type: 'DevicePresence', online: null, at: Date.now() });
    const presence = parsePresence(payload);
    if (!presence.ok) return this.logger.warn({ vehicleId, error: presence.error }, 'malformed presence dropped');
    const now = Date.now();
    const at = presence.value.at === undefined ? now : trustedDeviceTime(Date.parse(presence.value.at), now);
    if (at === null) return this.logger.warn({ vehicleId, at: presence.value.at }, 'presence dated in the future dropped');
    recipient.fromDevice({ type: 'DevicePresence', online: presence.value.online, at });
  }
}
