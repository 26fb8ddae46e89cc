/**
 * The cursor of GET /events: one journal position per shard, written `p0.p1.…` (with one shard it is
 * just the position, so `?after=57` reads as it always did, and `?after=0` starts at the beginning
 * whatever the shard count). Clients treat it as opaque: pass back `next`, or an SSE event's `id:`.
 */
export type EventCursor = readonly number[];

const CURSOR = /^\d{1,15}(\.\d{1,15}){0,63}$/;

export const startCursor = (shards: number): EventCursor => Array.from({ length: shards }, () => 0);

/** The cursor, or null when it is malformed or made for another shard count. */
export function parseCursor(text: string, shards: number): EventCursor | null {
  if (!CURSOR.test(text)) return null;
  const positions = text.split('.').map(Number);
  if (positions.length === 1 && positions[0] === 0) return startCursor(shards);
  return positions.length === shards ? positions : null;
}

export const formatCursor = (cursor: EventCursor): string => cursor.join('.');

/** The cursor after `event` (positions only move forward). */
export function advance(cursor: EventCursor, shard: number, position: number): EventCursor {
  if (position <= (cursor[shard] ?? 0)) return cursor;
  const next = [...cursor];
  next[shard] = position;
  return next;
}
