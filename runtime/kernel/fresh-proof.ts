import { PersistenceFailure } from './actor-errors.js';

/**
 * An activation taken for new (DirectoryOptions.startsFresh) met an actor with a journal: its first
 * event collided with an existing one, or its first message persisted nothing, so it was never proven
 * new. It is stopped before it answers or does anything; the message goes to an activation that reads.
 */
export class NotNewAfterAll extends Error {
  override readonly name = 'NotNewAfterAll';
  constructor(readonly actor: string, readonly messageType: string, options?: { cause?: unknown }) {
    super(`${actor} is not new (${messageType})`, options);
  }
}

/**
 * The proof that an activation which took its actor for new, without reading the journal, was right.
 * Its first committed event proves it (the journal refuses a sequence number that exists). Until
 * then it handles its first message only: a second one would be answered from a state never proven.
 */
export class FreshProof {
  private unproven: boolean;
  private handledOne = false;

  constructor(fresh: boolean) {
    this.unproven = fresh;
  }

  /** Before each message: throws NotNewAfterAll for a second message while unproven. */
  admit(actor: string, messageType: string): void {
    if (this.unproven && this.handledOne) throw new NotNewAfterAll(actor, messageType);
    this.handledOne = true;
  }

  /** Still taken for new without proof: what it would answer now is held until its first event commits. */
  get pending(): boolean {
    return this.unproven;
  }

  /** An event was committed: the actor was new. */
  proven(): void {
    this.unproven = false;
  }

  /**
   * Whether the handler's `error` shows the actor was not new after all (or never proven new): then
   * nothing was answered or done, and the message is for an activation that reads the journal.
   */
  refutedBy(error: unknown, actor: string, messageType: string): NotNewAfterAll | null {
    if (!this.unproven) return null;
    if (error instanceof NotNewAfterAll) return error;
    if (error instanceof PersistenceFailure && isDuplicateSequence(error.cause)) return new NotNewAfterAll(actor, messageType, { cause: error });
    return null;
  }
}

/** The journal's own code for a (persistence key, sequence number) that is taken (persistence/journal-engine.ts). */
const isDuplicateSequence = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === 'duplicate-sequence-number';
