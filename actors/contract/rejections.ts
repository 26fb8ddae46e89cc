import type { DeviceCommandType } from './device-protocol.js';

/**
 * Every way a command can be refused, as values (STYLE.md: "Rejections are values").
 * api/problems.ts maps each `type` to one problem+json `type` URI and HTTP status, in one table.
 */
export type Rejection =
  | { readonly type: 'VehicleNotFound'; readonly vehicleId: string }
  | { readonly type: 'VehicleAlreadyRegistered'; readonly vehicleId: string }
  | { readonly type: 'VehicleUnavailable'; readonly vehicleId: string; readonly status: string }
  | { readonly type: 'VehicleLowBattery'; readonly vehicleId: string; readonly battery: number }
  /**
   * offline: its device's last word was going offline (presence false); never-seen: no device ever
   * connected for it (no presence, no telemetry, no answer), so a command would only wait for nobody.
   */
  | { readonly type: 'VehicleOffline'; readonly vehicleId: string; readonly presence: 'offline' | 'never-seen' }
  /** The operating area's rule at the vehicle's position forbids starting a ride there (ride_start_allowed false). */
  | { readonly type: 'RideStartNotAllowed'; readonly vehicleId: string; readonly lat: number; readonly lon: number }
  /** The operating area's rule at the vehicle's position forbids ending a ride there (ride_end_allowed false). */
  | { readonly type: 'RideEndNotAllowed'; readonly vehicleId: string; readonly lat: number; readonly lon: number }
  /** An end of trip inside an operating area needs a position fix no older than maxAgeMs; lastFixAt null: none since registration. */
  | { readonly type: 'VehiclePositionUnknown'; readonly vehicleId: string; readonly lastFixAt: string | null; readonly maxAgeMs: number }
  | { readonly type: 'VehicleNotReservedForBooking'; readonly vehicleId: string; readonly bookingId: string }
  | { readonly type: 'VehicleRejectedCommand'; readonly vehicleId: string; readonly command: DeviceCommandType; readonly reason: string }
  | { readonly type: 'UnlockTimedOut'; readonly vehicleId: string; readonly commandId: string; readonly timeoutMs: number }
  /** A cancel refused while an unlock of this booking is unanswered: the vehicle may be open (issue 19). */
  | { readonly type: 'UnlockOutcomeUnknown'; readonly bookingId: string; readonly vehicleId: string }
  | { readonly type: 'LockTimedOut'; readonly vehicleId: string; readonly commandId: string; readonly timeoutMs: number }
  /** capture_failed: the processor failed a capture; the booking's timer tries it again. */
  | { readonly type: 'PaymentDeclined'; readonly authorizationId: string; readonly reason: DeclineReason | 'capture_failed' }
  | { readonly type: 'BookingNotFound'; readonly bookingId: string }
  | { readonly type: 'BookingForbidden'; readonly bookingId: string }
  | { readonly type: 'BookingAlreadyExists'; readonly bookingId: string }
  /** MAX_ACTIVE_BOOKINGS_PER_CUSTOMER (persistence/live-bookings.ts): decided before the booking saga starts. */
  | { readonly type: 'ActiveBookingLimitReached'; readonly customerId: string; readonly limit: number; readonly liveBookingIds: readonly string[] }
  | { readonly type: 'InvalidBookingState'; readonly bookingId: string; readonly status: string; readonly expected: readonly string[] }
  | { readonly type: 'ActorUnavailable'; readonly actor: string; readonly timeoutMs: number }
  /** The actor's journal could not be written because its disk is full (SQLITE_FULL): nothing of it was committed. */
  | { readonly type: 'StorageFull'; readonly actor: string }
  /** The shard that holds the entity is down (its worker is restarting) or did not answer. */
  | { readonly type: 'ShardUnavailable'; readonly shard: number; readonly reason: string }
  /** The saga gave up on a step whose actor did not answer: final, unlike ActorUnavailable. */
  | { readonly type: 'BookingAborted'; readonly bookingId: string; readonly step: 'reserve' | 'authorize'; readonly actor: string };

export type RejectionType = Rejection['type'];

/** Why an authorization was declined (the payment actor records it; PaymentDeclined names it). */
export type DeclineReason = 'card_declined' | 'gateway_timeout' | 'invalid_payment_method';

/** "No answer in time": the command may still take effect where it was sent (it is not a refusal). */
export const NO_ANSWER: ReadonlySet<RejectionType> = new Set(['ActorUnavailable', 'ShardUnavailable']);

/** A command's outcome as actors reply it: never a thrown string. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly rejection: Rejection };

export const accept = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const reject = <T = never>(rejection: Rejection): Outcome<T> => ({ ok: false, rejection });

/**
 * A refusal thrown where a port cannot return an Outcome (a fleet-wide read whose shard is down): the
 * API's error handler answers its rejection as problem+json, like any other.
 */
export class Refused extends Error {
  override readonly name = 'Refused';
  constructor(readonly rejection: Rejection) {
    super(`refused: ${rejection.type}`);
  }
}
