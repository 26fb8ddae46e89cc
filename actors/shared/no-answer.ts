import { ActorFailed, AskTimeoutError } from '../../runtime/kernel/directory.js';
import type { Rejection } from '../contract/rejections.js';

/**
 * The rejection for an ask that got no answer (timed out, or the actor's handler threw); null for any
 * other error, which is a bug and stays thrown.
 */
export function noAnswer(error: unknown): Rejection | null {
  if (error instanceof AskTimeoutError) return { type: 'ActorUnavailable', actor: error.actor, timeoutMs: error.timeoutMs };
  if (error instanceof ActorFailed) return error.storageFull ? { type: 'StorageFull', actor: error.actor } : { type: 'ActorUnavailable', actor: error.actor, timeoutMs: 0 };
  return null;
}
