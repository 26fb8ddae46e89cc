import type { Rejection } from '../contract/rejections.js';

/** What a pure `decide` returns: the events to persist (maybe none), or why the command is refused. */
export type Decision<Event> =
  | { readonly ok: true; readonly events: readonly Event[] }
  | { readonly ok: false; readonly rejection: Rejection };

export const emit = <Event>(...events: Event[]): Decision<Event> => ({ ok: true, events });
export const refuse = <Event = never>(rejection: Rejection): Decision<Event> => ({ ok: false, rejection });

/** Exhaustiveness guard for `switch (x.type)`: adding a variant breaks the build where it is unhandled. */
export function unreachable(value: never): never {
  throw new Error(`unhandled variant ${JSON.stringify(value)}`);
}
