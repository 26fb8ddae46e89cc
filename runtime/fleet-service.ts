import { BOOKING, type BookingMessage, type UnlockResult } from '../actors/booking/actor.js';
import type { BookingState } from '../actors/booking/decider.js';
import { reject, type Outcome } from '../actors/shared/rejections.js';
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
} from '../api/fleet-service.js';
import type { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import { noAnswer, type ActorAddress, type ActorDirectory } from './kernel/directory.js';
import type { TraceContext } from './kernel/envelope.js';

/** The HTTP layer's port, served by the actors (commands) and the read models (queries). */
export class ActorFleetService implements FleetService {
  constructor(
    private readonly directory: ActorDirectory,
    private readonly vehicles: VehicleReadModel,
    private readonly timing: { readonly unlockTimeoutMs: number; readonly askTimeoutMs: number },
  ) {}

  async registerVehicle(input: RegisterVehicleInput, trace: TraceContext): Promise<Outcome<VehicleView>> {
    const message: VehicleMessage = { type: 'RegisterVehicle', vehicleType: input.type, model: input.model, location: input.location };
    const registered = await this.ask<unknown>({ kind: VEHICLE, id: input.id }, message, trace);
    if (!registered.ok) return registered;
    // The projector wrote the read model in the same transaction as the event, so it is there now.
    return { ok: true, value: this.vehicles.get(input.id)! };
  }

  getVehicle(id: string): VehicleView | undefined {
    return this.vehicles.get(id);
  }

  listVehicles(filter: VehicleFilter): VehicleView[] {
    return this.vehicles.list(filter);
  }

  async createBooking(input: CreateBookingInput, trace: TraceContext): Promise<Outcome<BookingView>> {
    const { customerId, vehicleId, paymentMethod, durationMinutes } = input;
    const message: BookingMessage = { type: 'CreateBooking', customerId, vehicleId, paymentMethod, durationMinutes };
    return this.bookingCommand(input.bookingId, message, trace);
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
    const unlocked = await this.ask<UnlockResult>({ kind: BOOKING, id: bookingId }, { type: 'UnlockBooking', caller }, trace, this.deviceWaitMs());
    if (!unlocked.ok) return unlocked;
    const { vehicleId, unlockedAt } = unlocked.value;
    return { ok: true, value: { bookingId, vehicleId, status: 'SUCCESS', unlockedAt: new Date(unlockedAt).toISOString() } };
  }

  /** The booking waits for the vehicle, which waits for the device: leave room for both. */
  private deviceWaitMs(): number {
    return this.timing.unlockTimeoutMs + this.timing.askTimeoutMs;
  }

  private async bookingCommand(bookingId: string, message: BookingMessage, trace: TraceContext, timeoutMs?: number): Promise<Outcome<BookingView>> {
    const answer = await this.ask<BookingState>({ kind: BOOKING, id: bookingId }, message, trace, timeoutMs);
    return answer.ok ? { ok: true, value: toBookingView(answer.value) } : answer;
  }

  private async ask<T>(target: ActorAddress, message: BookingMessage | VehicleMessage, trace: TraceContext, timeoutMs?: number): Promise<Outcome<T>> {
    try {
      return await this.directory.ask<Outcome<T>>(target, message, 'http', trace, timeoutMs);
    } catch (error) {
      const rejection = noAnswer(error);
      if (rejection) return reject(rejection);
      throw error;
    }
  }
}

const iso = (epochMs: number | null): string | null => (epochMs === null ? null : new Date(epochMs).toISOString());

export function toBookingView(state: BookingState): BookingView {
  if (state.status === 'NEW') throw new Error('a booking that was never requested has no view');
  return {
    id: state.bookingId!,
    status: state.status,
    vehicleId: state.vehicleId!,
    customerId: state.customerId!,
    durationMinutes: state.durationMinutes,
    authorization: state.authorization,
    charge: state.charge,
    createdAt: iso(state.createdAt)!,
    expiresAt: iso(state.expiresAt)!,
    unlockedAt: iso(state.unlockedAt),
    endedAt: iso(state.endedAt),
    rejectionReason: state.rejection?.type ?? null,
  };
}
