import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { OperatingAreaPort } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';
import { AreaViolationSchema, AreaViolationsQuerySchema, ItemsSchema, problemResponses } from '../schemas.js';

export interface OperatingAreaRoutesOptions {
  readonly area: OperatingAreaPort;
}

/**
 * PUT /operating-area (operators): replaces the zones where rides may start and end; GET
 * /operating-area/violations: what riders did against the area during their rides (docs/gbfs.md).
 */
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
          200: z.object({
            zones: z.number().int(),
            notReached: z.array(z.string()).optional().describe('cluster mode: nodes that did not take it (down); they keep their area until the PUT is repeated'),
          }),
          ...problemResponses({ 400: 'Not a valid operating area', 401: 'Not signed in', 403: 'Not an operator', 409: 'FLEET_OPERATING_AREA is not set' }),
        },
      },
    },
    async (request, reply) => {
      const replaced = await area.replace(request.body);
      if (replaced.ok) return { zones: replaced.zones, ...(replaced.notReached && { notReached: [...replaced.notReached] }) };
      if (replaced.reason === 'not-configured') {
        return sendProblem(reply, httpProblem('operating-area-not-configured', 'Start the server with FLEET_OPERATING_AREA naming the file the operating area is kept in.', originOf(request)));
      }
      return sendProblem(reply, httpProblem('invalid-operating-area', replaced.errors.join('; '), originOf(request), { errors: replaced.errors }));
    },
  );

  app.get(
    '/violations',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: ['gbfs'],
        summary: 'Operating-area violations during rides (operators): a ride through a zone without ride-through for its type, or above the zone\'s maximum_speed_kph',
        description:
          'Judged on the telemetry of vehicles on a ride (IN_USE), at the rule `ruleAt` finds for the vehicle type at the reading\'s position. One item per episode: consecutive readings of a ride breaking the same rule in the same zone. Recorded only: no command goes to the device (it limits its own speed; a LOCK would stop a moving vehicle). Counted in /metrics as fleet_operating_area_violations_total.',
        querystring: AreaViolationsQuerySchema,
        response: { 200: ItemsSchema(AreaViolationSchema), ...problemResponses({ 400: 'Invalid filter', 401: 'Not signed in', 403: 'Not an operator' }) },
      },
    },
    async (request) => {
      const { limit, since, vehicleId, bookingId } = request.query;
      const items = await area.violations({ limit, since: since === undefined ? null : Date.parse(since), vehicleId: vehicleId ?? null, bookingId: bookingId ?? null });
      return { items };
    },
  );
};
