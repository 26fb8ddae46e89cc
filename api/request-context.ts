import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Bindings, ChildLoggerOptions, Logger } from 'pino';
import { contextFromTraceparent, traceparent, type TraceContext } from '../runtime/ground/trace-context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Trace this request belongs to: the caller's `traceparent`, or a new trace. Passed to every FleetService call. */
    trace: TraceContext;
  }
}

/** Request ids are for log correlation only; traces have their own ids. */
export const newRequestId = (): string => randomUUID();

const traces = new WeakMap<IncomingMessage, TraceContext>();

function traceOf(raw: IncomingMessage): TraceContext {
  let trace = traces.get(raw);
  if (trace === undefined) {
    const header = raw.headers.traceparent;
    trace = contextFromTraceparent(Array.isArray(header) ? header[0] : header);
    traces.set(raw, trace);
  }
  return trace;
}

/**
 * Fastify's per-request logger, bound to the trace id as well as the request id. Fastify asks for one
 * for every request; binding the trace here instead of in a hook saves a second child and puts
 * `traceId` on the very first line. The pino child itself is made on the first line written: at the
 * usual levels most requests write none, and a child per request was 3 % of the main thread under
 * the booking load (pino serialises its bindings when it is made).
 */
export function requestLogger(logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions, raw: IncomingMessage): FastifyBaseLogger {
  const bind = () => logger.child({ ...bindings, traceId: traceOf(raw).traceId }, options);
  // A route with its own logLevel: the child's level is not the parent's, so no shortcut.
  if (options.level !== undefined || typeof (logger as Partial<Pick<Logger, 'isLevelEnabled'>>).isLevelEnabled !== 'function') return bind();
  return new RequestLogger(logger as FastifyBaseLogger & Pick<Logger, 'isLevelEnabled'>, bind) as unknown as FastifyBaseLogger;
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** The FastifyBaseLogger surface, writing through a child made on first use (when the level is on). */
class RequestLogger {
  private bound: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger & Pick<Logger, 'isLevelEnabled'>,
    private readonly bind: () => FastifyBaseLogger,
  ) {}

  get level(): string {
    return (this.bound ?? this.parent).level;
  }

  set level(level: string) {
    this.materialized().level = level;
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.materialized().child(bindings, options);
  }

  private write(level: Level, args: unknown[]): void {
    if (this.bound === undefined && !this.parent.isLevelEnabled(level)) return;
    (this.materialized()[level] as (...line: unknown[]) => void)(...args);
  }

  private materialized(): FastifyBaseLogger {
    return (this.bound ??= this.bind());
  }
}

/**
 * Every request gets its trace before anything else runs (auth failures are traced too), and the
 * response's `traceparent` tells the client which trace to open.
 */
export function installRequestContext(app: FastifyInstance): void {
  app.decorateRequest('trace', null as unknown as TraceContext);
  app.addHook('onRequest', (request, reply, done) => {
    const trace = traceOf(request.raw);
    request.trace = trace;
    reply.header('traceparent', traceparent(trace));
    reply.header('x-request-id', request.id);
    done();
  });
}
