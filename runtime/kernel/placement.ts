/**
 * Where an entity lives: vehicle id → shard by a stable hash; a booking and its payment authorization
 * live on their vehicle's shard, and the booking id names that shard, so any later request for the
 * booking is routed without a lookup (docs/architecture.md, "Shards").
 *
 * The hash must never change: it is part of the data. Changing the shard count re-hashes every
 * vehicle, which is why the count is recorded with the data and another count is refused.
 */

/** FNV-1a, 32 bits: stable across Node versions and processes, cheap, and evenly spread on ids. */
export function stableHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export const shardOfVehicle = (vehicleId: string, shardCount: number): number => stableHash(vehicleId) % shardCount;

/** `bk_s2_…`: the shard is in the id. Ids without it (`bk_…`, a single-file database's) live on shard 0. */
const SHARDED_BOOKING_ID = /^bk_s(\d{1,4})_/;

export const bookingIdOnShard = (shard: number, suffix: string): string => `bk_s${shard}_${suffix}`;

/** The shard a booking id names, or null when it names none of `shardCount` (no such booking). */
export function shardOfBooking(bookingId: string, shardCount: number): number | null {
  const match = SHARDED_BOOKING_ID.exec(bookingId);
  const shard = match ? Number(match[1]) : 0;
  return shard < shardCount ? shard : null;
}

/** `auth_<bookingId>`: an authorization lives with its booking. */
export function shardOfAuthorization(authorizationId: string, shardCount: number): number | null {
  return authorizationId.startsWith('auth_') ? shardOfBooking(authorizationId.slice('auth_'.length), shardCount) : null;
}

/** An Idempotency-Key claim's shard: a stable hash of its id (which hashes customer and key), like a vehicle's. */
export const shardOfClaim = (claimId: string, shardCount: number): number => stableHash(claimId) % shardCount;
