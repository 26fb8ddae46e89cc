import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { createLogger, type Logger } from '../runtime/ground/logger.js';
import { verifyCommandSignature } from '../actors/contract/command-signature.js';
import { awaitFirstConnect } from '../runtime/ground/mqtt-first-connect.js';
import { withoutNagle } from '../runtime/ground/mqtt-no-delay.js';
import { parseDeviceCommand, type DeviceCommand, type DeviceReply, type Presence, type Telemetry } from '../actors/contract/device-protocol.js';
import { commandsTopic, repliesTopic, statusTopic, telemetryTopic, type VehicleChannel, vehicleTopic } from '../actors/contract/device-topics.js';

/**
 * - `answer`: UNLOCK → UNLOCKED, LOCK → LOCKED, after `replyDelayMs`.
 * - `silent`: receives commands and never answers (a vehicle in a car park without signal).
 * - `reject`: answers REJECTED with `rejectReason`.
 * - `answer-twice`: sends every answer twice (what a QoS 1 redelivery looks like to the server).
 */
export type VehicleMode = 'answer' | 'silent' | 'reject' | 'answer-twice';

export interface VehicleBehaviour {
  readonly replyDelayMs: number;
  readonly mode: VehicleMode;
  readonly rejectReason: string;
}

/** What a device is given at registration (POST /vehicles `credentials`); username = its id. */
export interface VehicleSecrets {
  readonly password: string;
  /** base64url key that verifies each command's `sig` (actors/contract/command-signature.ts). */
  readonly commandKey: string;
}

export interface VirtualVehicleOptions {
  readonly id: string;
  readonly url: string;
  readonly protocolVersion: 4 | 5;
  /** Logs in as username = id with this password, and accepts only commands signed with this key. */
  readonly credentials: VehicleSecrets;
  readonly behaviour?: Partial<VehicleBehaviour>;
  readonly logger?: Logger;
  /**
   * Default: the vehicle id, the only client id a secured broker accepts for this login. Stable, so
   * the broker keeps the device's session between connections.
   */
  readonly clientId?: string;
  /**
   * Default true: like a real device, keep the session (subscription and queued QoS 1 commands)
   * while offline. MQTT 5 sessions expire after `sessionExpirySeconds`.
   */
  readonly persistentSession?: boolean;
  readonly sessionExpirySeconds?: number;
  readonly reconnectPeriodMs?: number;
  readonly connectTimeoutMs?: number;
  /**
   * The device's own clock, for the `at` of its replies (default the wall clock). A test sets it back
   * to stand for a ride that took minutes: the server trusts a device time in the past.
   */
  readonly clock?: () => number;
}

export interface DroppedCommand {
  /** `bad-signature`: not signed with this vehicle's command key; dropped without an answer. */
  readonly reason: 'expired' | 'malformed' | 'bad-signature';
  readonly command?: DeviceCommand;
  readonly error?: string;
}

const DEFAULT_BEHAVIOUR: VehicleBehaviour = { replyDelayMs: 0, mode: 'answer', rejectReason: 'vehicle refused the command' };

/**
 * A device that follows the MQTT contract (docs/contract.md, "MQTT"), for tests, the demo and the simulator.
 * It announces itself with a retained `{online: true}` on every connect, leaves a retained last will
 * `{online: false}`, answers commands on its `replies` topic, treats a repeated commandId as already done
 * (same answer again) and drops commands past their `expiresAt`. One MQTT client per vehicle.
 *
 * A command whose `sig` does not verify with the vehicle's command key is dropped, silently: it did not
 * come from the server (a forged command through a compromised broker), so there is nobody to answer,
 * and a REJECTED under a commandId the forger copied could fail the real command that is in flight.
 */
export class VirtualVehicle {
  /** Every well-formed command received, in order, including the ones dropped as expired. */
  readonly received: DeviceCommand[] = [];
  readonly dropped: DroppedCommand[] = [];
  /** Every reply published (an answer sent twice appears twice). */
  readonly replies: DeviceReply[] = [];
  private behaviourNow: VehicleBehaviour;
  private client: MqttClient | null = null;
  /** Answer of every command executed or being executed, by commandId. */
  private readonly answers = new Map<string, Promise<DeviceReply>>();
  /** Commands whose answer is still waiting for its delay: forgotten on crash or goOffline. */
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly waiters: Array<(command: DeviceCommand) => void> = [];
  private lockedNow = true;
  private readonly log: Logger;

  private constructor(private readonly options: VirtualVehicleOptions) {
    // Validates the id once: every topic below is built from it.
    vehicleTopic(options.id, 'commands');
    this.behaviourNow = { ...DEFAULT_BEHAVIOUR, ...options.behaviour };
    this.log = (options.logger ?? createLogger('silent')).child({ component: 'virtual-vehicle', vehicleId: options.id });
  }

  /** Resolves once connected, subscribed to its commands and announced online. */
  static async start(options: VirtualVehicleOptions): Promise<VirtualVehicle> {
    const vehicle = new VirtualVehicle(options);
    await vehicle.connect();
    return vehicle;
  }

  get id(): string {
    return this.options.id;
  }

  get behaviour(): VehicleBehaviour {
    return this.behaviourNow;
  }

  /** Changes how the next commands are answered; answers already scheduled keep their old behaviour. */
  setBehaviour(change: Partial<VehicleBehaviour>): void {
    this.behaviourNow = { ...this.behaviourNow, ...change };
  }

  get isConnected(): boolean {
    return this.client?.connected ?? false;
  }

  get locked(): boolean {
    return this.lockedNow;
  }

  /** The next command to arrive (well-formed, expired or not); rejects after `timeoutMs`. */
  nextCommand(timeoutMs = 5000): Promise<DeviceCommand> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(deliver);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new Error(`vehicle ${this.id}: no command within ${timeoutMs} ms`));
      }, timeoutMs);
      const deliver = (command: DeviceCommand): void => {
        clearTimeout(timer);
        resolve(command);
      };
      this.waiters.push(deliver);
    });
  }

  /** Publishes a reading (QoS 1 by default, as the contract says); `at` defaults to now. */
  async publishTelemetry(reading: Omit<Telemetry, 'at'> & { at?: string }, qos: 0 | 1 = 1): Promise<Telemetry> {
    const telemetry: Telemetry = { ...reading, at: reading.at ?? new Date().toISOString() };
    await this.connected().publishAsync(telemetryTopic(this.id), JSON.stringify(telemetry), { qos });
    return telemetry;
  }

  /** Any bytes on one of its own topics: malformed payloads for tests. */
  async publishRaw(channel: VehicleChannel, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    await this.connected().publishAsync(vehicleTopic(this.id, channel), payload, { qos: options.qos ?? 1, retain: options.retain ?? false });
  }

  /** A clean shutdown: retained `{online: false}`, then DISCONNECT (so the broker discards the will). */
  async goOffline(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.client = null;
    this.cancelTimers();
    if (client.connected) {
      const presence: Presence = { online: false, at: new Date().toISOString() };
      await client.publishAsync(statusTopic(this.id), JSON.stringify(presence), { qos: 1, retain: true });
    }
    await client.endAsync();
  }

  /** Loses the connection without DISCONNECT (the socket is destroyed): the broker publishes the last will. */
  async crash(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.client = null;
    this.cancelTimers();
    // `end(true)` destroys the stream without sending DISCONNECT and stops mqtt.js from reconnecting.
    await client.endAsync(true);
  }

  /** Connects again after goOffline() or crash(), with the same clientId (and session, if persistent). */
  async comeBack(): Promise<void> {
    if (this.client) return;
    await this.connect();
  }

  /** For test clean-up: same as goOffline(). */
  stop(): Promise<void> {
    return this.goOffline();
  }

  private async connect(): Promise<void> {
    const { options } = this;
    const persistent = options.persistentSession ?? true;
    const will: Presence = { online: false };
    const clientOptions: IClientOptions = {
      clientId: options.clientId ?? options.id,
      username: options.id,
      password: options.credentials.password,
      protocolVersion: options.protocolVersion,
      clean: !persistent,
      reconnectPeriod: options.reconnectPeriodMs ?? 500,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      will: { topic: statusTopic(options.id), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
      ...(options.protocolVersion === 5 && persistent ? { properties: { sessionExpiryInterval: options.sessionExpirySeconds ?? 3600 } } : {}),
    };
    const client = mqtt.connect(options.url, clientOptions);
    this.client = client;
    // Registered before the CONNACK: a resumed session delivers queued commands right behind it.
    client.on('message', (topic, payload, packet) => {
      if (topic === commandsTopic(this.id)) this.onCommand(client, payload, packet);
    });
    client.on('error', (error) => this.log.debug({ err: error }, 'vehicle mqtt error'));
    // Every (re)connect: a broker restarted without persistence has forgotten subscription and status.
    let firstAnnouncement: Promise<void> | undefined;
    client.on('connect', () => {
      // As a device's firmware should: a reply is a small write right behind the command's PUBACK, and
      // with Nagle it waited for the broker's delayed ACK (40 ms on Linux): 44 of an unlock's 48 ms.
      withoutNagle(client);
      const announcement = this.announce(client);
      firstAnnouncement ??= announcement;
      announcement.catch((error: unknown) => this.log.warn({ err: error }, 'vehicle could not announce itself'));
    });
    try {
      await awaitFirstConnect(client, options.url, clientOptions.connectTimeout!);
      await firstAnnouncement;
    } catch (error) {
      this.client = null;
      client.end(true);
      throw error;
    }
  }

  /** Subscribed first, then online: the server may send a command as soon as it sees the vehicle online. */
  private async announce(client: MqttClient): Promise<void> {
    await client.subscribeAsync(commandsTopic(this.id), { qos: 1 });
    const presence: Presence = { online: true, at: new Date().toISOString() };
    await client.publishAsync(statusTopic(this.id), JSON.stringify(presence), { qos: 1, retain: true });
  }

  private onCommand(client: MqttClient, payload: Buffer, packet: IPublishPacket): void {
    const parsed = parseDeviceCommand(payload);
    if (!parsed.ok) {
      this.dropped.push({ reason: 'malformed', error: parsed.error });
      this.log.warn({ error: parsed.error }, 'malformed command dropped');
      return;
    }
    const command = parsed.value;
    this.received.push(command);
    for (const deliver of this.waiters.splice(0)) deliver(command);
    // Checked before anything else about it: an unsigned command's fields (expiresAt too) are no facts.
    if (!verifyCommandSignature(this.options.credentials.commandKey, this.id, command)) {
      this.dropped.push({ reason: 'bad-signature', command });
      this.log.warn({ commandId: command.commandId }, 'command with a bad signature dropped');
      return;
    }
    if (Date.parse(command.expiresAt) <= Date.now()) {
      this.dropped.push({ reason: 'expired', command });
      this.log.info({ commandId: command.commandId }, 'expired command dropped');
      return;
    }
    const behaviour = this.behaviourNow;
    if (behaviour.mode === 'silent') return;
    const correlationData = packet.properties?.correlationData;
    // A repeated commandId is already done: the same answer goes out again.
    let answer = this.answers.get(command.commandId);
    if (!answer) {
      answer = this.execute(command, behaviour);
      this.answers.set(command.commandId, answer);
    }
    const times = behaviour.mode === 'answer-twice' ? 2 : 1;
    answer
      .then(async (reply) => {
        for (let time = 0; time < times; time += 1) await this.sendReply(client, reply, correlationData);
      })
      .catch((error: unknown) => this.log.warn({ err: error, commandId: command.commandId }, 'reply not sent'));
  }

  private execute(command: DeviceCommand, behaviour: VehicleBehaviour): Promise<DeviceReply> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(command.commandId);
        const at = new Date(this.options.clock?.() ?? Date.now()).toISOString();
        if (behaviour.mode === 'reject') {
          resolve({ commandId: command.commandId, type: 'REJECTED', at, reason: behaviour.rejectReason });
          return;
        }
        this.lockedNow = command.type === 'LOCK';
        resolve({ commandId: command.commandId, type: command.type === 'UNLOCK' ? 'UNLOCKED' : 'LOCKED', at });
      }, behaviour.replyDelayMs);
      this.pending.set(command.commandId, timer);
    });
  }

  private async sendReply(client: MqttClient, reply: DeviceReply, correlationData: Buffer | undefined): Promise<void> {
    this.replies.push(reply);
    await client.publishAsync(repliesTopic(this.id), JSON.stringify(reply), {
      qos: 1,
      ...(this.options.protocolVersion === 5 && correlationData ? { properties: { correlationData } } : {}),
    });
  }

  private cancelTimers(): void {
    // A device that went away forgets what it was about to do (the command may come again), not what it did.
    for (const [commandId, timer] of this.pending) {
      clearTimeout(timer);
      this.answers.delete(commandId);
    }
    this.pending.clear();
  }

  private connected(): MqttClient {
    if (!this.client) throw new Error(`vehicle ${this.id} is offline`);
    return this.client;
  }
}
