import type { FastifySchema } from 'fastify';
import { createJsonSchemaTransform } from 'fastify-type-provider-zod';
import { openApiComponents, problemResponses } from './schemas.js';

type SchemaTransform = ReturnType<typeof createJsonSchemaTransform>;

/**
 * The OpenAPI transform: fastify-type-provider-zod's (zod schemas → JSON Schema), after adding what
 * every route with a body answers although no handler says so: 415 `unsupported-media-type` for a body
 * that is not JSON (app.ts keeps only the JSON parser). Listed once here instead of in every route.
 */
export function openApiTransform(): SchemaTransform {
  const fromZod = createJsonSchemaTransform({ schemaRegistry: openApiComponents });
  return (document) => {
    const schema = document.schema as FastifySchema | undefined;
    if (!schema?.body) return fromZod(document);
    const response = { ...problemResponses({ 415: 'The body is not application/json' }), ...(schema.response as object | undefined) };
    return fromZod({ ...document, schema: { ...schema, response } } as typeof document);
  };
}
