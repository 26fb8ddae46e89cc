import { newSpanId, type TraceContext } from '../ground/trace-context.js';

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

