import { expect } from 'vitest';
import type { Decision } from '../../actors/shared/decision.js';
import type { Rejection } from '../../actors/contract/rejections.js';

/**
 * Given / when / then for a pure decider, after Emmett's `DeciderSpecification`: no database, no
 * timers. `given(events)` folds past events through `evolve`; `when(command)` runs `decide` once;
 * the `then…` methods assert the decision and return the state after it, for follow-up checks.
 *
 *   const spec = specification({ decide, evolve, initialState: () => initialVehicleState });
 *   spec.given([registered, reserved('b-1')]).when(reserve('b-1')).thenNothing();
 *
 * Every `when` also checks that `decide` left the given state untouched: the shell hands the live
 * actor state to it, so a decider that mutates would corrupt state without persisting anything.
 */
export interface Decider<Command, Event, State> {
  readonly decide: (command: Command, state: State) => Decision<Event>;
  readonly evolve: (state: State, event: Event) => State;
  readonly initialState: () => State;
}

export interface Then<Event, State> {
  /** `decide` emitted exactly these events, in this order; returns the state after them. */
  then(expected: readonly Event[]): State;
  /** `decide` refused with exactly this rejection; returns the (unchanged) state. */
  thenRejects(expected: Rejection): State;
  /** `decide` accepted and emitted no event (an idempotent retry, a late or foreign answer). */
  thenNothing(): State;
}

export interface Given<Command, Event, State> {
  when(command: Command): Then<Event, State>;
  /** The state the given events fold into, for assertions on `evolve` alone. */
  readonly state: State;
}

export interface Specification<Command, Event, State> {
  given(events: readonly Event[]): Given<Command, Event, State>;
}

export function specification<Command, Event, State>(decider: Decider<Command, Event, State>): Specification<Command, Event, State> {
  const fold = (events: readonly Event[]): State => events.reduce(decider.evolve, decider.initialState());

  return {
    given(events) {
      const state = fold(events);
      return {
        state,
        when(command) {
          const before = structuredClone(state);
          const decision = decider.decide(command, state);
          expect(state, 'decide must not mutate the state it is given').toEqual(before);
          const after = (emitted: readonly Event[]): State => emitted.reduce(decider.evolve, state);
          return {
            then(expected) {
              expect(decision).toEqual({ ok: true, events: expected });
              return after(expected);
            },
            thenRejects(expected) {
              expect(decision).toEqual({ ok: false, rejection: expected });
              return state;
            },
            thenNothing() {
              expect(decision).toEqual({ ok: true, events: [] });
              return state;
            },
          };
        },
      };
    },
  };
}
