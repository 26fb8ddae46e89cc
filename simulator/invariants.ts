import type { CommandRecord } from './device-pool.js';

/**
 * What must never happen, checked from the outside while a run goes on (the simulator sees both ends:
 * the customers' HTTP answers and what each device received):
 * - `double-booking`: a vehicle confirmed to a second booking while the first was live (confirmed, and
 *   neither ended nor cancelled nor in doubt after a timed-out unlock).
 * - `unlock-not-delivered`: an unlock answered SUCCESS whose vehicle never received (and verified) that
 *   booking's UNLOCK.
 * - `foreign-unlock`: a device received an UNLOCK for a booking of another vehicle.
 * - `server-error`: a 5xx that is not the contract's answer for a device that is away or silent
 *   (503 vehicle-offline, 504 unlock-timed-out / lock-timed-out).
 * - `unfinished-journey`: a journey that neither completed nor failed with a contract error
 *   (a network error, an answer outside the contract, or still running when the run had to end).
 * - `end-outside-accepted`: a ride ended (2xx) while the server showed its vehicle at a place where the
 *   operating area forbids its type to end a ride (the `outside` journey kind tries exactly that).
 */
export const INVARIANTS = ['double-booking', 'unlock-not-delivered', 'foreign-unlock', 'server-error', 'unfinished-journey', 'end-outside-accepted'] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface InvariantResult {
  readonly broken: number;
  /** The first few cases, enough to look them up (`npm run trace -- <bookingId>`). */
  readonly samples: readonly string[];
}

export type InvariantReport = Record<Invariant, InvariantResult>;

/** 5xx the contract gives for a device's absence or silence: the vehicle's fault, not the server's. */
export const DEVICE_CAUSED_5XX: ReadonlySet<string> = new Set(['vehicle-offline', 'unlock-timed-out', 'lock-timed-out']);

const SAMPLES_KEPT = 5;

export class InvariantMonitor {
  private readonly broken = new Map<Invariant, { broken: number; samples: string[] }>(INVARIANTS.map((name) => [name, { broken: 0, samples: [] }]));
  /** Every booking the customers were confirmed, with its vehicle. */
  private readonly bookingVehicle = new Map<string, string>();
  /** Live bookings by vehicle: confirmed and not yet being released. */
  private readonly live = new Map<string, string>();
  private readonly released = new Set<string>();
  private readonly unlocked: Array<{ readonly bookingId: string; readonly vehicleId: string }> = [];
  /** `vehicleId\nbookingId` of every UNLOCK a device received and verified. */
  private readonly delivered = new Set<string>();
  private readonly unlocksSeen: CommandRecord[] = [];

  /** A 201 for a booking (a replay of a known booking id is not a second booking). */
  bookingConfirmed(bookingId: string, vehicleId: string): void {
    if (this.bookingVehicle.has(bookingId)) return;
    this.bookingVehicle.set(bookingId, vehicleId);
    const holder = this.live.get(vehicleId);
    if (holder !== undefined && !this.released.has(holder)) this.report('double-booking', `${vehicleId}: ${bookingId} confirmed while ${holder} held it`);
    this.live.set(vehicleId, bookingId);
  }

  /**
   * The customer asked to end or cancel it, or its unlock timed out (then the server's state is in
   * doubt until the customer cleaned up): from here on a new booking of its vehicle is no violation.
   */
  bookingReleasing(bookingId: string): void {
    this.released.add(bookingId);
    const vehicleId = this.bookingVehicle.get(bookingId);
    if (vehicleId !== undefined && this.live.get(vehicleId) === bookingId) this.live.delete(vehicleId);
  }

  unlockSucceeded(bookingId: string, vehicleId: string): void {
    this.unlocked.push({ bookingId, vehicleId });
  }

  deviceCommand(record: CommandRecord): void {
    if (record.type !== 'UNLOCK' || record.bookingId === null) return;
    if (record.verdict === 'ok') this.delivered.add(`${record.vehicleId}\n${record.bookingId}`);
    this.unlocksSeen.push(record);
  }

  httpAnswer(what: string, status: number, problem: string | null): void {
    if (status >= 500 && !(problem !== null && DEVICE_CAUSED_5XX.has(problem))) this.report('server-error', `${what} → ${status} ${problem ?? ''}`.trim());
  }

  journeyUnfinished(description: string): void {
    this.report('unfinished-journey', description);
  }

  endOutsideAccepted(bookingId: string, vehicleId: string, place: { readonly lat: number; readonly lon: number }): void {
    this.report('end-outside-accepted', `${bookingId}: ${vehicleId} ended at ${place.lat},${place.lon}, where the area forbids an end`);
  }

  /** Call once the devices have reported their last commands (after the fleet stopped). */
  finish(): InvariantReport {
    for (const { bookingId, vehicleId } of this.unlocked) {
      if (!this.delivered.has(`${vehicleId}\n${bookingId}`)) this.report('unlock-not-delivered', `${bookingId}: SUCCESS, but ${vehicleId} never got its UNLOCK`);
    }
    for (const record of this.unlocksSeen) {
      const owner = this.bookingVehicle.get(record.bookingId!);
      if (owner !== undefined && owner !== record.vehicleId) this.report('foreign-unlock', `${record.vehicleId} got the UNLOCK of ${record.bookingId} (a booking of ${owner})`);
    }
    this.unlocked.length = 0;
    this.unlocksSeen.length = 0;
    const report = {} as Record<Invariant, InvariantResult>;
    for (const [name, result] of this.broken) report[name] = { broken: result.broken, samples: [...result.samples] };
    return report;
  }

  private report(name: Invariant, sample: string): void {
    const entry = this.broken.get(name)!;
    entry.broken += 1;
    if (entry.samples.length < SAMPLES_KEPT) entry.samples.push(sample);
  }
}

export const invariantsHold = (report: InvariantReport): boolean => INVARIANTS.every((name) => report[name].broken === 0);
