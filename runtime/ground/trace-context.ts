import { randomBytes } from 'node:crypto';

/**
 * Trace context (W3C sizes): the ids every message, log line and Kafka record carries. Ground floor:
 * the HTTP edge, the kernel and the relay all speak it.
 */

export interface TraceContext {
  readonly traceId: string;
  readonly spanId: string;
}

// Ids come from a pre-filled random pool: one randomBytes call per 512 span ids instead of one per
// message (crypto's call overhead was 3 % of the server's CPU under the booking benchmark).
const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let offset = 0;

function randomHex(bytes: number): string {
  if (offset + bytes > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

/** Starts a new trace (an HTTP request, a timer firing, an MQTT message from a device). */
export function rootContext(): TraceContext {
  return { traceId: newTraceId(), spanId: newSpanId() };
}

/** W3C traceparent header value for a span (sampled). */
export const traceparent = (context: TraceContext): string => `00-${context.traceId}-${context.spanId}-01`;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** Continues a caller's trace when it sent a valid `traceparent`; otherwise starts a new one. */
export function contextFromTraceparent(header: string | undefined): TraceContext {
  const match = header ? TRACEPARENT.exec(header) : null;
  return match ? { traceId: match[1]!, spanId: match[2]! } : rootContext();
}
