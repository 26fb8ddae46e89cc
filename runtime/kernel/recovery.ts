import { dispatch } from 'nact';
import type { Logger } from '../ground/logger.js';
import { ActorFailed } from './actor-errors.js';
import type { ActorAddress } from './behaviour.js';
import { isDelivery, type Delivery } from './delivery.js';
import { NotNewAfterAll } from './fresh-proof.js';

/**
 * What becomes of an activation's messages when it crashes (nact's `onCrash`): the activation is
 * always stopped; its message and those queued behind it go to a next activation or are answered.
 */

/** What nact hands `onCrash` of the crashed actor's mailbox. */
export interface Supervision {
  readonly mailbox: Array<{ message: Delivery }>;
  readonly stop: symbol;
}

export interface CrashedActor {
  readonly address: ActorAddress;
  readonly name: string;
  logger(): Logger;
}

/** Decides for a crash; returns nact's `stop`. `redeliver` sends a delivery to the actor's next activation. */
export function recoverFromCrash(
  actor: CrashedActor,
  message: unknown,
  error: unknown,
  supervision: Supervision,
  redeliver: (address: ActorAddress, delivery: Delivery) => void,
): symbol {
  const { address, name } = actor;
  if (error instanceof NotNewAfterAll && isDelivery(message)) {
    actor.logger().debug({ message: message.envelope.type }, 'actor taken for new has a journal: recovering it');
    setImmediate(() => {
      for (const queued of [message, ...supervision.mailbox.map((entry) => entry.message)]) redeliver(address, queued);
    });
  } else if (isDelivery(message)) {
    // The journal refused a write: stop this activation so that the next message recovers the
    // actor from what really is durable. Messages still queued go to that next activation.
    actor.logger().error({ err: error }, 'actor stopped after a persistence failure; queued messages go to its next activation');
    setImmediate(() => {
      for (const { message: queued } of supervision.mailbox) redeliver(address, queued);
    });
  } else {
    // Recovery itself failed (an event `evolve` cannot apply, a corrupt row): a new activation
    // would fail the same way, so the queued messages are answered, not sent round again.
    actor.logger().error({ err: error }, 'actor could not be recovered from its journal; queued messages fail');
    for (const { message: queued } of supervision.mailbox) {
      if (queued.replyTo) dispatch(queued.replyTo, new ActorFailed(name, queued.envelope.type));
    }
  }
  return supervision.stop;
}
