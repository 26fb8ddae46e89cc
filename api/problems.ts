import type { FastifyReply, FastifyRequest } from 'fastify';
import { normalizeDeviceReason } from '../actors/contract/device-protocol.js';
import type { Rejection, RejectionType } from '../actors/contract/rejections.js';

/**
 * RFC 9457 problem details: every error the API sends is `application/problem+json` with a stable
 * `type` URI. Two tables, one for domain rejections and one for HTTP-level failures, are the only
 * place where an error gets its status code, so clients and docs can rely on them.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const PROBLEM_TYPE_BASE = 'https://fleetactors.dev/problems/';

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly instance: string;
  readonly [extension: string]: unknown;
}

type RejectionOf<K extends RejectionType> = Extract<Rejection, { readonly type: K }>;

interface RejectionProblem<K extends RejectionType> {
  readonly slug: string;
  readonly status: number;
  readonly title: string;
  readonly detail: (rejection: RejectionOf<K>) => string;
  /**
   * Extension members; default: the rejection's fields. A field named like a problem member (`status`
   * is a vehicle's or booking's state in two rejections) is renamed here so it never overwrites one.
   */
  readonly extensions?: (rejection: RejectionOf<K>) => Record<string, unknown>;
}

/** Mapped over the Rejection union: adding a rejection type without a row here fails the build. */
export const REJECTION_PROBLEMS: { readonly [K in RejectionType]: RejectionProblem<K> } = {
  VehicleNotFound: {
    slug: 'vehicle-not-found',
    status: 404,
    title: 'Vehicle not found',
    detail: (r) => `No vehicle has the id ${r.vehicleId}.`,
  },
  VehicleAlreadyRegistered: {
    slug: 'vehicle-already-registered',
    status: 409,
    title: 'Vehicle already registered',
    detail: (r) => `A vehicle with the id ${r.vehicleId} is already registered.`,
  },
  VehicleUnavailable: {
    slug: 'vehicle-unavailable',
    status: 409,
    title: 'Vehicle unavailable',
    detail: (r) => `Vehicle ${r.vehicleId} is ${r.status} and cannot be booked.`,
    extensions: (r) => ({ vehicleId: r.vehicleId, vehicleStatus: r.status }),
  },
  VehicleLowBattery: {
    slug: 'vehicle-low-battery',
    status: 409,
    title: 'Vehicle battery too low',
    detail: (r) => `Vehicle ${r.vehicleId} has ${r.battery}% battery left, too little for a booking.`,
  },
  VehicleOffline: {
    slug: 'vehicle-offline',
    status: 503,
    title: 'Vehicle offline',
    detail: (r) =>
      r.presence === 'never-seen'
        ? `Vehicle ${r.vehicleId} has never been online: no device has connected for it, so nothing would hear the command. Bring its device up; for a virtual vehicle: npm run sim -- vehicle ${r.vehicleId} (in its own terminal).`
        : `Vehicle ${r.vehicleId} is offline and cannot take commands. When its device is back online, try again; for a virtual vehicle: npm run sim -- vehicle ${r.vehicleId}.`,
    extensions: (r) => ({ vehicleId: r.vehicleId, presence: r.presence }),
  },
  RideStartNotAllowed: {
    slug: 'ride-start-not-allowed',
    status: 409,
    title: 'Vehicle outside the operating area',
    detail: (r) => `Vehicle ${r.vehicleId} stands at ${r.lat}, ${r.lon}, where the operating area does not allow a ride to start (GET /gbfs/geofencing_zones.json).`,
  },
  RideEndNotAllowed: {
    slug: 'ride-end-not-allowed',
    status: 409,
    title: 'A trip cannot end here',
    detail: (r) => `Vehicle ${r.vehicleId} is at ${r.lat}, ${r.lon}, where the operating area does not allow a ride to end; park inside the area and end again (GET /gbfs/geofencing_zones.json). The trip goes on.`,
  },
  VehiclePositionUnknown: {
    slug: 'vehicle-position-unknown',
    status: 409,
    title: 'Vehicle position unknown',
    detail: (r) =>
      `Vehicle ${r.vehicleId} has not reported a position in the last ${Math.round(r.maxAgeMs / 1000)} s (last: ${r.lastFixAt ?? 'never'}), so the end of the trip cannot be checked against the operating area; retry once it reports, or ask an operator to end it. The trip goes on.`,
  },
  VehicleNotReservedForBooking: {
    slug: 'vehicle-not-reserved-for-booking',
    status: 409,
    title: 'Vehicle not reserved for this booking',
    detail: (r) => `Vehicle ${r.vehicleId} is not reserved for booking ${r.bookingId}.`,
  },
  VehicleRejectedCommand: {
    slug: 'vehicle-rejected-command',
    status: 409,
    title: 'Vehicle rejected the command',
    // The device's own words are data (`reason`, normalized by actors/contract/device-protocol.ts), never part of the detail.
    detail: (r) => `Vehicle ${r.vehicleId} rejected ${r.command}; the vehicle's reason is in \`reason\`.`,
    extensions: (r) => ({ vehicleId: r.vehicleId, command: r.command, reason: normalizeDeviceReason(r.reason) }),
  },
  UnlockTimedOut: {
    slug: 'unlock-timed-out',
    status: 504,
    title: 'Unlock timed out',
    detail: (r) => `Vehicle ${r.vehicleId} did not confirm the unlock within ${r.timeoutMs} ms; the booking stays confirmed, retry the unlock.`,
  },
  UnlockOutcomeUnknown: {
    slug: 'unlock-outcome-unknown',
    status: 409,
    title: 'The vehicle may be open',
    detail: (r) =>
      `Vehicle ${r.vehicleId} has not answered the unlock of booking ${r.bookingId}, so it may be open: the booking cannot be cancelled free of charge. Retry the unlock; if the vehicle opened, the ride is billed; if it never answers, the booking expires without a charge.`,
  },
  LockTimedOut: {
    slug: 'lock-timed-out',
    status: 504,
    title: 'Lock timed out',
    detail: (r) => `Vehicle ${r.vehicleId} did not confirm the lock within ${r.timeoutMs} ms.`,
  },
  PaymentDeclined: {
    slug: 'payment-declined',
    status: 402,
    title: 'Payment declined',
    detail: (r) => `The payment was not authorized (${r.reason}).`,
  },
  BookingNotFound: {
    slug: 'booking-not-found',
    status: 404,
    title: 'Booking not found',
    detail: (r) => `No booking has the id ${r.bookingId}.`,
  },
  BookingForbidden: {
    slug: 'booking-forbidden',
    status: 403,
    title: 'Booking belongs to another customer',
    detail: (r) => `Booking ${r.bookingId} belongs to another customer.`,
  },
  BookingAlreadyExists: {
    slug: 'booking-already-exists',
    status: 409,
    title: 'Booking already exists',
    detail: (r) => `Booking ${r.bookingId} already exists with other details.`,
  },
  ActiveBookingLimitReached: {
    slug: 'active-booking-limit',
    status: 409,
    title: 'Too many live bookings',
    detail: (r) =>
      `You already hold ${r.limit === 1 ? 'a live booking' : `${r.limit} live bookings`} (${r.liveBookingIds.join(', ')}); end or cancel ${r.liveBookingIds.length === 1 ? 'it' : 'one'} before booking again. GET /bookings lists your bookings.`,
    extensions: (r) => ({ limit: r.limit, liveBookingIds: r.liveBookingIds }),
  },
  InvalidBookingState: {
    slug: 'invalid-booking-state',
    status: 409,
    title: 'Booking is not in a state for this action',
    detail: (r) => `Booking ${r.bookingId} is ${r.status}; this action needs ${r.expected.join(' or ')}.`,
    extensions: (r) => ({ bookingId: r.bookingId, bookingStatus: r.status, expected: r.expected }),
  },
  BookingAborted: {
    slug: 'booking-aborted',
    status: 503,
    title: 'Booking aborted',
    detail: (r) => `Booking ${r.bookingId} was given up: ${r.actor} did not answer during the ${r.step} step. Nothing is held; book again.`,
  },
  ActorUnavailable: {
    slug: 'actor-unavailable',
    status: 503,
    title: 'Service temporarily unavailable',
    detail: (r) => `${r.actor} did not answer within ${r.timeoutMs} ms; the request may still complete, retry it.`,
  },
  StorageFull: {
    slug: 'storage-full',
    status: 503,
    title: 'Storage full',
    detail: (r) => `${r.actor} could not write to its database: the disk is full. The request was not completed; retry once space is back (the service recovers by itself).`,
  },
  ShardUnavailable: {
    slug: 'shard-unavailable',
    status: 503,
    title: 'Part of the fleet is restarting',
    detail: (r) => `Shard ${r.shard} is not serving (${r.reason}); it restarts from its journal by itself. Retry shortly.`,
  },
};

/** Failures of the HTTP exchange itself, not of a domain command. */
export const HTTP_PROBLEMS = {
  validation: { slug: 'validation', status: 400, title: 'Request is not valid' },
  'malformed-json': { slug: 'malformed-json', status: 400, title: 'Body is not valid JSON' },
  // MAX_BODY_DEPTH (api/json-depth.ts); checked before the body is parsed.
  'body-too-deep': { slug: 'body-too-deep', status: 400, title: 'Body nested too deeply' },
  'bad-request': { slug: 'bad-request', status: 400, title: 'Bad request' },
  // PUT /operating-area: a document that is not a valid GBFS geofencing_zones `data` (with `errors`).
  'invalid-operating-area': { slug: 'invalid-operating-area', status: 400, title: 'Operating area is not valid' },
  unauthorized: { slug: 'unauthorized', status: 401, title: 'Authentication required' },
  forbidden: { slug: 'forbidden', status: 403, title: 'Not allowed for this role' },
  'not-found': { slug: 'not-found', status: 404, title: 'No such resource' },
  'method-not-allowed': { slug: 'method-not-allowed', status: 405, title: 'Method not allowed' },
  'idempotency-key-in-use': { slug: 'idempotency-key-in-use', status: 409, title: 'Idempotency key in use' },
  // PUT /operating-area without FLEET_OPERATING_AREA: no file to replace.
  'operating-area-not-configured': { slug: 'operating-area-not-configured', status: 409, title: 'No operating area file configured' },
  'body-too-large': { slug: 'body-too-large', status: 413, title: 'Body too large' },
  'uri-too-long': { slug: 'uri-too-long', status: 414, title: 'URI too long' },
  'unsupported-media-type': { slug: 'unsupported-media-type', status: 415, title: 'Unsupported media type' },
  'idempotency-key-reused': { slug: 'idempotency-key-reused', status: 422, title: 'Idempotency key reused with another request' },
  // RATE_LIMIT_PER_CUSTOMER, RATE_LIMIT_PER_IP (api/rate-limits.ts); comes with Retry-After.
  'rate-limited': { slug: 'rate-limited', status: 429, title: 'Too many requests' },
  // STREAMS_PER_TOKEN, STREAMS_PER_IP (api/stream-limits.ts): live streams open at once.
  'too-many-streams': { slug: 'too-many-streams', status: 429, title: 'Too many open streams' },
  'headers-too-large': { slug: 'headers-too-large', status: 431, title: 'Request header fields too large' },
  internal: { slug: 'internal', status: 500, title: 'Internal server error' },
} as const satisfies Record<string, { readonly slug: string; readonly status: number; readonly title: string }>;

export type HttpProblemKind = keyof typeof HTTP_PROBLEMS;

export const problemTypeUri = (slug: string): string => PROBLEM_TYPE_BASE + slug;

/** `Problem` member names an extension must never overwrite. */
const RESERVED = new Set(['type', 'title', 'status', 'detail', 'instance', 'traceId']);

/** Where a problem happened: the path called and the trace to look it up with (GET /traces/:id). */
export interface ProblemOrigin {
  readonly instance: string;
  readonly traceId?: string;
}

export function rejectionProblem(rejection: Rejection, origin: ProblemOrigin): Problem {
  // TS cannot correlate `REJECTION_PROBLEMS[rejection.type]` with `rejection` itself; the mapped table
  // type guarantees the row for a type takes exactly that type's rejection.
  const spec = REJECTION_PROBLEMS[rejection.type] as unknown as RejectionProblem<RejectionType>;
  const extensions = spec.extensions ? spec.extensions(rejection) : fieldsOf(rejection);
  return {
    type: problemTypeUri(spec.slug),
    title: spec.title,
    status: spec.status,
    detail: spec.detail(rejection),
    ...origin,
    ...extensions,
  };
}

export function httpProblem(kind: HttpProblemKind, detail: string, origin: ProblemOrigin, extensions: Record<string, unknown> = {}): Problem {
  const spec = HTTP_PROBLEMS[kind];
  return { type: problemTypeUri(spec.slug), title: spec.title, status: spec.status, detail, ...origin, ...extensions };
}

function fieldsOf(rejection: Rejection): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(rejection)) if (!RESERVED.has(name)) fields[name] = value;
  return fields;
}

/**
 * Sends a problem with its own status and content type. The body is serialized here, so route response
 * schemas (which only document problems) never run on it and a problem can always be sent.
 */
export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  // A shard restarts or changes owner within seconds: say when to come back, at once (never a hang).
  if (problem.type === SHARD_UNAVAILABLE_TYPE) reply.header('retry-after', '1');
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

export const sendRejection = (request: FastifyRequest, reply: FastifyReply, rejection: Rejection): FastifyReply =>
  sendProblem(reply, rejectionProblem(rejection, originOf(request)));

const SHARD_UNAVAILABLE_TYPE = problemTypeUri(REJECTION_PROBLEMS.ShardUnavailable.slug);

/** `instance` is the path the client called (RFC 9457 §3.1.5, a URI reference). */
export const originOf = (request: FastifyRequest): ProblemOrigin =>
  request.trace ? { instance: request.url, traceId: request.trace.traceId } : { instance: request.url };
