import { describe, expect, it } from 'vitest';
import { TraceRecorder, type StateDescriber } from '../../runtime/kernel/delivery-trace.js';
import type { Envelope } from '../../runtime/kernel/envelope.js';
import type { TraceStep } from '../../runtime/kernel/trace-step.js';

const message = (type: string): Envelope => ({ type, payload: { type }, traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), parentSpanId: null, from: 'http', sentAt: 0 });

describe('the trace recorder', () => {
  it('describes each state once: a state after is the next delivery\'s state before, and a read leaves it as it was', () => {
    const steps: TraceStep[] = [];
    const recorder = new TraceRecorder({ record: (step) => steps.push(step) }, 1);
    const described: unknown[] = [];
    const describer: StateDescriber = {
      describe: (state) => {
        described.push(state);
        return { ...(state as object), described: true };
      },
    };
    const fresh = { status: 'NEW' };
    const confirmed = { status: 'CONFIRMED' };
    const create = recorder.started(message('CreateBooking'), describer, fresh);
    recorder.finished(create, { actor: 'booking/b-1', outcome: { ok: true }, state: confirmed, failed: false });
    const read = recorder.started(message('GetBooking'), describer, confirmed);
    recorder.finished(read, { actor: 'booking/b-1', outcome: { ok: true }, state: confirmed, failed: false });

    expect(described).toEqual([fresh, confirmed]);
    expect(steps.map((step) => [step.stateBefore, step.stateAfter])).toEqual([
      [{ status: 'NEW', described: true }, { status: 'CONFIRMED', described: true }],
      [{ status: 'CONFIRMED', described: true }, { status: 'CONFIRMED', described: true }],
    ]);
    // One object, so the trace store serialises it once.
    expect(steps[1]!.stateBefore).toBe(steps[0]!.stateAfter);
    expect(steps[1]!.stateAfter).toBe(steps[1]!.stateBefore);
  });

  it('describes a state again once it has left the recent ones (bounded memory)', () => {
    const recorder = new TraceRecorder({ record: () => undefined }, 1);
    let calls = 0;
    const describer: StateDescriber = { describe: (state) => ((calls += 1), state) };
    const first = { n: 0 };
    recorder.finished(recorder.started(message('M'), describer, first), { actor: 'a/1', outcome: undefined, state: first, failed: false });
    expect(calls).toBe(1);
    for (let n = 1; n <= 2000; n += 1) {
      const state = { n };
      recorder.finished(recorder.started(message('M'), describer, state), { actor: `a/${n}`, outcome: undefined, state, failed: false });
    }
    const before = calls;
    recorder.finished(recorder.started(message('M'), describer, first), { actor: 'a/1', outcome: undefined, state: first, failed: false });
    expect(calls).toBe(before + 1);
  });
});
