import type { FleetShardCaller, ShardEvent } from '../shard-calls.js';

/** How often a node asks an owner for a followed shard's new events (the live latency of GET /events across nodes). */
export const REMOTE_EVENTS_POLL_MS = 500;
const PAGE = 500;
const DEADLINE_MS = 5000;

type Call = FleetShardCaller['call'];

/**
 * Live events of a shard another node owns, while someone on this node follows GET /events: a poll of
 * the owner's journal from the last position seen, pushed to the listeners as a worker pushes its
 * commits. It starts from the shard's position when following begins and then tells the streams to
 * re-read from their own cursors (`resync`), so nothing committed in between is missed. An owner that
 * does not answer is asked again on the next tick, from the same position.
 */
export class RemoteEventFollower {
  private timer: NodeJS.Timeout | null = null;
  private last: number | null = null;
  private polling = false;

  constructor(
    private readonly call: Call,
    private readonly push: (events: readonly ShardEvent[]) => void,
    private readonly resync: () => void,
    private readonly pollMs = REMOTE_EVENTS_POLL_MS,
  ) {}

  follow(on: boolean): void {
    if (on && this.timer === null) {
      this.timer = setInterval(() => void this.tick(), this.pollMs);
      this.timer.unref();
      void this.tick();
    } else if (!on && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
      this.last = null;
    }
  }

  private async tick(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      if (this.last === null) {
        const stats = await this.call({ op: 'stats' }, DEADLINE_MS);
        this.last = stats.journal.position;
        this.resync();
        return;
      }
      for (;;) {
        const page = await this.call({ op: 'read', read: { read: 'events', after: this.last, limit: PAGE } }, DEADLINE_MS);
        if (this.timer === null) return;
        this.last = Math.max(this.last ?? 0, page.scannedTo);
        if (page.events.length > 0) this.push(page.events);
        if (page.events.length < PAGE) return;
      }
    } catch {
      // The owner is down or busy: the next tick asks again from the same position.
    } finally {
      this.polling = false;
    }
  }
}
