import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from '../runtime/ground/logger.js';
import type { Metrics } from '../runtime/ground/metrics.js';
import type { HealthReport } from './ports.js';
import { rateLimits } from './rate-limits.js';
import { opsRoutes } from './routes/ops.js';
import { socketTimeouts, type ApiSettings } from './app.js';

export interface OpsAppDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly health: () => HealthReport | Promise<HealthReport>;
  readonly config: Pick<ApiSettings, 'http' | 'rateLimits'>;
}

/**
 * The separate operational listener (METRICS_PORT, Prometheus-style): /metrics and the detailed
 * /health with no token, for a port bound where only the scraper and the operators reach (METRICS_HOST,
 * loopback by default). Still limited per address, and a render serves a second of scrapes.
 */
export function buildOpsApp(deps: OpsAppDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'metrics-listener' }),
    logController: new LogController({ disableRequestLogging: true }),
    ...socketTimeouts(deps.config.http),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.register(rateLimits, { limits: { perIp: deps.config.rateLimits.perIp, perCustomer: 0 } });
  app.register(opsRoutes, { health: deps.health, metrics: deps.metrics, access: () => true, openApi: false });
  return app as unknown as FastifyInstance;
}
