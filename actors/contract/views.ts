import type { Outcome } from './rejections.js';
import type { TraceContext } from '../../runtime/ground/trace-context.js';

/**
 * What the HTTP layer needs from the rest of the system. server/fleet-service.ts implements it on
 * the actor shards; route handlers depend on nothing else, so `buildApp(deps)` stays testable with `inject`.
 */

export type VehicleType = 'car' | 'scooter' | 'bike';
export type VehicleStatus = 'AVAILABLE' | 'RESERVED' | 'IN_USE' | 'OFFLINE' | 'MAINTENANCE';
export type BookingStatus = 'REQUESTED' | 'VEHICLE_RESERVED' | 'CONFIRMED' | 'ACTIVE' | 'COMPLETED' | 'CANCELLED' | 'EXPIRED' | 'REJECTED';

export interface Location { readonly lat: number; readonly lon: number }
export interface Money { readonly amount: number; readonly currency: string }

export interface VehicleView {
  readonly id: string;
  readonly type: VehicleType;
  readonly model: string | null;
  readonly status: VehicleStatus;
  readonly location: Location;
  /** Percent 0–100, from telemetry; null before the first report. */
  readonly battery: number | null;
  /** From the vehicle's retained presence; null when it never reported any. */
  readonly online: boolean | null;
  readonly lastSeenAt: string | null;
  readonly updatedAt: string;
}

export interface BookingView {
  readonly id: string;
  readonly status: BookingStatus;
  readonly vehicleId: string;
  readonly customerId: string;
  readonly durationMinutes: number;
  /** Amounts in minor units (cents). */
  readonly authorization: ({ readonly id: string } & Money) | null;
  readonly charge: Money | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly unlockedAt: string | null;
  readonly endedAt: string | null;
  readonly rejectionReason: string | null;
}

export interface UnlockView {
  readonly bookingId: string;
  readonly vehicleId: string;
  readonly status: 'SUCCESS';
  readonly unlockedAt: string;
}

export interface Caller {
  /** Customer or operator id (JWT `sub`). */
  readonly id: string;
  readonly role: 'customer' | 'operator';
}

export interface RegisterVehicleInput {
  readonly id: string;
  readonly type: VehicleType;
  readonly model: string | null;
  readonly location: Location;
}

export interface CreateBookingInput {
  /** Chosen by the API: derived from the Idempotency-Key when one is sent, so a retry reaches the same actor. */
  readonly bookingId: string;
  readonly customerId: string;
  readonly vehicleId: string;
  readonly paymentMethod: string;
  readonly durationMinutes: number;
}

export interface VehicleFilter {
  readonly status?: VehicleStatus;
  readonly type?: VehicleType;
  readonly near?: Location;
  readonly radiusM?: number;
  readonly limit: number;
  /**
   * A customer's id: only the vehicles they may book (AVAILABLE and not offline) and those held by one
   * of their own bookings; never the position of someone else's ride. Absent: every vehicle (operators).
   */
  readonly visibleTo?: string;
}

export interface FleetService {
  registerVehicle(input: RegisterVehicleInput, trace: TraceContext): Promise<Outcome<VehicleView>>;
  /** `visibleTo`: a customer's id, as VehicleFilter's: a vehicle they may not see is undefined (404). */
  getVehicle(id: string, visibleTo?: string): Promise<VehicleView | undefined>;
  listVehicles(filter: VehicleFilter): Promise<VehicleView[]>;
  createBooking(input: CreateBookingInput, trace: TraceContext): Promise<Outcome<BookingView>>;
  /** Ownership is checked here: a customer reading another's booking gets BookingForbidden. */
  getBooking(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<BookingView>>;
  unlock(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<UnlockView>>;
  cancel(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<BookingView>>;
  end(bookingId: string, caller: Caller, trace: TraceContext): Promise<Outcome<BookingView>>;
}

/** A vehicle's MQTT login and command key (docs/contract.md, "HTTP": shown once, at registration or rotation). */
export interface DeviceCredentials {
  /** The vehicle id: also the MQTT client id the vehicle must use. */
  readonly username: string;
  readonly password: string;
  /** base64url HMAC key that signs the commands sent to this vehicle (`sig`). */
  readonly commandKey: string;
}

/**
 * Device logins and presence, apart from FleetService: they are answered by the main thread's
 * credential store and MQTT connection, not by the actors (server/device-security.ts).
 */
export interface DeviceAccess {
  /** Stores a new password's hash and provisions the broker; the secrets are never stored in clear. */
  issueCredentials(vehicleId: string): Promise<DeviceCredentials>;
  /** As issueCredentials, and the vehicle's open MQTT sessions are closed: the old password stops working. */
  rotateCredentials(vehicleId: string): Promise<DeviceCredentials>;
  /** Clears the retained presence on the broker; the read model and the vehicle actor follow (online: null). */
  clearPresence(vehicleId: string): Promise<void>;
}
