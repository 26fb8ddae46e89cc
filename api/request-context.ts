import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { contextFromTraceparent, traceparent, type TraceContext } from '../runtime/envelope.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Trace this request belongs to: the caller's `traceparent`, or a new trace. Passed to every FleetService call. */
    trace: TraceContext;
  }
}

/** Request ids are for log correlation only; traces have their own ids. */
export const newRequestId = (): string => randomUUID();

/**
 * Every request gets its trace before anything else runs (auth failures are traced too): the logger of
 * the request carries `traceId`, and the response's `traceparent` tells the client which trace to open.
 */
export function installRequestContext(app: FastifyInstance): void {
  app.decorateRequest('trace', null as unknown as TraceContext);
  app.addHook('onRequest', (request, reply, done) => {
    const header = request.headers.traceparent;
    const trace = contextFromTraceparent(Array.isArray(header) ? header[0] : header);
    request.trace = trace;
    request.log = request.log.child({ traceId: trace.traceId });
    reply.log = request.log;
    reply.header('traceparent', traceparent(trace));
    reply.header('x-request-id', request.id);
    done();
  });
}
