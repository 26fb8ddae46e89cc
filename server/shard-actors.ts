import { BOOKING, bookingBehaviour, type BookingMessage } from '../actors/booking/actor.js';
import type { OperatingArea } from '../actors/contract/operating-area.js';
import { claimBehaviour, IDEMPOTENCY } from '../actors/idempotency/actor.js';
import { deriveCommandKey, signCommand } from '../actors/contract/command-signature.js';
import type { UnsignedDeviceCommand } from '../actors/contract/device-protocol.js';
import { deviceSecretFrom } from '../actors/contract/device-secrets.js';
import { isPublicEventType } from '../actors/contract/event-catalog.js';
import type { PaymentGateway } from '../actors/payment/gateway.js';
import { paymentBehaviour, PAYMENT } from '../actors/payment/actor.js';
import { VEHICLE, vehicleBehaviour } from '../actors/vehicle/actor.js';
import type { MqttConnection } from '../adapters/mqtt/connection.js';
import { MqttDeviceLink } from '../adapters/mqtt/device-link.js';
import type { VehicleReadModel } from '../persistence/vehicle-read-model.js';
import type { Clock } from '../runtime/ground/clock.js';
import type { Logger } from '../runtime/ground/logger.js';
import type { ActorDirectory, Freshness, Message } from '../runtime/kernel/directory.js';
import { PUBLIC_TAG } from '../runtime/kernel/journal.js';
import type { FleetConfig } from './config.js';

/** A shard's actors: the vehicle, booking and payment behaviours, wired to what they need of the shard. */

export interface ShardActorParts {
  readonly config: FleetConfig;
  readonly mqtt: MqttConnection;
  readonly vehicles: VehicleReadModel;
  readonly gateway: PaymentGateway;
  /** Booking and payment time (a test's clock); vehicles keep the wall clock. */
  readonly clock: Clock;
  readonly logger: Logger;
  /** The operating area in force on this shard (server/shard.ts holds it; an operator may replace it); null: none. */
  readonly operatingArea?: () => OperatingArea | null;
}

export function registerShardActors(directory: ActorDirectory, { config, mqtt, vehicles, gateway, clock, logger, operatingArea }: ShardActorParts): void {
  directory.register(
    VEHICLE,
    vehicleBehaviour({
      // Every command carries a signature the vehicle checks; the keys derive from plain configuration,
      // so signing needs nothing from another thread.
      device: new MqttDeviceLink(mqtt, logger.child({ component: 'device-link' }), commandSigner(config)),
      conditionsOf: (id) => vehicles.conditionsOf(id),
      everSeen: (id) => vehicles.everSeen(id),
      notifyUnlocked: (ctx, bookingId, unlockedAt) => {
        const message: BookingMessage = { type: 'VehicleWasUnlocked', unlockedAt };
        ctx.tell({ kind: BOOKING, id: bookingId }, message);
      },
      notifyLocked: (ctx, bookingId, lockedAt) => {
        const message: BookingMessage = { type: 'VehicleWasLocked', lockedAt };
        ctx.tell({ kind: BOOKING, id: bookingId }, message);
      },
      unlockTimeoutMs: config.timing.unlockTimeoutMs,
      // Where rides may start and end (docs/gbfs.md): the area in force and the vehicle's latest position.
      areaCheck: (id) => {
        const area = operatingArea?.() ?? null;
        const position = area && vehicles.positionOf(id);
        return area && position ? { policy: { area, maxFixAgeMs: config.operatingArea.maxFixAgeMs }, position } : null;
      },
    }),
  );
  directory.register(
    BOOKING,
    bookingBehaviour({
      reservationWindowMs: config.timing.reservationWindowMs,
      // Reserve + authorize each get an ask timeout; a saga still unconfirmed after both is abandoned.
      confirmWithinMs: 2 * config.timing.askTimeoutMs + config.timing.paymentTimeoutMs,
      unlockTimeoutMs: config.timing.unlockTimeoutMs,
      now: () => clock.now(),
    }),
  );
  directory.register(PAYMENT, paymentBehaviour({ gateway, timeoutMs: config.timing.paymentTimeoutMs, now: () => clock.now() }));
  // Idempotency-Key claims, placed by a hash of (customer, key): written in this shard's group commit.
  directory.register(IDEMPOTENCY, claimBehaviour({ now: () => clock.now() }));
}

/** Journal tags of an event: `public` for those that leave the process (Kafka, GET /events). */
export const tagsForEvent = (event: Message): string[] => (isPublicEventType(event.type) ? [PUBLIC_TAG] : []);

/** A booking refused to someone who does not own it: kept out of that booking's traces (DirectoryOptions.untracedRefusal). */
export const isStrangersRefusal = (outcome: unknown): boolean => (outcome as { rejection?: { type?: unknown } }).rejection?.type === 'BookingForbidden';

/**
 * The commands that create their actor, whose activation reads no journal (DirectoryOptions.startsFresh):
 * - a new booking (CreateBooking) persists before it answers or asks anything: it is taken for new on
 *   a guess, and a retried create finds out when its first event collides (NotNewAfterAll);
 * - a payment authorization (Authorize) and an Idempotency-Key's claim (ClaimKey) answer once their
 *   events are queued, before they commit (actors/payment/actor.ts, actors/idempotency/actor.ts). An
 *   activation on a guess could answer from a state that is not the actor's (a key already used
 *   answered "free"), so theirs first asks the journal whether it holds anything of them: one indexed
 *   look-up ('checked') instead of a recovery, and an answer that needs no commit to be trusted.
 */
export const createsItsActor = (kind: string, command: Message): Freshness => {
  if (kind === BOOKING) return command.type === 'CreateBooking';
  if ((kind === PAYMENT && command.type === 'Authorize') || (kind === IDEMPOTENCY && command.type === 'ClaimKey')) return 'checked';
  return false;
};

function commandSigner(config: FleetConfig): (vehicleId: string, command: UnsignedDeviceCommand) => string {
  const deviceSecret = deviceSecretFrom(config.mqttSecurity.deviceSecret ?? undefined, config.auth.jwtSecret);
  return (vehicleId, command) => signCommand(deriveCommandKey(deviceSecret, vehicleId), vehicleId, command);
}
