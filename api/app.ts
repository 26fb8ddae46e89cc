import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { OneLinePerRequest } from './request-log.js';
import {
  createJsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { ServerOptions } from 'node:http';
import type { Logger } from '../runtime/ground/logger.js';
import type { Metrics } from '../runtime/ground/metrics.js';
import { installAuth, operationalAccess } from './auth.js';
import { installErrorHandling } from './error-handling.js';
import { frameworkErrorOptions, installFrameworkErrors } from './framework-errors.js';
import type { DeviceAccess, FleetService } from '../actors/contract/views.js';
import { IdempotencyGuard } from './idempotency.js';
import { installJsonBodyParser } from './json-body.js';
import { openApiTransform } from './openapi.js';
import type { CustomerBookingsPort, EventsPort, GbfsPort, HealthReport, IdempotencyPort, OperatingAreaPort, TracesPort, VehicleCommandsPort } from './ports.js';
import { PROBLEM_CONTENT_TYPE } from './problems.js';
import { rateLimits, type RateLimits } from './rate-limits.js';
import { StreamLimits, type StreamCaps } from './stream-limits.js';
import { installRequestContext, newRequestId, requestLogger } from './request-context.js';
import { asyncApiRoutes } from './routes/asyncapi.js';
import { bookingRoutes } from './routes/bookings.js';
import { eventRoutes } from './routes/events.js';
import { gbfsRoutes } from './routes/gbfs.js';
import { operatingAreaRoutes } from './routes/operating-area.js';
import { opsRoutes } from './routes/ops.js';
import { traceRoutes } from './routes/traces.js';
import { unlockRoutes } from './routes/unlock.js';
import { vehicleRoutes } from './routes/vehicles.js';
import { viewerRoutes } from './viewer/routes.js';
import { openApiComponents } from './schemas.js';

/** The settings the HTTP edge reads: the composition root's FleetConfig (server/config.ts) satisfies it. */
export interface ApiSettings {
  readonly http: {
    readonly bodyLimitBytes: number;
    /** Links the API hands out start with it (PUBLIC_BASE_URL; null: the address it listens on), never with a request's Host. */
    readonly publicBaseUrl: string | null;
    readonly requestTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
  };
  readonly rateLimits: RateLimits;
  readonly streams: StreamCaps;
  readonly auth: { readonly jwtSecret: string };
  /** GET /metrics accepts this bearer token besides an operator's JWT (null: operators only). */
  readonly metrics: { readonly token: string | null };
  /** Where public events go; absent: the journal only (GET /events). */
  readonly kafka?: { readonly mode: 'kafka' | 'local' };
}

export interface AppDeps {
  readonly fleet: FleetService;
  /** Device credentials and presence (POST /vehicles, /vehicles/:id/credentials, /vehicles/:id/presence). */
  readonly devices: DeviceAccess;
  readonly config: ApiSettings;
  /** Whether an error means a full disk under a store the API writes (503 storage-full); the storage adapter knows. */
  readonly isStorageFull?: (error: unknown) => boolean;
  readonly logger: Logger;
  readonly idempotency: IdempotencyPort;
  readonly metrics: Metrics;
  readonly health: () => HealthReport | Promise<HealthReport>;
  /** GET /events is served only when given. */
  readonly events?: EventsPort;
  /** GET /traces/:id is served only when given. */
  readonly traces?: TracesPort;
  /** GET /vehicles/:id/commands is served only when given. */
  readonly vehicleCommands?: VehicleCommandsPort;
  /** The public GBFS feeds under /gbfs/ are served only when given. */
  readonly gbfs?: GbfsPort;
  /** PUT /operating-area is served only when given. */
  readonly operatingArea?: OperatingAreaPort;
  /** GET /bookings; absent in tests that do not list bookings. */
  readonly customerBookings?: CustomerBookingsPort;
}

/**
 * Routes without a request log line. /health and /metrics: load balancers and Prometheus call them every
 * few seconds, and an info line per call would bury everything else (their failures still log, and
 * /metrics counts them). The trace viewer page: its URL carries a viewer link's token (`?access=`), which
 * must not land in a log (the page moves it to the tab's storage at once).
 */
const UNLOGGED_ROUTES: ReadonlySet<string> = new Set(['/health', '/metrics', '/traces/:id/view']);
const isUnlogged = (request: FastifyRequest): boolean => UNLOGGED_ROUTES.has(request.routeOptions.url ?? '');

/** `http://host:port` the app listens on (no Host header involved); `http://localhost` before it listens (inject). */
function listeningUrl(app: FastifyInstance): string {
  const address = app.server.address();
  if (address === null || typeof address === 'string') return 'http://localhost';
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/**
 * Node's socket deadlines (docs/contract.md, "Limits"): a request whose headers and body have not all
 * arrived within `requestTimeoutMs` is answered 408 and closed (a client sending a byte every few
 * seconds no longer holds a socket for ever), a socket silent both ways for `idleTimeoutMs` is closed,
 * and an idle keep-alive connection is kept `keepAliveTimeoutMs`. Node checks the request deadline
 * every `connectionsCheckingInterval`; a tenth of it, so a late request is cut close to its deadline.
 */
export function socketTimeouts(http: ApiSettings['http']): Pick<FastifyServerOptions, 'requestTimeout' | 'connectionTimeout' | 'keepAliveTimeout'> & { readonly http: ServerOptions } {
  return {
    requestTimeout: http.requestTimeoutMs,
    connectionTimeout: http.idleTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    http: { headersTimeout: http.requestTimeoutMs, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(http.requestTimeoutMs / 10))) },
  };
}
/** The bearer scheme's description in the OpenAPI document (Swagger UI's Authorize dialog). */
export const BEARER_TOKEN_HELP =
  'A token from `npm run -s token -- --sub alice --role customer` (booking, unlock, end) or `--role operator` (registering vehicles, /events, /traces), run in a shell with the server\'s FLEET_JWT_SECRET (or none, for a server on the dev secret). Paste the token alone, without "Bearer".';

/**
 * The HTTP API (docs/contract.md, "HTTP"). Returns an app that is not listening: main.ts calls `listen`,
 * tests call `inject`. Public routes (health, metrics, OpenAPI, docs) sit outside the authenticated
 * scope; everything else needs a bearer token.
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger,
    genReqId: newRequestId,
    childLoggerFactory: requestLogger,
    requestIdHeader: false,
    logController: new OneLinePerRequest(isUnlogged),
    bodyLimit: deps.config.http.bodyLimitBytes,
    ...socketTimeouts(deps.config.http),
    routerOptions: { ignoreTrailingSlash: true },
    ...frameworkErrorOptions,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: without this, a text/plain body would reach validation and come back 400 instead of 415.
  app.removeContentTypeParser('text/plain');
  installJsonBodyParser(app as unknown as FastifyInstance);

  // The app is typed with pino's Logger; the rest of the API takes fastify's base instance type.
  const base = app as unknown as FastifyInstance;
  installRequestContext(base);
  installErrorHandling(base, deps.config.http.bodyLimitBytes, deps.isStorageFull ?? (() => false));
  installFrameworkErrors(base);
  app.register(rateLimits, { limits: deps.config.rateLimits });
  app.addHook('onResponse', (request, reply, done) => {
    deps.metrics.observeHttpRequest(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'fleetactors',
        version: '0.1.0',
        description: `Book and unlock shared vehicles. Errors are ${PROBLEM_CONTENT_TYPE} (RFC 9457) with stable type URIs.`,
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            // Shown in Swagger UI's Authorize dialog: where a newcomer gets the value to paste.
            description: BEARER_TOKEN_HELP,
          },
        },
      },
      security: [{ bearerAuth: [] }],
    },
    transform: openApiTransform(),
    transformObject: createJsonSchemaTransformObject({ schemaRegistry: openApiComponents }),
  });
  app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  app.register(opsRoutes, { health: deps.health, metrics: deps.metrics, access: operationalAccess(deps.config.auth.jwtSecret, deps.config.metrics.token) });
  app.register(asyncApiRoutes);
  // Public like /health: journey planners poll GBFS without an account (docs/gbfs.md).
  if (deps.gbfs) app.register(gbfsRoutes, { prefix: '/gbfs', gbfs: deps.gbfs });

  const idempotency = new IdempotencyGuard(deps.idempotency);
  // One count for both kinds of live stream: a token or an address holds so many, whichever kind.
  const streamLimits = new StreamLimits(deps.config.streams);
  app.register(async (authenticated) => {
    installAuth(authenticated as unknown as FastifyInstance, deps.config.auth.jwtSecret);
    authenticated.addHook('onRequest', authenticated.limitPerCustomer);
    await authenticated.register(vehicleRoutes, { prefix: '/vehicles', fleet: deps.fleet, devices: deps.devices, ...(deps.vehicleCommands && { commands: deps.vehicleCommands }) });
    await authenticated.register(bookingRoutes, { prefix: '/bookings', fleet: deps.fleet, idempotency, ...(deps.customerBookings && { list: deps.customerBookings }) });
    await authenticated.register(unlockRoutes, { prefix: '/unlock', fleet: deps.fleet });
    if (deps.operatingArea) await authenticated.register(operatingAreaRoutes, { prefix: '/operating-area', area: deps.operatingArea });
    if (deps.events) await authenticated.register(eventRoutes, { prefix: '/events', events: deps.events, streamLimits });
    if (deps.traces) await authenticated.register(traceRoutes, { prefix: '/traces', traces: deps.traces, linkSecret: deps.config.auth.jwtSecret, publicBaseUrl: () => deps.config.http.publicBaseUrl ?? listeningUrl(base) });
  });
  // Outside the bearer scope: the viewer accepts an operator token or a viewer link (api/viewer/access.ts).
  if (deps.traces) app.register(viewerRoutes, { prefix: '/traces', traces: deps.traces, secret: deps.config.auth.jwtSecret, kafka: deps.config.kafka?.mode === 'kafka', streamLimits });

  return base;
}
