import { reject, type Outcome } from '../actors/contract/rejections.js';
import { noAnswer } from '../actors/shared/no-answer.js';
import type { OperatingArea } from '../actors/contract/operating-area.js';
import { VEHICLE } from '../actors/vehicle/actor.js';
import type { ActorDirectory } from '../runtime/kernel/directory.js';
import type { AskCall, FleetExchange, SeedVehicle, ShardCall, ShardStats } from './shard-calls.js';
import { dispatchRead, type ReadHandlers } from './shard-read-dispatch.js';

/**
 * A shard's answers to the calls of the main thread (server/shard-calls.ts): one handler per `op`,
 * each typed with its own answer. `ask` is the booking hot path: it goes straight to the directory.
 */

/** What the calls reach: the shard's directory and reads, and what the shard does as a whole. */
export interface ShardCallTargets {
  readonly directory: ActorDirectory;
  /** Whether a vehicle is placed on this shard (runtime/kernel/placement.ts). */
  readonly ownsVehicle: (vehicleId: string) => boolean;
  /** A booking the shard has never heard of: answered 404 without activating an actor. */
  readonly isUnknownBooking?: (target: AskCall['target'], message: AskCall['message']) => boolean;
  readonly reads: ReadHandlers;
  seed(vehicles: readonly SeedVehicle[]): Promise<{ registered: number }>;
  stats(): ShardStats;
  /** An operator replaced the operating area (PUT /operating-area). */
  replaceOperatingArea(area: OperatingArea | null): void;
  stop(): Promise<void>;
}

type Op = ShardCall['op'];
type CallRequests = { readonly [O in Op]: Extract<ShardCall, { readonly op: O }> };
type CallAnswers = { readonly [O in Op]: Extract<FleetExchange, { readonly call: { readonly op: O } }>['answer'] };

/** Each handler is async: a failure is a rejected answer (the caller hears it), never a throw at the port. */
export type CallHandlers = { readonly [O in Op]: (call: CallRequests[O]) => Promise<CallAnswers[O]> };

export function shardCallHandlers(targets: ShardCallTargets): CallHandlers {
  return {
    ask: (call) => askActor(targets, call),
    read: async (call) => dispatchRead(targets.reads, call.read),
    seed: (call) => targets.seed(call.vehicles),
    stats: async () => targets.stats(),
    'operating-area': async (call) => {
      targets.replaceOperatingArea(call.area);
      return null;
    },
    stop: async () => {
      await targets.stop();
      return null;
    },
  };
}

/** Hands a call to its handler. */
export const dispatchCall = (handlers: CallHandlers, call: ShardCall): Promise<FleetExchange['answer']> => callWith(handlers, call.op, call);

// `op` and `call` apart, so that TypeScript sees that the handler and the call belong together.
function callWith<O extends Op>(handlers: CallHandlers, op: O, call: CallRequests[O]): Promise<CallAnswers[O]> {
  return handlers[op](call);
}

/** An actor's answer (an Outcome), or the rejection that says why there was none. */
async function askActor({ directory, ownsVehicle, isUnknownBooking }: ShardCallTargets, call: AskCall): Promise<Outcome<unknown>> {
  // Placement is the main thread's job; a vehicle that is not ours does not exist here.
  if (call.target.kind === VEHICLE && !ownsVehicle(call.target.id)) return reject({ type: 'VehicleNotFound', vehicleId: call.target.id });
  if (isUnknownBooking?.(call.target, call.message)) return reject({ type: 'BookingNotFound', bookingId: call.target.id });
  try {
    // The actors answer every ask with an Outcome (actors/contract/rejections.ts).
    return await directory.ask<Outcome<unknown>>(call.target, call.message, call.from, call.trace, call.timeoutMs);
  } catch (error) {
    const rejection = noAnswer(error);
    if (rejection) return reject(rejection);
    throw error;
  }
}
