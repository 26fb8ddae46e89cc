import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { OperatingAreaPort } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';
import { problemResponses } from '../schemas.js';

export interface OperatingAreaRoutesOptions {
  readonly area: OperatingAreaPort;
}

/** PUT /operating-area (operators): replaces the zones where rides may start and end (docs/gbfs.md). */
export const operatingAreaRoutes: FastifyPluginAsyncZod<OperatingAreaRoutesOptions> = async (app, { area }) => {
  app.put(
    '/',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: ['gbfs'],
        summary: 'Replace the operating area (operators): a GBFS 3.0 geofencing_zones `data` object — a FeatureCollection of MultiPolygon zones with `rules`, and `global_rules`',
        description:
          'Checked (shape, closed rings that do not cross themselves, positions on earth), saved to the FLEET_OPERATING_AREA file (durably), then in force on every shard and in /gbfs/geofencing_zones.json. 400 `invalid-operating-area` lists what is wrong; 409 `operating-area-not-configured` without FLEET_OPERATING_AREA.',
        body: z.record(z.string(), z.unknown()).meta({ description: 'GBFS 3.0 geofencing_zones data: {geofencing_zones: {type: "FeatureCollection", features: [...]}, global_rules: [...]}' }),
        response: {
          200: z.object({ zones: z.number().int() }),
          ...problemResponses({ 400: 'Not a valid operating area', 401: 'Not signed in', 403: 'Not an operator', 409: 'FLEET_OPERATING_AREA is not set' }),
        },
      },
    },
    async (request, reply) => {
      const replaced = await area.replace(request.body);
      if (replaced.ok) return { zones: replaced.zones };
      if (replaced.reason === 'not-configured') {
        return sendProblem(reply, httpProblem('operating-area-not-configured', 'Start the server with FLEET_OPERATING_AREA naming the file the operating area is kept in.', originOf(request)));
      }
      return sendProblem(reply, httpProblem('invalid-operating-area', replaced.errors.join('; '), originOf(request), { errors: replaced.errors }));
    },
  );
};
