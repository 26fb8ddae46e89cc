import { BOOKING, type BookingMessage, type UnlockResult } from '../actors/booking/actor.js';
import type { BookingState } from '../actors/booking/decider.js';
import { Refused, reject, type Outcome, type Rejection } from '../actors/contract/rejections.js';
import { VEHICLE, type VehicleMessage } from '../actors/vehicle/actor.js';
import type {
  BookingView,
  Caller,
  CreateBookingInput,
  FleetService,
  RegisterVehicleInput,
  UnlockView,
  VehicleFilter,
  VehicleView,
} from '../actors/contract/views.js';
import { haversineMeters } from '../persistence/vehicle-read-model.js';
import type { ActorAddress } from '../runtime/kernel/directory.js';
import { LiveBookingLimit } from '../persistence/live-bookings.js';
import type { TraceContext } from '../runtime/ground/trace-context.js';
import { bookingIdOnShard, shardOfBooking, shardOfVehicle } from '../runtime/kernel/placement.js';
import { ShardUnavailableError } from '../runtime/kernel/shard-link.js';
import { readCall, type FleetShardCaller, type ReadAnswer, type ShardRead } from './shard-calls.js';

/** A shard that is down or did not answer, as the rejection the API answers (503 shard-unavailable); null for any other error. */
export function shardUnavailable(error: unknown): Rejection | null {
  return error instanceof ShardUnavailableError ? { type: 'ShardUnavailable', shard: error.shard, reason: error.reason } : null;
}

/** Where a port cannot return an Outcome (a fleet-wide read): a down shard is thrown as Refused, anything else as it is. */
export function refuseUnavailable(error: unknown): never {
  const rejection = shardUnavailable(error);
  throw rejection ? new Refused(rejection) : error;
}

/** What the fleet service needs of the shards: the supervisor's links, one per shard. */
export interface ShardLinks {
  readonly count: number;
  link(shard: number): FleetShardCaller;
}

/** The main thread waits a little longer than the shard's own deadline, so the shard's answer (a rejection) wins. */
const DEADLINE_MARGIN_MS = 2000;

/**
 * The HTTP layer's port, served by the actor shards: commands go to the shard that holds their
 * entity (runtime/kernel/placement.ts), reads that span the fleet gather from every shard. A shard
 * that is down answers ShardUnavailable at once (503), never a hang.
 */
export class ShardedFleetService implements FleetService {
  private readonly liveBookingLimit: LiveBookingLimit;

  constructor(
    private readonly shards: ShardLinks,
    private readonly timing: { readonly unlockTimeoutMs: number; readonly askTimeoutMs: number; readonly paymentTimeoutMs?: number },
    /** MAX_ACTIVE_BOOKINGS_PER_CUSTOMER; 0 or absent: no limit. */
    maxActiveBookingsPerCustomer = 0,
  ) {
    // An unanswered booking holds a place until its saga's confirmation deadline (reserve and authorize
    // each an ask, plus the gateway's own timeout; the booking actor's confirmWithinMs) has passed, with
    // one more ask of margin.
    const unsettledHoldMs = 3 * timing.askTimeoutMs + (timing.paymentTimeoutMs ?? timing.askTimeoutMs);
    this.liveBookingLimit = new LiveBookingLimit(maxActiveBookingsPerCustomer, (customerId, exceptBookingId) => this.liveBookingIds(customerId, exceptBookingId), unsettledHoldMs);
  }

  async registerVehicle(input: RegisterVehicleInput, trace: TraceContext): Promise<Outcome<VehicleView>> {
    const shard = shardOfVehicle(input.id, this.shards.count);
    const message: VehicleMessage = { type: 'RegisterVehicle', vehicleType: input.type, model: input.model, location: input.location };
    const registered = await this.ask<unknown>(shard, { kind: VEHICLE, id: input.id }, message, trace);
    if (!registered.ok) return registered;
    // The projector wrote the read model in the same transaction as the event, so it is there now.
    const vehicle = await this.read(shard, { read: 'vehicle', id: input.id });
    return vehicle ? { ok: true, value: vehicle } : reject({ type: 'VehicleNotFound', vehicleId: input.id });
  }

  async getVehicle(id: string, visibleTo?: string): Promise<VehicleView | undefined> {
    return (await this.read(shardOfVehicle(id, this.shards.count), { read: 'vehicle', id, ...(visibleTo !== undefined && { visibleTo }) })) ?? undefined;
  }

  /** Every shard's matches, merged in the order one shard gives them (by id, or by distance with `near`). */
  async listVehicles(filter: VehicleFilter): Promise<VehicleView[]> {
    const pages = await Promise.all(
      Array.from({ length: this.shards.count }, (_, shard) => this.read(shard, { read: 'vehicles', filter: { ...filter } })),
    );
    const all = pages.flat();
    if (pages.length === 1) return all;
    const near = filter.near;
    if (near) {
      const distance = new Map(all.map((vehicle) => [vehicle.id, haversineMeters(near, vehicle.location)]));
      all.sort((a, b) => distance.get(a.id)! - distance.get(b.id)! || (a.id < b.id ? -1 : 1));
    } else {
      all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    }
    return all.slice(0, filter.limit);
  }

  async createBooking(input: CreateBookingInput, trace: TraceContext): Promise<Outcome<BookingView>> {
    const { customerId, vehicleId, paymentMethod, durationMinutes } = input;
    // The booking lives with its vehicle, and its id says where: the saga never leaves that shard.
    const shard = shardOfVehicle(vehicleId, this.shards.count);
    const bookingId = placeBookingId(input.bookingId, shard);
    const message: BookingMessage = { type: 'CreateBooking', customerId, vehicleId, paymentMethod, durationMinutes };
    try {
      return await this.liveBookingLimit.admit(customerId, bookingId, () => this.bookingCommand(bookingId, message, trace));
    } catch (error) {
      // A shard that cannot be counted might hold a live booking of this customer: refuse rather than guess.
      const rejection = shardUnavailable(error);
      if (rejection) return reject(rejection);
      throw error;
    }
  }

  /** Every shard's live bookings of the customer (besides the one being requested). */
  private async liveBookingIds(customerId: string, exceptBookingId: string): Promise<string[]> {
    const ids = await Promise.all(
      Array.from({ length: this.shards.count }, (_, shard) => this.read(shard, { read: 'live-bookings', customerId, exceptBookingId })),
    );
    return ids.flat();
  }

  getBooking(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<BookingView>> {
    return this.bookingCommand(bookingId, { type: 'GetBooking', caller }, trace);
  }

  cancel(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<BookingView>> {
    return this.bookingCommand(bookingId, { type: 'CancelBooking', caller }, trace);
  }

  end(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<BookingView>> {
    return this.bookingCommand(bookingId, { type: 'EndBooking', caller }, trace, this.deviceWaitMs());
  }

  async unlock(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<UnlockView>> {
    const shard = shardOfBooking(bookingId, this.shards.count);
    if (shard === null) return reject({ type: 'BookingNotFound', bookingId });
    const unlocked = await this.ask<UnlockResult>(shard, { kind: BOOKING, id: bookingId }, { type: 'UnlockBooking', caller }, trace, this.deviceWaitMs());
    if (!unlocked.ok) return unlocked;
    const { vehicleId, unlockedAt } = unlocked.value;
    return { ok: true, value: { bookingId, vehicleId, status: 'SUCCESS', unlockedAt: new Date(unlockedAt).toISOString() } };
  }

  /** The booking waits for the vehicle, which waits for the device: leave room for both. */
  private deviceWaitMs(): number {
    return this.timing.unlockTimeoutMs + this.timing.askTimeoutMs;
  }

  private async bookingCommand(bookingId: string, message: BookingMessage, trace: TraceContext, timeoutMs?: number): Promise<Outcome<BookingView>> {
    const shard = shardOfBooking(bookingId, this.shards.count);
    if (shard === null) return reject({ type: 'BookingNotFound', bookingId });
    const answer = await this.ask<BookingState>(shard, { kind: BOOKING, id: bookingId }, message, trace, timeoutMs);
    return answer.ok ? { ok: true, value: toBookingView(answer.value) } : answer;
  }

  /** `T`: what the actor answers `message` with (an actor's reply is not typed by message: this is where it is named). */
  private async ask<T>(shard: number, target: ActorAddress, message: BookingMessage | VehicleMessage, trace: TraceContext, timeoutMs = this.timing.askTimeoutMs): Promise<Outcome<T>> {
    try {
      const answer = await this.shards.link(shard).call({ op: 'ask', target, message, from: 'http', trace, timeoutMs }, timeoutMs + DEADLINE_MARGIN_MS);
      return answer as Outcome<T>;
    } catch (error) {
      const rejection = shardUnavailable(error);
      if (rejection) return reject(rejection);
      throw error;
    }
  }

  /** A down shard is refused (Refused: the API answers 503 shard-unavailable). */
  private read<R extends ShardRead>(shard: number, read: R): Promise<ReadAnswer<R>> {
    return this.shards.link(shard).call(readCall(read), this.timing.askTimeoutMs).catch(refuseUnavailable);
  }
}

/** `bk_<hex>` as the API derives it (from the Idempotency-Key, or at random) → `bk_s<shard>_<hex>`. */
export const placeBookingId = (unplaced: string, shard: number): string => bookingIdOnShard(shard, unplaced.replace(/^bk_/, ''));

const iso = (epochMs: number): string => new Date(epochMs).toISOString();

export function toBookingView(state: BookingState): BookingView {
  if (state.status === 'NEW') throw new Error('a booking that was never requested has no view');
  return {
    id: state.bookingId,
    status: state.status,
    vehicleId: state.vehicleId,
    customerId: state.customerId,
    durationMinutes: state.durationMinutes,
    authorization: 'authorization' in state ? state.authorization : null,
    charge: state.status === 'COMPLETED' ? state.charge : null,
    createdAt: iso(state.createdAt),
    expiresAt: iso(state.expiresAt),
    unlockedAt: 'unlockedAt' in state ? iso(state.unlockedAt) : null,
    endedAt: 'endedAt' in state && state.endedAt !== null ? iso(state.endedAt) : null,
    rejectionReason: state.status === 'REJECTED' ? state.rejection.type : null,
  };
}
