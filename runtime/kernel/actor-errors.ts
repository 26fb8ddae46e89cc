/** The failures a caller of the directory can meet, as classes it can tell apart (actors/shared/no-answer.ts names them). */

export class AskTimeoutError extends Error {
  override readonly name = 'AskTimeoutError';
  constructor(readonly actor: string, readonly timeoutMs: number) {
    super(`${actor} did not answer within ${timeoutMs} ms`);
  }
}

/** What an asker receives when the actor's handler threw instead of answering. */
export class ActorFailed extends Error {
  override readonly name = 'ActorFailed';
  constructor(
    readonly actor: string,
    readonly messageType: string,
    /** Its journal refused the write for lack of space: the caller can say so instead of "no answer". */
    readonly storageFull = false,
  ) {
    super(`${actor} failed while handling ${messageType}`);
  }
}

/** The journal refused an event: the activation is stopped and the actor recovers on its next message. */
export class PersistenceFailure extends Error {
  override readonly name = 'PersistenceFailure';
}
