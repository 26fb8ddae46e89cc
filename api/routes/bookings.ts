import type { FastifyReply, FastifyRequest } from 'fastify';
import { NO_ANSWER, type RejectionType } from '../../actors/contract/rejections.js';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { BookingView, FleetService, UnlockView } from '../../actors/contract/views.js';
import { bookingIdFor, requestHash, type Execution, type HttpResponse, type IdempotencyGuard } from '../idempotency.js';
import { httpProblem, originOf, rejectionProblem, sendProblem, sendRejection, type Problem } from '../problems.js';
import { BookingPageSchema, BookingParamsSchema, BookingSchema, CreateBookingBodySchema, CreateBookingHeadersSchema, ListBookingsQuerySchema, UnlockSchema, problemResponses } from '../schemas.js';
import type { CustomerBookingsPort } from '../ports.js';

export interface BookingRoutesOptions {
  readonly fleet: FleetService;
  readonly idempotency: IdempotencyGuard;
  /** GET /bookings: the caller's own bookings. */
  readonly list?: CustomerBookingsPort;
}

const TAGS = ['bookings'];
const bookingLocation = (id: string): string => `/bookings/${encodeURIComponent(id)}`;

/** Fails the same way for every booking call: not signed in, not the owner, no such booking. */
const BOOKING_PROBLEMS = { 400: 'Invalid booking id', 401: 'Not signed in', 403: "Another customer's booking", 404: 'No such booking' } as const;

export const UNLOCK_PROBLEMS = {
  ...BOOKING_PROBLEMS,
  409: 'The booking is not confirmed, or the vehicle refused',
  503: 'Vehicle offline',
  504: 'The vehicle did not confirm the unlock in time',
} as const;

/**
 * Answers a retry with the same key must not replay: ActorUnavailable and ShardUnavailable mean "no
 * answer in time" (the booking may still be made), StorageFull lasts until the disk has room again, and
 * ActiveBookingLimitReached lasts only until the customer's other booking ends, after which the same
 * request books.
 */
const NOT_FINAL: ReadonlySet<RejectionType> = new Set([...NO_ANSWER, 'StorageFull', 'ActiveBookingLimitReached']);

/** /bookings: the booking saga's HTTP face. Ownership is checked by FleetService with the caller. */
export const bookingRoutes: FastifyPluginAsyncZod<BookingRoutesOptions> = async (app, { fleet, idempotency, list }) => {
  if (list) {
    app.get(
      '',
      {
        config: { roles: ['customer'] },
        schema: {
          tags: TAGS,
          summary: "The caller's own bookings, newest first, a page at a time (customers)",
          querystring: ListBookingsQuerySchema,
          response: { 200: BookingPageSchema, ...problemResponses({ 400: 'Invalid query or cursor', 401: 'Not signed in', 403: 'Not a customer' }) },
        },
      },
      async (request, reply) => {
        const { status, limit, cursor } = request.query;
        const page = await list.list(request.caller.id, { status: status ?? null, limit, cursor: cursor ?? null });
        if (page === undefined) {
          return sendProblem(reply, httpProblem('validation', 'cursor is not one this server made: pass the `next` of a previous page, or leave it out for the newest bookings.', originOf(request)));
        }
        return page;
      },
    );
  }

  app.post(
    '',
    {
      config: { roles: ['customer'] },
      schema: {
        tags: TAGS,
        summary: 'Book a vehicle (customers); safe to retry with an Idempotency-Key',
        headers: CreateBookingHeadersSchema,
        body: CreateBookingBodySchema,
        response: {
          201: BookingSchema,
          ...problemResponses({
            400: 'Invalid booking request',
            401: 'Not signed in',
            402: 'Payment declined',
            403: 'Not a customer',
            404: 'No such vehicle',
            409: 'Vehicle unavailable, the customer already holds MAX_ACTIVE_BOOKINGS_PER_CUSTOMER live bookings, or the Idempotency-Key is still in use by a running request',
            422: 'The Idempotency-Key was used with another body',
            503: 'Vehicle offline, or the system did not answer in time',
          }),
        },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const customerId = request.caller.id;
      const { vehicleId, paymentMethod, durationMinutes } = request.body;
      const create = async (): Promise<Execution> => {
        const outcome = await fleet.createBooking(
          { bookingId: bookingIdFor(customerId, key), customerId, vehicleId, paymentMethod, durationMinutes },
          request.trace,
        );
        if (outcome.ok) return { response: { statusCode: 201, body: outcome.value }, final: true };
        if (key !== undefined && outcome.rejection.type === 'BookingAlreadyExists') {
          // The key's booking exists with another request (its stored response expired or was never
          // written): the same key with another body is a 422, whatever the store remembers.
          const reused = httpProblem('idempotency-key-reused', 'This Idempotency-Key was already used with a different body; use a new key for a new booking.', originOf(request));
          return { response: { statusCode: reused.status, body: reused }, final: true };
        }
        const problem = rejectionProblem(outcome.rejection, originOf(request));
        // ActorUnavailable means "no answer in time", not "no": the booking may still be made, so the
        // retry must run again (and reaches the same booking through the key-derived id).
        return { response: { statusCode: problem.status, body: problem }, final: !NOT_FINAL.has(outcome.rejection.type) };
      };

      if (key === undefined) return sendResponse(reply, (await create()).response);
      const result = await idempotency.run(customerId, key, requestHash(request.body), create, request.trace);
      switch (result.kind) {
        case 'executed':
          return sendResponse(reply, result.response);
        case 'replayed':
          reply.header('idempotent-replayed', 'true');
          return sendResponse(reply, result.response);
        case 'in-use':
          reply.header('retry-after', '1');
          return sendProblem(reply, httpProblem('idempotency-key-in-use', 'A request with this Idempotency-Key is still running; retry once it has finished.', originOf(request)));
        case 'reused':
          return sendProblem(reply, httpProblem('idempotency-key-reused', 'This Idempotency-Key was already used with a different body; use a new key for a new booking.', originOf(request)));
        default:
          return unreachable(result);
      }
    },
  );

  app.get(
    '/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Read a booking',
        params: BookingParamsSchema,
        response: { 200: BookingSchema, ...problemResponses(BOOKING_PROBLEMS) },
      },
    },
    async (request, reply) => {
      const outcome = await fleet.getBooking(request.params.id, request.caller, request.trace);
      return outcome.ok ? outcome.value : sendRejection(request, reply, outcome.rejection);
    },
  );

  app.post(
    '/:id/unlock',
    {
      schema: {
        tags: TAGS,
        summary: 'Unlock the booked vehicle (same as POST /unlock)',
        params: BookingParamsSchema,
        response: { 200: UnlockSchema, ...problemResponses(UNLOCK_PROBLEMS) },
      },
    },
    async (request, reply) => unlock(fleet, request.params.id, request, reply),
  );

  app.post(
    '/:id/cancel',
    {
      schema: {
        tags: TAGS,
        summary: 'Cancel a confirmed booking: the authorization is voided and the vehicle released',
        params: BookingParamsSchema,
        response: { 200: BookingSchema, ...problemResponses({ ...BOOKING_PROBLEMS, 409: 'The booking can no longer be cancelled' }) },
      },
    },
    async (request, reply) => {
      const outcome = await fleet.cancel(request.params.id, request.caller, request.trace);
      return outcome.ok ? outcome.value : sendRejection(request, reply, outcome.rejection);
    },
  );

  app.post(
    '/:id/end',
    {
      schema: {
        tags: TAGS,
        summary: 'End the ride: the vehicle is locked and the payment captured',
        params: BookingParamsSchema,
        response: {
          200: BookingSchema,
          ...problemResponses({ ...BOOKING_PROBLEMS, 409: 'The booking is not active', 503: 'Vehicle offline', 504: 'The vehicle did not confirm the lock in time' }),
        },
      },
    },
    async (request, reply) => {
      const outcome = await fleet.end(request.params.id, request.caller, request.trace);
      return outcome.ok ? outcome.value : sendRejection(request, reply, outcome.rejection);
    },
  );
};

/** Shared by POST /bookings/:id/unlock and POST /unlock. */
export async function unlock(fleet: FleetService, bookingId: string, request: FastifyRequest, reply: FastifyReply): Promise<UnlockView | FastifyReply> {
  const outcome = await fleet.unlock(bookingId, request.caller, request.trace);
  return outcome.ok ? outcome.value : sendRejection(request, reply, outcome.rejection);
}

/** A response as first sent or as replayed from the idempotency store (problems carry their own type). */
function sendResponse(reply: FastifyReply, response: HttpResponse): FastifyReply {
  // A stored or fresh problem goes out like every other (sendProblem: Retry-After on shard-unavailable).
  if (response.statusCode >= 400) return sendProblem(reply, response.body as Problem);
  // The stored body is the BookingView the first request answered; the route's response schema still
  // checks it on the way out.
  const booking = response.body as BookingView;
  return reply.code(response.statusCode).header('location', bookingLocation(booking.id)).send(booking);
}

function unreachable(value: never): never {
  throw new Error(`unhandled case ${JSON.stringify(value)}`);
}
