import { connect as tcpConnect, type Socket } from 'node:net';
import mqttPacket, { type IPublishPacket, type Packet, type Parser } from 'mqtt-packet';
import { verifyCommandSignature } from '../actors/contract/command-signature.js';
import { parseDeviceCommand, type DeviceCommand, type DeviceReply } from '../actors/contract/device-protocol.js';
import { commandsTopic, repliesTopic, statusTopic, vehicleTopic } from '../actors/contract/device-topics.js';

/**
 * How a simulated device treats the commands it verified:
 * - `answer`: UNLOCKED / LOCKED after the short reply delay.
 * - `silent`: receives, acknowledges the PUBLISH, never answers (the server's unlock times out).
 * - `slow`: answers after the long delay (near or past the server's UNLOCK_TIMEOUT_MS).
 * - `flapping`: answers, but its connection drops every so often without DISCONNECT (last will).
 * - `duplicate`: sends every answer twice (what a QoS 1 redelivery looks like to the server).
 * - `reject`: answers REJECTED.
 */
export const DEVICE_BEHAVIOURS = ['answer', 'silent', 'slow', 'flapping', 'duplicate', 'reject'] as const;
export type DeviceBehaviour = (typeof DEVICE_BEHAVIOURS)[number];

/** Dropped before any answer: unparsable, not signed with this vehicle's key, or past `expiresAt`. */
export type CommandVerdict = 'ok' | 'malformed' | 'bad-signature' | 'expired';

export interface LightDeviceSettings {
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: 4 | 5;
  readonly keepaliveS: number;
  /** MQTT 5: how long the broker keeps the session (subscription, queued commands) while offline. */
  readonly sessionExpiryS: number;
  readonly connectTimeoutMs: number;
  readonly replyDelayMs: number;
  readonly slowReplyMs: number;
}

/** What one device needs from whoever runs it (a DevicePool): pacing, clocks and where to report. */
export interface DeviceHost {
  readonly settings: LightDeviceSettings;
  /** Source address of the next connection (several loopback addresses spread the ephemeral ports). */
  localAddress(): string | undefined;
  online(device: LightDevice): void;
  /** The socket closed; `wasOnline` says whether it had got as far as subscribing and announcing. */
  offline(device: LightDevice, wasOnline: boolean): void;
  /** CONNACK or SUBACK refused (bad credentials, ACL): the device backs off like any failure. */
  refused(device: LightDevice, code: number): void;
  command(device: LightDevice, command: DeviceCommand | null, verdict: CommandVerdict, receivedAt: number): void;
  replied(device: LightDevice, reply: DeviceReply, times: number): void;
  /** A QoS 1 PUBLISH of this device was acknowledged after `roundTripMs`. */
  acked(device: LightDevice, roundTripMs: number): void;
}

interface Inflight {
  readonly packet: IPublishPacket;
  sentAt: number;
}

type DeviceState = 'offline' | 'connecting' | 'subscribing' | 'online';

const WILL = Buffer.from(JSON.stringify({ online: false }));
/** Packet ids wrap at 65535; 0 is not a valid id. */
const MAX_PACKET_ID = 0xffff;
/** Answers remembered for a repeated commandId (a redelivery): a device is not a database. */
const ANSWERS_KEPT = 8;

/**
 * One virtual vehicle on one raw TCP connection, speaking MQTT 3.1.1 or 5 through `mqtt-packet` (no
 * `mqtt` client: that one costs ~94 KB per vehicle, this a few KB). It logs in as username = client id =
 * its id with its password, leaves a retained last will `{online: false}`, keeps a persistent session,
 * subscribes to its commands at QoS 1, announces `{online: true}` (retained) once subscribed, and
 * acknowledges every QoS 1 PUBLISH. Its own QoS 1 publishes keep a packet id until their PUBACK and
 * go out again (DUP) after a reconnect. Keepalive, connect time-outs, pacing and back-off are driven
 * by its host, which ticks thousands of devices with one timer instead of one per device.
 *
 * A command is checked like the full virtual vehicle does (simulator/virtual-vehicle.ts): the signature
 * first (an unsigned command's fields are no facts), then `expiresAt`; a failed check drops it unanswered.
 */
export class LightDevice {
  state: DeviceState = 'offline';
  /** When the current connection attempt started; also the keepalive and flapping clock's base. */
  connectStartedAt = 0;
  lastSentAt = 0;
  pingSentAt = 0;
  /** Consecutive attempts that did not get online: the back-off exponent. */
  failures = 0;
  /** Flapping devices: when the connection is dropped next. */
  flapAt = 0;
  /** PINGREQs sent (keepalive), for tests and the report. */
  pings = 0;
  /** Has been online before: the next time online is a reconnect. */
  everOnline = false;
  locked = true;
  angle = 0;
  radiusM = 0;
  battery = 80;
  /** Ridden to a place by its rider (DevicePool.rideTo): it stands there from then on instead of circling. */
  heldAt: { readonly lat: number; readonly lon: number } | null = null;
  private socket: Socket | null = null;
  private parser: Parser | null = null;
  private nextPacketId = 0;
  private subscribeId = 0;
  private inflight: Map<number, Inflight> | null = null;
  private answers: Map<string, DeviceReply> | null = null;
  private stopped = false;

  constructor(
    readonly id: string,
    private readonly password: string,
    private readonly commandKey: string,
    public behaviour: DeviceBehaviour,
    private readonly host: DeviceHost,
  ) {
    // Validates the id once: every topic below is built from it.
    vehicleTopic(id, 'commands');
  }

  get isOnline(): boolean {
    return this.state === 'online';
  }

  /** The source address of the current connection (several loopback ones spread the ephemeral ports). */
  get localAddress(): string | undefined {
    return this.socket?.localAddress;
  }

  get unacknowledged(): number {
    return this.inflight?.size ?? 0;
  }

  /** Starts one connection attempt; the host calls it when its connect pacing allows. */
  open(now: number): void {
    if (this.stopped || this.socket) return;
    const { settings } = this.host;
    this.state = 'connecting';
    this.connectStartedAt = now;
    this.pingSentAt = 0;
    const localAddress = this.host.localAddress();
    const socket = tcpConnect({ host: settings.host, port: settings.port, ...(localAddress && { localAddress }) });
    const parser = mqttPacket.parser({ protocolVersion: settings.protocolVersion });
    this.socket = socket;
    this.parser = parser;
    socket.setNoDelay(true);
    parser.on('packet', (packet: Packet) => this.onPacket(packet));
    // A packet the parser cannot read leaves the stream out of step: only a new connection recovers.
    parser.on('error', () => socket.destroy());
    socket.on('connect', () => this.sendConnect());
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    // 'close' always follows an error; it is where the device reacts.
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose(socket));
  }

  /** Called about once a second: connect time-out, keepalive PINGREQ, and a link that stopped answering. */
  tick(now: number): void {
    const { settings } = this.host;
    if (this.state === 'connecting' || this.state === 'subscribing') {
      if (now - this.connectStartedAt > settings.connectTimeoutMs) this.socket?.destroy();
      return;
    }
    if (this.state !== 'online') return;
    const keepaliveMs = settings.keepaliveS * 1000;
    if (this.pingSentAt > 0) {
      // No PINGRESP within a whole keepalive period: the broker or the path is gone.
      if (now - this.pingSentAt > keepaliveMs) this.socket?.destroy();
    } else if (keepaliveMs > 0 && now - this.lastSentAt >= keepaliveMs / 2) {
      this.pingSentAt = now;
      this.pings += 1;
      this.write({ cmd: 'pingreq' });
    }
  }

  /** QoS 0 (telemetry): lost while offline, like a real device's stale reading. */
  publishAtMostOnce(topic: string, payload: string): boolean {
    if (this.state !== 'online') return false;
    this.write({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
    return true;
  }

  /** QoS 1: kept with its packet id until the PUBACK, sent again after a reconnect if need be. */
  publishAtLeastOnce(topic: string, payload: string, retain = false, correlationData?: Buffer): void {
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic,
      payload,
      qos: 1,
      retain,
      dup: false,
      messageId: this.packetId(),
      ...(correlationData && this.host.settings.protocolVersion === 5 && { properties: { correlationData } }),
    };
    (this.inflight ??= new Map()).set(packet.messageId!, { packet, sentAt: Date.now() });
    if (this.state === 'online' || this.state === 'subscribing') this.write(packet);
  }

  /** Loses the connection without DISCONNECT: the broker publishes the last will. The host reconnects it. */
  crash(): void {
    this.socket?.destroy();
  }

  /** A clean goodbye: retained `{online: false}`, DISCONNECT (the broker discards the will), no reconnect. */
  stop(): Promise<void> {
    this.stopped = true;
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    if (this.state === 'online') {
      this.write({ cmd: 'publish', topic: statusTopic(this.id), payload: JSON.stringify({ online: false, at: new Date().toISOString() }), qos: 0, retain: true, dup: false });
      this.write({ cmd: 'disconnect' });
      socket.end();
      // A broker that never closes its side must not hold the goodbye up.
      setTimeout(() => socket.destroy(), 5000).unref();
    } else {
      socket.destroy();
    }
    return closed;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private sendConnect(): void {
    const { settings } = this.host;
    this.write({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: settings.protocolVersion,
      clientId: this.id,
      // A real device keeps its session: commands queued while it was away are delivered on return.
      clean: false,
      keepalive: settings.keepaliveS,
      username: this.id,
      password: Buffer.from(this.password),
      will: { topic: statusTopic(this.id), payload: WILL, qos: 1, retain: true },
      ...(settings.protocolVersion === 5 && { properties: { sessionExpiryInterval: settings.sessionExpiryS } }),
    });
  }

  private onPacket(packet: Packet): void {
    switch (packet.cmd) {
      case 'connack': {
        const code = packet.reasonCode ?? packet.returnCode ?? 0;
        if (code !== 0) {
          this.host.refused(this, code);
          this.socket?.destroy();
          return;
        }
        this.state = 'subscribing';
        this.subscribeId = this.packetId();
        this.write({ cmd: 'subscribe', messageId: this.subscribeId, subscriptions: [{ topic: commandsTopic(this.id), qos: 1 }] });
        // Unacknowledged answers from the last connection go again, marked as duplicates.
        if (this.inflight) {
          const now = Date.now();
          for (const entry of this.inflight.values()) {
            entry.packet.dup = true;
            entry.sentAt = now;
            this.write(entry.packet);
          }
        }
        return;
      }
      case 'suback': {
        if (packet.messageId !== this.subscribeId) return;
        const granted = packet.granted[0];
        if (typeof granted === 'number' && granted >= 0x80) {
          this.host.refused(this, granted);
          this.socket?.destroy();
          return;
        }
        // Subscribed first, then online: the server may send a command as soon as it sees the vehicle online.
        this.publishAtLeastOnce(statusTopic(this.id), JSON.stringify({ online: true, at: new Date().toISOString() }), true);
        this.state = 'online';
        this.failures = 0;
        this.host.online(this);
        return;
      }
      case 'publish':
        if (packet.qos > 0 && packet.messageId !== undefined) this.write({ cmd: 'puback', messageId: packet.messageId });
        this.onCommand(packet);
        return;
      case 'puback': {
        const entry = packet.messageId === undefined ? undefined : this.inflight?.get(packet.messageId);
        if (!entry) return;
        this.inflight!.delete(packet.messageId!);
        this.host.acked(this, Date.now() - entry.sentAt);
        return;
      }
      case 'pingresp':
        this.pingSentAt = 0;
        return;
      case 'disconnect':
        // MQTT 5: the broker says why it closes (session taken over, server shutting down).
        this.socket?.destroy();
        return;
      default:
        return;
    }
  }

  private onCommand(packet: IPublishPacket): void {
    const receivedAt = Date.now();
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const parsed = parseDeviceCommand(payload);
    if (!parsed.ok) {
      this.host.command(this, null, 'malformed', receivedAt);
      return;
    }
    const command = parsed.value;
    if (!verifyCommandSignature(this.commandKey, this.id, command)) {
      this.host.command(this, command, 'bad-signature', receivedAt);
      return;
    }
    if (Date.parse(command.expiresAt) <= receivedAt) {
      this.host.command(this, command, 'expired', receivedAt);
      return;
    }
    this.host.command(this, command, 'ok', receivedAt);
    if (this.behaviour === 'silent') return;
    // A repeated commandId is already done: the same answer goes out again.
    let reply = this.answers?.get(command.commandId);
    if (!reply) {
      const at = new Date().toISOString();
      reply =
        this.behaviour === 'reject'
          ? { commandId: command.commandId, type: 'REJECTED', at, reason: 'vehicle refused the command' }
          : { commandId: command.commandId, type: command.type === 'UNLOCK' ? 'UNLOCKED' : 'LOCKED', at };
      const answers = (this.answers ??= new Map());
      if (answers.size >= ANSWERS_KEPT) answers.delete(answers.keys().next().value!);
      answers.set(command.commandId, reply);
    }
    const { settings } = this.host;
    const delay = this.behaviour === 'slow' ? settings.slowReplyMs : settings.replyDelayMs;
    const correlationData = packet.properties?.correlationData;
    const answer = reply;
    if (delay <= 0) this.answer(answer, correlationData);
    else setTimeout(() => this.answer(answer, correlationData), delay);
  }

  private answer(reply: DeviceReply, correlationData: Buffer | undefined): void {
    if (this.stopped) return;
    if (reply.type !== 'REJECTED') this.locked = reply.type === 'LOCKED';
    const times = this.behaviour === 'duplicate' ? 2 : 1;
    const payload = JSON.stringify(reply);
    for (let time = 0; time < times; time += 1) this.publishAtLeastOnce(repliesTopic(this.id), payload, false, correlationData);
    this.host.replied(this, reply, times);
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    const wasOnline = this.state === 'online';
    this.socket = null;
    this.parser?.removeAllListeners();
    this.parser = null;
    this.state = 'offline';
    this.pingSentAt = 0;
    if (!wasOnline) this.failures += 1;
    this.host.offline(this, wasOnline);
  }

  private packetId(): number {
    this.nextPacketId = this.nextPacketId >= MAX_PACKET_ID ? 1 : this.nextPacketId + 1;
    return this.nextPacketId;
  }

  private write(packet: Packet): void {
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    this.lastSentAt = Date.now();
    socket.write(mqttPacket.generate(packet, { protocolVersion: this.host.settings.protocolVersion }));
  }
}
