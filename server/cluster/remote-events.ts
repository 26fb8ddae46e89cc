import type { FleetShardCaller, ShardEvent } from '../shard-calls.js';

/**
 * How long one ask for a followed shard's new events may wait at its owner for a commit (a long poll):
 * the owner answers as soon as something commits, so a live event crosses nodes in about one call.
 */
export const REMOTE_EVENTS_WAIT_MS = 10_000;
/** After a failed ask (the owner down or moving), or an owner that answered at once with nothing (one that does not wait), the next ask comes this much later. */
export const REMOTE_EVENTS_RETRY_MS = 500;
const PAGE = 500;
/** Beyond the wait: the deadline of one ask. */
const DEADLINE_MARGIN_MS = 5000;

type Call = FleetShardCaller['call'];

/**
 * Live events of a shard another node owns, while someone on this node follows GET /events: the owner
 * is asked for what committed after the last position seen, and holds the ask until something does
 * (`waitMs`, server/shard-read-dispatch.ts); what comes is pushed to the listeners as a worker pushes
 * its commits, and the next ask goes out at once. Following starts from the shard's position and then
 * tells the streams to re-read from their own cursors (`resync`), so nothing committed in between is
 * missed. An owner that does not answer is asked again after a pause, from the same position.
 */
export class RemoteEventFollower {
  /** Bumped by every follow(false): a loop of an earlier following stops at its next turn. */
  private generation = 0;
  private following = false;

  constructor(
    private readonly call: Call,
    private readonly push: (events: readonly ShardEvent[]) => void,
    private readonly resync: () => void,
    private readonly retryMs = REMOTE_EVENTS_RETRY_MS,
    private readonly waitMs = REMOTE_EVENTS_WAIT_MS,
  ) {}

  follow(on: boolean): void {
    if (on && !this.following) {
      this.following = true;
      void this.run(this.generation);
    } else if (!on && this.following) {
      this.following = false;
      this.generation += 1;
    }
  }

  private async run(generation: number): Promise<void> {
    const current = (): boolean => this.generation === generation;
    let last: number | null = null;
    while (current()) {
      const started = Date.now();
      try {
        if (last === null) {
          const stats = await this.call({ op: 'stats' }, DEADLINE_MARGIN_MS);
          if (!current()) return;
          last = stats.journal.position;
          this.resync();
          continue;
        }
        const page = await this.call({ op: 'read', read: { read: 'events', after: last, limit: PAGE, waitMs: this.waitMs } }, this.waitMs + DEADLINE_MARGIN_MS);
        if (!current()) return;
        last = Math.max(last, page.scannedTo);
        if (page.events.length > 0) this.push(page.events);
        // Nothing, and at once: an owner that does not hold the ask (an older node). Asked again later, as a poll.
        else if (Date.now() - started < this.waitMs / 2) await pause(this.retryMs);
      } catch {
        // The owner is down, busy or moving: asked again from the same position.
        await pause(this.retryMs);
      }
    }
  }
}

const pause = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
