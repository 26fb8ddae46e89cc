import { z } from 'zod';
import { isReservedVehicleId, RESERVED_ID_PREFIX } from '../actors/contract/device-topics.js';
import { PROBLEM_CONTENT_TYPE } from './problems.js';

/**
 * The single source of truth for the HTTP shapes (docs/contract.md, "HTTP"): route validation, handler types
 * and the OpenAPI document all come from these schemas. Request objects are strict (an unknown field is
 * a 400, so a typo never passes silently); response objects strip what the contract does not list.
 */

/** Named schemas become `components.schemas` in the OpenAPI document. */
export const openApiComponents = z.registry<{ id?: string; description?: string; [key: string]: unknown }>();

/**
 * Examples for the OpenAPI document, so that Swagger UI's "Try it out" starts from a request that works
 * on `FLEET_SEED=20 npm start` instead of values generated from the patterns (`"uz-NCsgPLDELnmFr"`).
 */
export const EXAMPLE_VEHICLE_ID = 'demo-0001';

/** A copy of `schema` with an OpenAPI `example` (metadata in the document's registry; zod's `.meta()` goes elsewhere). */
function withExample<T extends z.ZodType>(schema: T, example: unknown): T {
  const copy = schema.clone();
  openApiComponents.add(copy, { ...openApiComponents.get(schema), example });
  return copy;
}
export const EXAMPLE_BOOKING_ID = 'bk_s0_01JZ3Q8M2X7K9V4T6R1N5B0C8D';

export const IdSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1–64 characters from A-Z a-z 0-9 . _ -');

export const VehicleTypeSchema = z.enum(['car', 'scooter', 'bike']);
export const VehicleStatusSchema = z.enum(['AVAILABLE', 'RESERVED', 'IN_USE', 'OFFLINE', 'MAINTENANCE']);
export const BookingStatusSchema = z.enum(['REQUESTED', 'VEHICLE_RESERVED', 'CONFIRMED', 'ACTIVE', 'COMPLETED', 'CANCELLED', 'EXPIRED', 'REJECTED']);

const Latitude = z.number().min(-90).max(90);
const Longitude = z.number().min(-180).max(180);

export const LocationSchema = z.strictObject({ lat: Latitude, lon: Longitude }).register(openApiComponents, { id: 'Location' });

const Timestamp = z.string().describe('ISO 8601 date-time');
const MoneySchema = z.object({ amount: z.number().int().describe('minor units (cents)'), currency: z.string() });

export const VehicleSchema = z
  .object({
    id: IdSchema,
    type: VehicleTypeSchema,
    model: z.string().nullable(),
    status: VehicleStatusSchema,
    location: z.object({ lat: z.number(), lon: z.number() }),
    battery: z.number().nullable().describe('percent 0–100; null before the first telemetry'),
    online: z.boolean().nullable().describe('from the retained presence; null when the vehicle never reported any'),
    lastSeenAt: Timestamp.nullable(),
    updatedAt: Timestamp,
  })
  .register(openApiComponents, { id: 'Vehicle' });

export const DeviceCredentialsSchema = z
  .object({
    username: IdSchema.describe('the vehicle id; also the MQTT client id the vehicle must connect with'),
    password: z.string().describe('shown once: only a hash is stored'),
    commandKey: z.string().describe('base64url HMAC-SHA256 key; the vehicle verifies each command\'s `sig` with it'),
  })
  .register(openApiComponents, { id: 'DeviceCredentials' });

export const RegisteredVehicleSchema = VehicleSchema.extend({ credentials: DeviceCredentialsSchema }).register(openApiComponents, { id: 'RegisteredVehicle' });

export const RotatedCredentialsSchema = z.object({ vehicleId: IdSchema, credentials: DeviceCredentialsSchema });

export const ClearedPresenceSchema = z.object({
  vehicleId: IdSchema,
  online: z.null().describe('presence unknown until the vehicle reports again; GET /vehicles/:id shows it once the broker delivered the clearing'),
});

export const BookingSchema = z
  .object({
    id: IdSchema,
    status: BookingStatusSchema,
    vehicleId: IdSchema,
    customerId: z.string(),
    durationMinutes: z.number().int(),
    authorization: z.object({ id: z.string(), amount: z.number().int(), currency: z.string() }).nullable(),
    charge: MoneySchema.nullable(),
    createdAt: Timestamp,
    expiresAt: Timestamp,
    unlockedAt: Timestamp.nullable(),
    endedAt: Timestamp.nullable(),
    rejectionReason: z.string().nullable(),
  })
  .register(openApiComponents, { id: 'Booking' });

export const BookingSummarySchema = z
  .object({
    id: IdSchema,
    vehicleId: IdSchema,
    status: BookingStatusSchema,
    createdAt: Timestamp,
    expiresAt: Timestamp.nullable(),
    updatedAt: Timestamp,
  })
  .register(openApiComponents, { id: 'BookingSummary' });

export const BookingPageSchema = z.object({
  items: z.array(BookingSummarySchema),
  next: z.string().nullable().describe('pass as ?cursor= for the next (older) page; null on the last page'),
});

export const ListBookingsQuerySchema = z.strictObject({
  status: BookingStatusSchema.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('newest first; default 20, at most 100'),
  cursor: z.string().min(1).max(200).optional().describe("the previous page's next"),
});

export const UnlockSchema = z
  .object({ bookingId: IdSchema, vehicleId: IdSchema, status: z.literal('SUCCESS'), unlockedAt: Timestamp })
  .register(openApiComponents, { id: 'Unlock' });

export const ProblemSchema = z
  .looseObject({
    type: z.string().describe('stable URI naming the kind of problem'),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    traceId: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe('validation problems only'),
  })
  .describe('RFC 9457 problem details')
  .register(openApiComponents, { id: 'Problem' });

// ---- requests

export const RegisterVehicleBodySchema = withExample(
  z.strictObject({
    id: IdSchema.refine((id) => !isReservedVehicleId(id), `ids starting with "${RESERVED_ID_PREFIX}" are reserved for the server's own MQTT sessions`)
      .optional()
      .describe(`generated (veh_…) when absent; never starting with "${RESERVED_ID_PREFIX}" (reserved)`),
    type: VehicleTypeSchema,
    model: z.string().min(1).max(128).optional(),
    location: LocationSchema,
  }),
  { id: 'scooter-0042', type: 'scooter', model: 'Niu KQi3', location: { lat: 52.5219, lon: 13.4132 } },
);

const DEFAULT_LIST_LIMIT = 100;
export const DEFAULT_RADIUS_M = 1000;

const NearSchema = z
  .string()
  .regex(/^\s*-?\d+(\.\d+)?\s*,\s*-?\d+(\.\d+)?\s*$/, 'expected "lat,lon", e.g. 52.52,13.405')
  .transform((value) => {
    const [lat, lon] = value.split(',').map(Number);
    return { lat: lat!, lon: lon! };
  })
  .pipe(z.object({ lat: Latitude, lon: Longitude }));

export const ListVehiclesQuerySchema = z
  .strictObject({
    status: VehicleStatusSchema.optional(),
    type: VehicleTypeSchema.optional(),
    near: NearSchema.optional().describe('"lat,lon"'),
    radiusM: z.coerce.number().positive().max(100_000).optional().describe(`metres around near; default ${DEFAULT_RADIUS_M}`),
    limit: z.coerce.number().int().min(1).max(1000).default(DEFAULT_LIST_LIMIT),
  })
  .refine((query) => query.radiusM === undefined || query.near !== undefined, { message: 'radiusM requires near', path: ['radiusM'] });

export const VehicleParamsSchema = z.strictObject({ id: IdSchema });
export const BookingParamsSchema = z.strictObject({ id: IdSchema });

export const DEFAULT_PAYMENT_METHOD = 'tok_visa';
export const DEFAULT_DURATION_MINUTES = 30;

export const CreateBookingBodySchema = withExample(
  z.strictObject({
    vehicleId: withExample(IdSchema, EXAMPLE_VEHICLE_ID),
    paymentMethod: withExample(z.string().min(1).max(128).default(DEFAULT_PAYMENT_METHOD).describe('payment token; test tokens: tok_visa, tok_chargeDeclined, tok_timeout'), DEFAULT_PAYMENT_METHOD),
    durationMinutes: withExample(z.number().int().min(1).max(1440).default(DEFAULT_DURATION_MINUTES), DEFAULT_DURATION_MINUTES),
  }),
  { vehicleId: EXAMPLE_VEHICLE_ID, paymentMethod: DEFAULT_PAYMENT_METHOD, durationMinutes: DEFAULT_DURATION_MINUTES },
);

/** Printable ASCII, as the Idempotency-Key draft and Stripe allow; 255 keeps a stored key bounded. */
export const IdempotencyKeySchema = z.string().regex(/^[\x20-\x7E]{1,255}$/, 'expected 1–255 printable ASCII characters');

// Loose: every other header passes untouched (fastify validates the whole header object).
export const CreateBookingHeadersSchema = z.looseObject({ 'idempotency-key': IdempotencyKeySchema.optional() });

export const UnlockBodySchema = withExample(z.strictObject({ bookingId: withExample(IdSchema, EXAMPLE_BOOKING_ID) }), { bookingId: EXAMPLE_BOOKING_ID });

export const VehicleCommandsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('newest first; default 20, at most 100'),
});

export const VehicleCommandSchema = z
  .object({
    commandId: z.string(),
    command: z.enum(['UNLOCK', 'LOCK']),
    state: z
      .enum(['SENT', 'SUCCEEDED', 'REJECTED', 'TIMED_OUT', 'EXPIRED', 'LATE_SUCCESS'])
      .describe('SENT: no outcome yet; TIMED_OUT: no answer by its deadline; EXPIRED: abandoned unanswered (vehicle offline, booking released, or no outcome ever journaled); LATE_SUCCESS: confirmed after TIMED_OUT or EXPIRED'),
    bookingId: z.string().describe('the booking it was sent for'),
    traceId: z.string().nullable().describe('trace of the request that sent it (GET /traces/:traceId)'),
    requestedAt: Timestamp,
    expiresAt: Timestamp,
    settledAt: Timestamp.nullable().describe('when it reached its state; null while SENT'),
    roundTripMs: z.number().nullable().describe('request → device answer, on the server clock; null without an answer'),
    reason: z.string().nullable().describe('timeout, offline, released, no outcome journaled, or the device\'s rejection reason'),
  })
  .register(openApiComponents, { id: 'VehicleCommand' });

export const VehicleCommandsSchema = z.object({ vehicleId: IdSchema, items: z.array(VehicleCommandSchema) });

export const ItemsSchema = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });

export const AreaViolationsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe('newest first; default 100, at most 1000'),
  since: z.iso.datetime({ offset: true }).optional().describe('only violations that began at or after this instant'),
  vehicleId: IdSchema.optional(),
  bookingId: IdSchema.optional(),
});

export const AreaViolationSchema = z
  .object({
    id: z.string().describe('unique across shards'),
    kind: z.enum(['ride-through-not-allowed', 'speed-limit-exceeded']),
    vehicleId: z.string(),
    vehicleType: z.string(),
    bookingId: z.string().nullable().describe('the ride it happened on'),
    zone: z.string().describe("the zone's first name, `zone <index>`, or `global rules`"),
    limitKph: z.number().nullable().describe("the zone's maximum_speed_kph (speed-limit-exceeded); null otherwise"),
    location: LocationSchema.describe('where it began'),
    maxSpeedKmh: z.number().describe('the highest speed reported while it lasted'),
    readings: z.number().int().describe('consecutive telemetry readings of the ride that broke the rule'),
    startedAt: Timestamp.describe("the first such reading's time (the device's)"),
    lastAt: Timestamp.describe('the last such reading so far'),
  })
  .register(openApiComponents, { id: 'AreaViolation' });

// ---- responses shared by routes

type ProblemResponse = { readonly description: string; readonly content: { readonly [PROBLEM_CONTENT_TYPE]: { readonly schema: typeof ProblemSchema } } };

/**
 * OpenAPI entries for a route's problem responses, keyed by status, each with what it means there.
 * Documentation only: problems are serialized by api/problems.ts, never by these schemas.
 */
export function problemResponses<S extends number>(descriptions: Readonly<Record<S, string>>): Record<S, ProblemResponse> {
  const responses = {} as Record<S, ProblemResponse>;
  for (const [status, description] of Object.entries(descriptions) as [`${S}`, string][]) {
    responses[Number(status) as S] = { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: ProblemSchema } } };
  }
  return responses;
}
