import { newVehicleId } from '../idempotency.js';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FleetService } from '../fleet-service.js';
import { sendRejection } from '../problems.js';
import {
  DEFAULT_RADIUS_M,
  ItemsSchema,
  ListVehiclesQuerySchema,
  RegisterVehicleBodySchema,
  VehicleParamsSchema,
  VehicleSchema,
  problemResponses,
} from '../schemas.js';

export interface VehicleRoutesOptions {
  readonly fleet: FleetService;
}

const TAGS = ['vehicles'];


/** /vehicles: operators register vehicles; everyone signed in finds and reads them (read model, no actor). */
export const vehicleRoutes: FastifyPluginAsyncZod<VehicleRoutesOptions> = async (app, { fleet }) => {
  app.post(
    '',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: TAGS,
        summary: 'Register a vehicle (operators)',
        body: RegisterVehicleBodySchema,
        response: {
          201: VehicleSchema,
          ...problemResponses({ 400: 'Invalid vehicle', 401: 'Not signed in', 403: 'Not an operator', 409: 'The id is already taken' }),
        },
      },
    },
    async (request, reply) => {
      const { id, type, model, location } = request.body;
      const outcome = await fleet.registerVehicle({ id: id ?? newVehicleId(), type, model: model ?? null, location }, request.trace);
      if (!outcome.ok) return sendRejection(request, reply, outcome.rejection);
      return reply.code(201).header('location', `/vehicles/${encodeURIComponent(outcome.value.id)}`).send(outcome.value);
    },
  );

  app.get(
    '',
    {
      schema: {
        tags: TAGS,
        summary: 'Find vehicles by status, type and distance',
        querystring: ListVehiclesQuerySchema,
        response: { 200: ItemsSchema(VehicleSchema), ...problemResponses({ 400: 'Invalid filter', 401: 'Not signed in' }) },
      },
    },
    async (request) => {
      const { status, type, near, radiusM, limit } = request.query;
      const items = await fleet.listVehicles({
        limit,
        ...(status && { status }),
        ...(type && { type }),
        ...(near && { near, radiusM: radiusM ?? DEFAULT_RADIUS_M }),
      });
      return { items };
    },
  );

  app.get(
    '/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Read one vehicle',
        params: VehicleParamsSchema,
        response: { 200: VehicleSchema, ...problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 404: 'No such vehicle' }) },
      },
    },
    async (request, reply) => {
      const vehicle = await fleet.getVehicle(request.params.id);
      if (!vehicle) return sendRejection(request, reply, { type: 'VehicleNotFound', vehicleId: request.params.id });
      return vehicle;
    },
  );
};
