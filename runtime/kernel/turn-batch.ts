/**
 * Gathers what one turn of the event loop produces and hands it over together, after the turn's I/O
 * callbacks (setImmediate): the shard boundary posts one message per turn instead of one per call,
 * which under load carries many (one structured clone and one wake-up of the other thread for all).
 */
export class TurnBatch<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly deliver: (items: T[]) => void) {}

  add(item: T): void {
    this.items.push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  /** Hands over what is gathered now (before a message that must not overtake it). */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.items.length === 0) return;
    const items = this.items;
    this.items = [];
    this.deliver(items);
  };

  /** Drops what is gathered (its port is gone). */
  drop(): void {
    this.items = [];
  }
}
