import type { FastifyPluginAsync } from 'fastify';
// Imported, not read from disk: tsc copies the document into dist/ with the code, so `npm start` and
// the tests serve the same file from wherever they run.
import asyncApiDocument from '../../docs/asyncapi.json' with { type: 'json' };

/**
 * `GET /asyncapi.json`: the AsyncAPI 3 description of the MQTT and Kafka topics (docs/asyncapi.json),
 * public like /openapi.json. test/unit/asyncapi.test.ts keeps the document true to the code.
 */
export const asyncApiRoutes: FastifyPluginAsync = async (app) => {
  app.get('/asyncapi.json', { schema: { hide: true } }, async () => asyncApiDocument);
};
