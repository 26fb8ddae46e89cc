import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../../runtime/ground/metrics.js';
import type { HealthReport } from '../ports.js';

export interface OpsRoutesOptions {
  readonly health: () => HealthReport | Promise<HealthReport>;
  readonly metrics: Metrics;
}

const HealthSchema = z.object({
  status: z.enum(['ok', 'down']),
  checks: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string().optional() })),
});

/** Public operational endpoints: no token, so load balancers and Prometheus can call them. */
export const opsRoutes: FastifyPluginAsyncZod<OpsRoutesOptions> = async (app, { health, metrics }) => {
  app.get(
    '/health',
    {
      schema: {
        tags: ['ops'],
        summary: 'Ready to serve: 200 when every dependency works, 503 naming the one that does not',
        security: [],
        response: { 200: HealthSchema, 503: HealthSchema },
      },
    },
    async (_request, reply) => {
      const report = await health();
      const down = Object.values(report.checks).some((check) => !check.ok);
      return reply.code(down ? 503 : 200).send({ status: down ? 'down' : 'ok', checks: report.checks });
    },
  );

  app.get(
    '/metrics',
    { schema: { tags: ['ops'], summary: 'Prometheus metrics (text exposition format)', security: [] } },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};
