import type { ActorContext, Message } from '../../runtime/kernel/directory.js';
import type { Rejection } from './rejections.js';

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

/** The shells' one step between deciding and reacting: make the decided events durable (one commit). */
export async function persistDecided<State, Event extends Message>(ctx: ActorContext<State, Event>, decision: Decision<Event>): Promise<Decision<Event>> {
  if (decision.ok && decision.events.length > 0) await ctx.persist(...decision.events);
  return decision;
}
