import { telemetryTopic } from '../actors/contract/device-topics.js';
import type { DeviceCommand, DeviceReply } from '../actors/contract/device-protocol.js';
import { seededRandom, type Random } from './random.js';
import { LightDevice, type CommandVerdict, type DeviceBehaviour, type DeviceHost, type LightDeviceSettings } from './light-device.js';

/** One device to run: its id, the credentials it was given at registration, and how it behaves. */
export interface DeviceSpec {
  readonly id: string;
  readonly password: string;
  readonly commandKey: string;
  readonly behaviour: DeviceBehaviour;
}

export interface DevicePoolSettings extends LightDeviceSettings {
  /** New connections per second, first connects and reconnects alike (ramp-up and reconnect storms). */
  readonly connectRate: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** Period of each device's telemetry (QoS 0); 0 = none. */
  readonly telemetryMs: number;
  /** Mean time a flapping device stays connected before its link drops. */
  readonly flapEveryMs: number;
  /** Source addresses for the connections, in turn; empty = the system's choice. */
  readonly localAddresses: readonly string[];
  readonly centre: { readonly lat: number; readonly lon: number };
  readonly radiusM: number;
}

/** One command as a device saw it, for the invariants (who got which UNLOCK) and the delivery time. */
export interface CommandRecord {
  readonly vehicleId: string;
  readonly commandId: string | null;
  readonly type: DeviceCommand['type'] | null;
  readonly bookingId: string | null;
  readonly verdict: CommandVerdict;
  /** From the command's `issuedAt` (the server's clock, on this same machine) to its arrival. */
  readonly deliveryMs: number | null;
}

export interface DevicePoolSink {
  command(record: CommandRecord): void;
  /** A device's QoS 1 PUBLISH → PUBACK. */
  roundTrip(ms: number): void;
}

export interface DevicePoolStats {
  readonly devices: number;
  readonly online: number;
  readonly connects: number;
  readonly reconnects: number;
  /** Connections that were online and dropped (flapping, broker restart, dead link); not clean stops. */
  readonly drops: number;
  readonly connectFailures: number;
  readonly refused: number;
  readonly commands: Record<CommandVerdict, number>;
  readonly replies: number;
  readonly telemetrySent: number;
  readonly acks: number;
}

const TICK_MS = 20;
const TELEMETRY_TICK_MS = 100;
const METRES_PER_DEGREE = 111_320;
const RIDE_KMH = 15;
const PARKED_KMH = 1;
const SWAP_BELOW = 20;

/**
 * Many light devices in one thread, driven by three timers whatever their number: connection pacing
 * (a token bucket at `connectRate`, which paces the first ramp-up and every reconnect storm alike),
 * a once-a-second sweep (keepalive, connect time-outs, flapping), and telemetry spread evenly over its
 * period. Back-off after a failure: exponential from `reconnectMinMs` to `reconnectMaxMs`, with jitter.
 */
export class DevicePool implements DeviceHost {
  readonly devices: LightDevice[];
  private readonly queue: LightDevice[] = [];
  private queueHead = 0;
  private tokens = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly random: Random;
  private addressTurn = 0;
  private telemetryTurn = 0;
  private onlineNow = 0;
  private readonly counters = { connects: 0, reconnects: 0, drops: 0, connectFailures: 0, refused: 0, replies: 0, telemetrySent: 0, acks: 0 };
  private readonly verdicts: Record<CommandVerdict, number> = { ok: 0, malformed: 0, 'bad-signature': 0, expired: 0 };
  private stopping = false;
  private readonly byId: Map<string, LightDevice>;

  constructor(
    readonly settings: DevicePoolSettings,
    specs: readonly DeviceSpec[],
    private readonly sink: DevicePoolSink,
    seed = 1,
  ) {
    this.random = seededRandom(seed);
    this.devices = specs.map((spec) => {
      const device = new LightDevice(spec.id, spec.password, spec.commandKey, spec.behaviour, this);
      device.angle = this.random() * 2 * Math.PI;
      device.radiusM = Math.max(50, settings.radiusM * Math.sqrt(this.random()));
      device.battery = 60 + Math.floor(this.random() * 40);
      return device;
    });
    this.byId = new Map(this.devices.map((device) => [device.id, device]));
  }

  /**
   * The rider rode the vehicle to a place (simulator/journeys.ts): it stands there from now on, and
   * reports it at once, whatever the telemetry period (also with telemetry off), so that the server
   * judges the end of the ride where the rider left it. Sent again by the rider until the server shows
   * it: a QoS 0 reading of a device that was offline is lost. False: no such device in this pool.
   */
  rideTo(vehicleId: string, place: { readonly lat: number; readonly lon: number }): boolean {
    const device = this.byId.get(vehicleId);
    if (!device) return false;
    device.heldAt = { lat: place.lat, lon: place.lon };
    this.report(device, this.settings.telemetryMs, new Date().toISOString());
    return true;
  }

  /** Queues every device for its first connection; they connect at `connectRate`. */
  start(): void {
    for (const device of this.devices) this.queue.push(device);
    this.timers.push(setInterval(() => this.pace(), TICK_MS));
    this.timers.push(setInterval(() => this.sweep(), 1000));
    if (this.settings.telemetryMs > 0) this.timers.push(setInterval(() => this.telemetry(), TELEMETRY_TICK_MS));
  }

  get onlineCount(): number {
    return this.onlineNow;
  }

  stats(): DevicePoolStats {
    return { devices: this.devices.length, online: this.onlineNow, ...this.counters, commands: { ...this.verdicts } };
  }

  /** Every device says goodbye (retained offline, DISCONNECT); resolves when their sockets are closed. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
    await Promise.all(this.devices.map((device) => device.stop()));
  }

  // DeviceHost

  localAddress(): string | undefined {
    const addresses = this.settings.localAddresses;
    if (addresses.length === 0) return undefined;
    this.addressTurn = (this.addressTurn + 1) % addresses.length;
    return addresses[this.addressTurn];
  }

  online(device: LightDevice): void {
    this.onlineNow += 1;
    this.counters.connects += 1;
    if (device.everOnline) this.counters.reconnects += 1;
    device.everOnline = true;
    if (device.behaviour === 'flapping') device.flapAt = Date.now() + this.settings.flapEveryMs * (0.5 + this.random());
  }

  offline(device: LightDevice, wasOnline: boolean): void {
    if (wasOnline) {
      this.onlineNow -= 1;
      if (!device.isStopped) this.counters.drops += 1;
    } else if (!device.isStopped) {
      this.counters.connectFailures += 1;
    }
    if (device.isStopped || this.stopping) return;
    const { reconnectMinMs, reconnectMaxMs } = this.settings;
    const backoff = Math.min(reconnectMaxMs, reconnectMinMs * 2 ** Math.min(device.failures, 16));
    // Jitter (50–100 %): devices dropped together must not all come back in the same instant.
    setTimeout(() => this.enqueue(device), backoff * (0.5 + this.random() / 2)).unref();
  }

  refused(_device: LightDevice, _code: number): void {
    this.counters.refused += 1;
  }

  command(device: LightDevice, command: DeviceCommand | null, verdict: CommandVerdict, receivedAt: number): void {
    this.verdicts[verdict] += 1;
    const issuedAt = command ? Date.parse(command.issuedAt) : Number.NaN;
    this.sink.command({
      vehicleId: device.id,
      commandId: command?.commandId ?? null,
      type: command?.type ?? null,
      bookingId: command?.bookingId ?? null,
      verdict,
      deliveryMs: Number.isFinite(issuedAt) ? Math.max(0, receivedAt - issuedAt) : null,
    });
  }

  replied(_device: LightDevice, _reply: DeviceReply, times: number): void {
    this.counters.replies += times;
  }

  acked(_device: LightDevice, roundTripMs: number): void {
    this.counters.acks += 1;
    this.sink.roundTrip(roundTripMs);
  }

  private enqueue(device: LightDevice): void {
    if (!this.stopping && !device.isStopped) this.queue.push(device);
  }

  private pace(): void {
    const rate = this.settings.connectRate;
    // At most a tenth of a second's worth saved up: a quiet spell does not turn into a burst.
    this.tokens = Math.min(Math.max(1, rate / 10), this.tokens + (rate * TICK_MS) / 1000);
    const now = Date.now();
    while (this.tokens >= 1 && this.queueHead < this.queue.length) {
      const device = this.queue[this.queueHead]!;
      this.queueHead += 1;
      this.tokens -= 1;
      device.open(now);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const device of this.devices) {
      device.tick(now);
      if (device.flapAt > 0 && device.flapAt <= now && device.isOnline) {
        device.flapAt = 0;
        device.crash();
      }
    }
  }

  /** One slice of the fleet per tick: the broker sees an even stream, not a burst once per period. */
  private telemetry(): void {
    const { telemetryMs } = this.settings;
    const slices = Math.max(1, Math.round(telemetryMs / TELEMETRY_TICK_MS));
    const slice = this.telemetryTurn % slices;
    this.telemetryTurn += 1;
    const at = new Date().toISOString();
    for (let index = slice; index < this.devices.length; index += slices) {
      const device = this.devices[index]!;
      if (device.isOnline) this.report(device, telemetryMs, at);
    }
  }

  /** One reading: where the device stands (held) or circles to, its battery and speed. */
  private report(device: LightDevice, periodMs: number, at: string): void {
    if (!device.isOnline) return;
    const { centre } = this.settings;
    device.battery -= device.locked ? 0.01 : 0.2;
    if (device.battery < SWAP_BELOW) device.battery = 100;
    let place = device.heldAt;
    if (place === null) {
      const speedKmh = device.locked ? PARKED_KMH : RIDE_KMH;
      device.angle += ((speedKmh / 3.6) * (periodMs / 1000)) / device.radiusM;
      const lonScale = METRES_PER_DEGREE * Math.cos((centre.lat * Math.PI) / 180);
      place = { lat: round6(centre.lat + (device.radiusM * Math.cos(device.angle)) / METRES_PER_DEGREE), lon: round6(centre.lon + (device.radiusM * Math.sin(device.angle)) / lonScale) };
    }
    const reading = { lat: place.lat, lon: place.lon, battery: Math.round(device.battery * 10) / 10, speedKmh: device.locked ? 0 : RIDE_KMH, at };
    if (device.publishAtMostOnce(telemetryTopic(device.id), JSON.stringify(reading))) this.counters.telemetrySent += 1;
  }
}

const round6 = (value: number): number => Math.round(value * 1e6) / 1e6;
