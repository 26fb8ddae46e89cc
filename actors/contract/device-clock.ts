/**
 * Device timestamps are claims, not facts. A reading dated in the future would pin a vehicle (every
 * real reading after it looks older and is ignored), so a time further ahead than the allowed clock skew
 * is refused, and a small skew ahead is clamped to the server's now: nothing is ever stored as the future.
 * Past times are kept: a device may deliver readings it buffered while offline.
 */
export const MAX_DEVICE_CLOCK_SKEW_MS = 5 * 60_000;

/** The time to store, or null when the claim is too far ahead to be believed. */
export function trustedDeviceTime(claimedMs: number, nowMs: number, maxSkewMs = MAX_DEVICE_CLOCK_SKEW_MS): number | null {
  if (!Number.isFinite(claimedMs) || claimedMs > nowMs + maxSkewMs) return null;
  return Math.min(claimedMs, nowMs);
}
