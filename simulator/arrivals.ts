import type { DeviceBehaviour } from './light-device.js';
import { shuffledIndices, type Random } from './random.js';

/**
 * The random parts of a run, pure and seeded: when customers arrive, how long they ride, what kind of
 * journey each one makes, and which devices misbehave how.
 */

/**
 * Gap to the next arrival of a Poisson process with `ratePerS` arrivals a second: exponentially
 * distributed with mean 1/rate. Open loop: arrivals do not wait for the server, so a slow server
 * meets the same demand and its queue shows in the latencies instead of hiding in a lower rate.
 */
export function exponentialGapMs(ratePerS: number, random: Random): number {
  // 1 - U is in (0, 1]: the log never sees 0.
  return (-Math.log(1 - random()) / ratePerS) * 1000;
}

/** A ride length: `--ride-s 3` (fixed), `2-8` (uniform), `exp:5` (exponential, mean 5). */
export interface RideDistribution {
  readonly text: string;
  sampleMs(random: Random): number;
}

export function parseRideDistribution(text: string): RideDistribution {
  const trimmed = text.trim();
  const number = (value: string) => (value.trim() !== '' && Number.isFinite(Number(value)) && Number(value) >= 0 ? Number(value) : null);
  const exponential = /^exp:(.+)$/.exec(trimmed);
  if (exponential) {
    const mean = number(exponential[1]!);
    if (mean !== null) return { text: trimmed, sampleMs: (random) => -Math.log(1 - random()) * mean * 1000 };
  }
  const range = /^([^-]+)-([^-]+)$/.exec(trimmed);
  if (range) {
    const low = number(range[1]!);
    const high = number(range[2]!);
    if (low !== null && high !== null && low <= high) return { text: trimmed, sampleMs: (random) => (low + random() * (high - low)) * 1000 };
  }
  const fixed = number(trimmed);
  if (fixed !== null) return { text: trimmed, sampleMs: () => fixed * 1000 };
  throw new RangeError(`a ride length is seconds (3), a range (2-8) or exp:MEAN, got ${JSON.stringify(text)}`);
}

/**
 * - `ride`: find, book, unlock, ride, end.
 * - `cancel`: find, book, cancel.
 * - `retry`: a ride whose booking request is sent twice with the same Idempotency-Key (a client that
 *   did not trust its first answer); both answers must be the same booking.
 * - `race`: several customers book the same vehicle at the same instant; at most one may win.
 * - `outside`: a ride whose rider first rides out of the operating area (to a place where the vehicle's
 *   type may not end a ride) and tries to end there, which must be refused (409 ride-end-not-allowed);
 *   then rides back inside and ends. Only where the server's area forbids ends somewhere.
 */
export type JourneyKind = 'ride' | 'cancel' | 'retry' | 'race' | 'outside';

export interface JourneyMix {
  readonly cancel: number;
  readonly retry: number;
  readonly race: number;
  readonly outside: number;
}

/** Shares are of all journeys; what they leave over is plain rides. */
export function pickJourneyKind(mix: JourneyMix, random: Random): JourneyKind {
  const draw = random();
  if (draw < mix.cancel) return 'cancel';
  if (draw < mix.cancel + mix.retry) return 'retry';
  if (draw < mix.cancel + mix.retry + mix.race) return 'race';
  if (draw < mix.cancel + mix.retry + mix.race + mix.outside) return 'outside';
  return 'ride';
}

export type DeviceMix = Readonly<Record<Exclude<DeviceBehaviour, 'answer'>, number>>;

export const NO_MISBEHAVIOUR: DeviceMix = { silent: 0, slow: 0, flapping: 0, duplicate: 0, reject: 0 };

/** Exact shares (rounded), disjoint, on randomly chosen devices; the rest answer normally. */
export function assignBehaviours(count: number, mix: DeviceMix, random: Random): DeviceBehaviour[] {
  const behaviours: DeviceBehaviour[] = Array.from({ length: count }, () => 'answer');
  const order = shuffledIndices(count, random);
  let next = 0;
  for (const behaviour of Object.keys(mix) as Array<keyof DeviceMix>) {
    const share = Math.min(count - next, Math.round(count * mix[behaviour]));
    for (let taken = 0; taken < share; taken += 1) behaviours[order[next++]!] = behaviour;
  }
  return behaviours;
}

/** The sum of a mix's shares must leave room: a journey or a device is one kind only. */
export function mixTotal(mix: JourneyMix | DeviceMix): number {
  return (Object.values(mix) as number[]).reduce((total, share) => total + share, 0);
}
