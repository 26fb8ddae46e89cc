import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TracesPort } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';
import { IdSchema, problemResponses } from '../schemas.js';
import { DEFAULT_LINK_TTL_MINUTES, MAX_LINK_TTL_MINUTES, signViewerLink } from '../viewer/access.js';

export interface TraceRoutesOptions {
  readonly traces: TracesPort;
  /** Signs viewer links (POST /traces/:id/view-link); the route is served only when given. */
  readonly linkSecret?: string;
  /** PUBLIC_BASE_URL (or the address the API listens on): a link's `url` starts with it, never with the request's Host header. */
  readonly publicBaseUrl?: () => string;
}

/** GET /traces/:id: a booking's or a request's trace, message by message (docs/architecture.md, "Messages and traces"). */
export const traceRoutes: FastifyPluginAsyncZod<TraceRoutesOptions> = async (app, { traces, linkSecret, publicBaseUrl = () => 'http://localhost' }) => {
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

  if (linkSecret === undefined) return;
  app.post(
    '/:id/view-link',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: ['traces'],
        summary: 'A short-lived link to the trace viewer page, scoped to this booking or trace (operators); `url` starts with PUBLIC_BASE_URL',
        params: z.strictObject({ id: IdSchema.describe('booking id, or the trace id from a traceparent header') }),
        querystring: z.strictObject({
          ttlMinutes: z.coerce.number().int().min(1).max(MAX_LINK_TTL_MINUTES).default(DEFAULT_LINK_TTL_MINUTES).describe('how long the link works'),
        }),
        response: {
          200: z.object({ url: z.string(), path: z.string(), expiresAt: z.string().describe('ISO 8601') }),
          ...problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 403: 'Not an operator', 404: 'No such trace' }),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!(await traces.find(id))) return sendProblem(reply, httpProblem('not-found', `No trace is known for ${id}.`, originOf(request)));
      const link = signViewerLink(linkSecret, id, request.caller.id, request.query.ttlMinutes);
      const path = `/traces/${encodeURIComponent(id)}/view?access=${encodeURIComponent(link.token)}`;
      request.log.info({ traceView: id, expiresAt: link.expiresAt }, 'viewer link issued');
      return { url: `${publicBaseUrl()}${path}`, path, expiresAt: new Date(link.expiresAt).toISOString() };
    },
  );
};
