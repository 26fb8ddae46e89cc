import type { ActorContext, Message } from '../../runtime/kernel/directory.js';
import type { Decision } from './decision.js';

/** The shells' one step between deciding and reacting: make the decided events durable (one commit). */
export async function persistDecided<State, Event extends Message>(ctx: ActorContext<State, Event>, decision: Decision<Event>): Promise<Decision<Event>> {
  if (decision.ok && decision.events.length > 0) await ctx.persist(...decision.events);
  return decision;
}
