import { randomBytes } from 'node:crypto';

/**
 * Every message between actors travels in an envelope (docs/architecture.md, "Messages and traces").
 * Ids follow W3C trace context sizes so that `traceparent` can be derived without a mapping.
 */
export interface Envelope<Payload extends { readonly type: string } = { readonly type: string }> {
  readonly type: Payload['type'];
  readonly payload: Payload;
  /** 32 lowercase hex chars. One HTTP request starts one trace. */
  readonly traceId: string;
  /** 16 lowercase hex chars, this hop. */
  readonly spanId: string;
  readonly parentSpanId: string | null;
  /** Who sent it: `http`, `vehicle/v-1`, `booking/b-1`, `mqtt`, `timer`. */
  readonly from: string;
  /** Epoch milliseconds. */
  readonly sentAt: number;
}

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

export function envelope<Payload extends { readonly type: string }>(
  payload: Payload,
  from: string,
  parent: TraceContext,
  now: number = Date.now(),
): Envelope<Payload> {
  return {
    type: payload.type,
    payload,
    traceId: parent.traceId,
    spanId: newSpanId(),
    parentSpanId: parent.spanId,
    from,
    sentAt: now,
  };
}

/** W3C traceparent header value for a span (sampled). */
export const traceparent = (context: TraceContext): string => `00-${context.traceId}-${context.spanId}-01`;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** Continues a caller's trace when it sent a valid `traceparent`; otherwise starts a new one. */
export function contextFromTraceparent(header: string | undefined): TraceContext {
  const match = header ? TRACEPARENT.exec(header) : null;
  return match ? { traceId: match[1]!, spanId: match[2]! } : rootContext();
}
