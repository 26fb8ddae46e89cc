import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FleetService } from '../../actors/contract/views.js';
import { UnlockBodySchema, UnlockSchema, problemResponses } from '../schemas.js';
import { UNLOCK_PROBLEMS, unlock } from './bookings.js';

export interface UnlockRoutesOptions {
  readonly fleet: FleetService;
}

/** POST /unlock {bookingId}: the seed's call, kept next to its RESTful twin POST /bookings/:id/unlock. */
export const unlockRoutes: FastifyPluginAsyncZod<UnlockRoutesOptions> = async (app, { fleet }) => {
  app.post(
    '',
    {
      schema: {
        tags: ['bookings'],
        summary: 'Unlock the booked vehicle',
        body: UnlockBodySchema,
        response: { 200: UnlockSchema, ...problemResponses(UNLOCK_PROBLEMS) },
      },
    },
    async (request, reply) => unlock(fleet, request.body.bookingId, request, reply),
  );
};
