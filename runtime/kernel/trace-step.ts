/** What the directory records of every delivery (a trace step); the trace store keeps them, the trace tools draw them. */

/**
 * One delivery of a message to an actor (a row of trace_steps). A type, not an interface, so that it
 * is a plain record to those who read it as one (the API's TraceView).
 */
export type TraceStep = {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  /** `http`, `vehicle/v-1`, `booking/b-1`, `mqtt`, `timer`. */
  readonly fromActor: string;
  readonly toActor: string;
  readonly messageType: string;
  /**
   * JSON-serialisable (undefined is stored as NULL); serialised when the buffer is written, so it
   * must not be mutated after record().
   */
  readonly payload: unknown;
  readonly stateBefore: unknown;
  readonly stateAfter: unknown;
  /** What the delivery produced (the reply, a rejection, `{ error }`); JSON like the payload. */
  readonly outcome: unknown;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  readonly durationUs: number;
};

export type StoredTraceStep = TraceStep & {
  /** Insertion order across the whole store. */
  readonly id: number;
};
