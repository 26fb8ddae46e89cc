import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TracesPort } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';
import { IdSchema, problemResponses } from '../schemas.js';

export interface TraceRoutesOptions {
  readonly traces: TracesPort;
}

/** GET /traces/:id: a booking's or a request's trace, message by message (docs/architecture.md, "Messages and traces"). */
export const traceRoutes: FastifyPluginAsyncZod<TraceRoutesOptions> = async (app, { traces }) => {
  app.get(
    '/:id',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: ['traces'],
        summary: 'The trace of a booking id or trace id (operators)',
        params: z.strictObject({ id: IdSchema.describe('booking id, or the trace id from a traceparent header') }),
        response: {
          200: z.object({ traceId: z.string(), steps: z.array(z.record(z.string(), z.unknown())) }),
          ...problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 403: 'Not an operator', 404: 'No such trace' }),
        },
      },
    },
    async (request, reply) => {
      const trace = await traces.find(request.params.id);
      if (!trace) return sendProblem(reply, httpProblem('not-found', `No trace is known for ${request.params.id}.`, originOf(request)));
      return { traceId: trace.traceId, steps: [...trace.steps] };
    },
  );
};
