import fc from 'fast-check';
import { z } from 'zod';

/**
 * fast-check arbitraries drawn from the API's zod schemas, through zod's own JSON Schema of the input
 * side (`z.toJSONSchema(schema, { io: 'input' })`): the same document OpenAPI is built from, so what is
 * fuzzed is what is published. Covers the keywords api/schemas.ts uses (object, string with pattern
 * and lengths, number and integer with bounds, enum); anything else falls back to any JSON value.
 */

interface JsonSchema {
  readonly type?: string;
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly required?: readonly string[];
  readonly enum?: readonly unknown[];
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
}

export const jsonSchemaOf = (schema: z.ZodType): JsonSchema => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;

/** Values the schema accepts. */
export function validValue(schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  switch (schema.type) {
    case 'object': {
      const properties = schema.properties ?? {};
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, property] of Object.entries(properties)) record[name] = validValue(property);
      return fc.record(record, { requiredKeys: [...(schema.required ?? [])] });
    }
    case 'string': {
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern));
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: schema.maxLength ?? 64 });
    }
    case 'integer':
      return fc.integer({
        min: schema.minimum ?? (schema.exclusiveMinimum === undefined ? -1e9 : Math.floor(schema.exclusiveMinimum) + 1),
        max: schema.maximum ?? (schema.exclusiveMaximum === undefined ? 1e9 : Math.ceil(schema.exclusiveMaximum) - 1),
      });
    case 'number':
      return fc.double({
        min: schema.minimum ?? schema.exclusiveMinimum ?? -1e9,
        max: schema.maximum ?? schema.exclusiveMaximum ?? 1e9,
        minExcluded: schema.minimum === undefined && schema.exclusiveMinimum !== undefined,
        maxExcluded: schema.maximum === undefined && schema.exclusiveMaximum !== undefined,
        noNaN: true,
      });
    case 'boolean':
      return fc.boolean();
    default:
      return fc.jsonValue();
  }
}

/** A value of another JSON type than the schema's (a number for a string, an array for an object, …). */
export function typeConfused(schema: JsonSchema): fc.Arbitrary<unknown> {
  const others: fc.Arbitrary<unknown>[] = [];
  if (schema.type !== 'string') others.push(fc.string({ maxLength: 20 }));
  if (schema.type !== 'number' && schema.type !== 'integer') others.push(fc.oneof(fc.integer(), fc.double(), fc.constant(1e308)));
  if (schema.type !== 'object') others.push(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }));
  others.push(fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }), fc.boolean(), fc.constant(null));
  return fc.oneof(...others);
}

/**
 * A valid object with one thing wrong: a field of another type, a required field missing, an unknown
 * field, or a field's value replaced by any JSON at all.
 */
export function mutatedObject(schema: JsonSchema): fc.Arbitrary<unknown> {
  const properties = Object.entries(schema.properties ?? {});
  const valid = validValue(schema) as fc.Arbitrary<Record<string, unknown>>;
  if (properties.length === 0) return fc.tuple(valid, fc.string({ minLength: 1, maxLength: 10 }), fc.jsonValue()).map(([value, name, extra]) => ({ ...value, [name]: extra }));
  const pick = fc.constantFrom(...properties);
  return fc.oneof(
    fc.tuple(valid, pick).chain(([value, [name, property]]) => typeConfused(property).map((wrong) => ({ ...value, [name]: wrong }))),
    fc.tuple(valid, pick).map(([value, [name]]) => {
      const copy = { ...value };
      delete copy[name];
      return copy;
    }),
    fc.tuple(valid, fc.string({ minLength: 1, maxLength: 10 }), fc.jsonValue({ maxDepth: 2 })).map(([value, name, extra]) => ({ ...value, [name]: extra })),
    fc.tuple(valid, pick, fc.jsonValue({ maxDepth: 3 })).map(([value, [name], any]) => ({ ...value, [name]: any })),
  );
}
