import { newVehicleId } from '../idempotency.js';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { DeviceAccess, FleetService } from '../../actors/contract/views.js';
import type { VehicleCommandsPort } from '../ports.js';
import { sendRejection } from '../problems.js';
import {
  ClearedPresenceSchema,
  DEFAULT_RADIUS_M,
  ItemsSchema,
  ListVehiclesQuerySchema,
  RegisterVehicleBodySchema,
  RegisteredVehicleSchema,
  RotatedCredentialsSchema,
  VehicleCommandsQuerySchema,
  VehicleCommandsSchema,
  VehicleParamsSchema,
  VehicleSchema,
  problemResponses,
} from '../schemas.js';

export interface VehicleRoutesOptions {
  readonly fleet: FleetService;
  readonly devices: DeviceAccess;
  /** GET /vehicles/:id/commands is served only when given. */
  readonly commands?: VehicleCommandsPort;
}

const TAGS = ['vehicles'];

/** /vehicles: operators register vehicles; everyone signed in finds and reads them (read model, no actor). */
export const vehicleRoutes: FastifyPluginAsyncZod<VehicleRoutesOptions> = async (app, { fleet, devices, commands }) => {
  app.post(
    '',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: TAGS,
        summary: 'Register a vehicle (operators); the answer holds its MQTT credentials, shown only this once',
        body: RegisterVehicleBodySchema,
        response: {
          201: RegisteredVehicleSchema,
          ...problemResponses({ 400: 'Invalid vehicle', 401: 'Not signed in', 403: 'Not an operator', 409: 'The id is already taken' }),
        },
      },
    },
    async (request, reply) => {
      const { id, type, model, location } = request.body;
      const outcome = await fleet.registerVehicle({ id: id ?? newVehicleId(), type, model: model ?? null, location }, request.trace);
      if (!outcome.ok) return sendRejection(request, reply, outcome.rejection);
      const credentials = await devices.issueCredentials(outcome.value.id);
      return reply.code(201).header('location', `/vehicles/${encodeURIComponent(outcome.value.id)}`).send({ ...outcome.value, credentials });
    },
  );

  app.post(
    '/:id/credentials',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: TAGS,
        summary: 'Rotate a vehicle\'s MQTT credentials (operators): the old password stops working and its open sessions are closed',
        params: VehicleParamsSchema,
        response: {
          200: RotatedCredentialsSchema,
          ...problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 403: 'Not an operator', 404: 'No such vehicle' }),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!(await fleet.getVehicle(id))) return sendRejection(request, reply, { type: 'VehicleNotFound', vehicleId: id });
      return { vehicleId: id, credentials: await devices.rotateCredentials(id) };
    },
  );

  app.delete(
    '/:id/presence',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: TAGS,
        summary: 'Clear a vehicle\'s presence (operators): its retained status is removed and `online` becomes null until it reports again',
        params: VehicleParamsSchema,
        response: {
          202: ClearedPresenceSchema,
          ...problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 403: 'Not an operator', 404: 'No such vehicle' }),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!(await fleet.getVehicle(id))) return sendRejection(request, reply, { type: 'VehicleNotFound', vehicleId: id });
      await devices.clearPresence(id);
      return reply.code(202).send({ vehicleId: id, online: null });
    },
  );

  app.get(
    '',
    {
      schema: {
        tags: TAGS,
        summary: 'Find vehicles by status, type and distance; a customer sees only vehicles they may book and their own ride',
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
        ...(request.caller.role === 'customer' && { visibleTo: request.caller.id }),
      });
      return { items };
    },
  );

  app.get(
    '/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Read one vehicle; a customer sees it only while they may book it or ride it (else 404)',
        params: VehicleParamsSchema,
        response: { 200: VehicleSchema, ...problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 404: 'No such vehicle' }) },
      },
    },
    async (request, reply) => {
      const vehicle = await fleet.getVehicle(request.params.id, request.caller.role === 'customer' ? request.caller.id : undefined);
      if (!vehicle) return sendRejection(request, reply, { type: 'VehicleNotFound', vehicleId: request.params.id });
      return vehicle;
    },
  );

  if (commands) {
    app.get(
      '/:id/commands',
      {
        config: { roles: ['operator'] },
        schema: {
          tags: TAGS,
          summary: 'Why did the car not open? The vehicle\'s recent UNLOCK / LOCK commands with their states, who asked and the round trip (operators)',
          params: VehicleParamsSchema,
          querystring: VehicleCommandsQuerySchema,
          response: {
            200: VehicleCommandsSchema,
            ...problemResponses({ 400: 'Invalid id or limit', 401: 'Not signed in', 403: 'Not an operator', 404: 'No such vehicle' }),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const items = await commands.recent(id, request.query.limit);
        if (!items) return sendRejection(request, reply, { type: 'VehicleNotFound', vehicleId: id });
        return { vehicleId: id, items };
      },
    );
  }
};
