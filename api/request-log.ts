import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * One line per request at `info`: `POST /bookings 201 12.3 ms`, with method, route, status and the
 * duration rounded to 0.1 ms as fields. Fastify's default writes two info lines per request (`incoming
 * request` and `request completed` with a 15-digit `responseTime`), which after a short simulation
 * were nine lines in ten of the log; the incoming line stays, at `debug`, for whoever hunts a request
 * that never completes.
 */
export class OneLinePerRequest extends LogController {
  constructor(private readonly unlogged: (request: FastifyRequest) => boolean) {
    super({ disableRequestLogging: unlogged });
  }

  override incomingRequest(request: FastifyRequest): void {
    if (this.unlogged(request)) return;
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.unlogged(request)) return;
    // The line (route lookup, a formatted string, a fields object) is built only if it is written:
    // at the usual production level it is not, and this ran once per request.
    if (!error && ABOVE_INFO.has(reply.log.level)) return;
    const line = requestLine(request, reply);
    if (error) reply.log.error({ ...line.fields, err: error }, line.message);
    else reply.log.info(line.fields, line.message);
  }
}

/** pino's levels at which an `info` line is not written (any other level writes it, as before). */
const ABOVE_INFO: ReadonlySet<string> = new Set(['warn', 'error', 'fatal', 'silent']);

export interface RequestLine {
  readonly message: string;
  readonly fields: { readonly method: string; readonly route: string; readonly status: number; readonly durationMs: number };
}

/** The route's pattern (`/bookings/:id/end`), never the URL: ids go to traces, query strings may carry secrets. */
export function requestLine(request: FastifyRequest, reply: FastifyReply): RequestLine {
  const route = request.routeOptions.url ?? 'unmatched';
  const durationMs = Math.round(reply.elapsedTime * 10) / 10;
  return {
    message: `${request.method} ${route} ${reply.statusCode} ${durationMs.toFixed(1)} ms`,
    fields: { method: request.method, route, status: reply.statusCode, durationMs },
  };
}
