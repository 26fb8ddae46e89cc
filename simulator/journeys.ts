import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createLogger, type Logger } from '../runtime/ground/logger.js';
import type { VehicleType } from '../actors/contract/views.js';
import { ApiUnreachable, isRecord, type ApiClient, type ApiResult, type TokenSource } from './api-client.js';
import type { AreaPlaces, GeoPoint } from './area-places.js';
import { exponentialGapMs, pickJourneyKind, type JourneyKind, type JourneyMix, type RideDistribution } from './arrivals.js';
import type { RideTo } from './device-fleet.js';
import type { InvariantMonitor } from './invariants.js';
import type { Random } from './random.js';
import { LatencyRecorder, ReasonCounts, type AreaReport, type LatencySummary } from './report.js';
import { pause } from './timing.js';

export const STEPS = ['search', 'book', 'unlock', 'end', 'cancel'] as const;
export type Step = (typeof STEPS)[number];

export interface JourneySettings {
  /** Open loop: journeys a second, arriving as a Poisson process; 0 = none. */
  readonly ratePerS: number;
  /** Closed loop: customers each making one journey after the other; 0 = none. */
  readonly customers: number;
  readonly durationMs: number;
  readonly ride: RideDistribution;
  readonly mix: JourneyMix;
  /** Customers in one race for a vehicle. */
  readonly raceSize: number;
  readonly centre: { readonly lat: number; readonly lon: number };
  /** Customers appear uniformly within this distance of the centre ... */
  readonly radiusM: number;
  /** ... and look for an available vehicle within this distance of where they are. */
  readonly searchRadiusM: number;
  /** Only vehicles whose id starts with this are booked (other vehicles on the server are left alone). */
  readonly vehiclePrefix: string;
  /** After the deadline, how long journeys still running get to finish before they count as unfinished. */
  readonly drainMs: number;
  /** Where rides may end, from the server's operating area; null: it restricts no end, riders end where they are. */
  readonly places: AreaPlaces | null;
}

export interface JourneyDeps {
  readonly api: ApiClient;
  readonly tokens: TokenSource;
  readonly random: Random;
  readonly monitor: InvariantMonitor;
  /** Moves a simulated device to where its rider rode it. */
  readonly rideTo: RideTo;
  readonly logger?: Logger;
  /** Stops arrivals early (Ctrl-C); journeys under way still finish. */
  readonly signal?: AbortSignal;
}

export interface JourneySnapshot {
  readonly elapsedMs: number;
  readonly offered: number;
  readonly finished: number;
  readonly inFlight: number;
  /** `completed`, `cancelled`, `failed:<step>:<problem>` (a contract answer), `error:<what>` (not one). */
  readonly outcomes: Record<string, number>;
  /** Calls that got no answer or one the contract does not allow, by kind. */
  readonly errors: Record<string, number>;
  readonly steps: Record<Step, LatencySummary>;
  readonly area: AreaReport;
}

export interface JourneyRun {
  readonly done: Promise<JourneySnapshot>;
  snapshot(): JourneySnapshot;
}

/** Answers the contract allows a customer to get (docs/contract.md, "HTTP"); anything else is an error. */
const CONTRACT_STATUS = new Set([402, 409, 503, 504]);
const METRES_PER_DEGREE = 111_320;
/** Ends the operating area refuses (the trip goes on): the rider tries again after riding on a little. */
const AREA_REFUSALS = ['ride-end-not-allowed', 'vehicle-position-unknown'];
const END_ATTEMPTS_IN_AREA = 5;
const AREA_RETRY_MS = 2_000;
/** A rider who rode somewhere waits this long at most for the server to show the vehicle there ... */
const PLACE_WAIT_MS = 15_000;
/** ... looking this often, and has the device report again this often (a QoS 0 reading can be lost). */
const PLACE_POLL_MS = 100;
const PLACE_RESEND_MS = 1_000;
const RIDE_END_NOT_ALLOWED = 'failed:end:ride-end-not-allowed';

type OutsideTry = 'refused' | 'ended' | 'not-refused';

interface FoundVehicle {
  readonly id: string;
  readonly type: VehicleType | null;
}

type Answer = { readonly ok: true; readonly result: ApiResult } | { readonly ok: false; readonly outcome: string };

/**
 * Customers over HTTP. A journey finds a nearby available vehicle (`GET /vehicles?near=`), books it,
 * unlocks it, rides for a sampled time and ends the ride, or, by its kind, cancels, retries its
 * booking with the same Idempotency-Key, or races other customers for the vehicle. A journey never
 * leaves a booking behind: a failed unlock is followed by a cancel (or an end, when the vehicle did
 * open after all). Every answer also goes to the invariant monitor.
 */
export function startJourneys(settings: JourneySettings, deps: JourneyDeps): JourneyRun {
  const log = (deps.logger ?? createLogger('silent')).child({ component: 'sim-journeys' });
  const { api, tokens, random, monitor } = deps;
  const started = Date.now();
  const latency = Object.fromEntries(STEPS.map((step) => [step, new LatencyRecorder()])) as Record<Step, LatencyRecorder>;
  const outcomes = new ReasonCounts();
  const errors = new ReasonCounts();
  const inFlight = new Set<Promise<void>>();
  const area = { riddenInside: 0, outsideTries: 0, outsideRefused: 0, outsideAccepted: 0, endedInsideAfterRefusal: 0, outsideOther: new ReasonCounts(), notPlaced: new ReasonCounts() };
  /** Vehicles a journey of this run is on: others look for another one (a customer sees it taken). */
  const claimed = new Set<string>();
  let offered = 0;
  let finished = 0;
  let customerSeq = 0;
  let abandoned = false;

  const stopping = new AbortController();
  // Every riding journey waits on this signal: one listener each, by design.
  setMaxListeners(0, stopping.signal);
  const onExternalAbort = () => stopping.abort();
  deps.signal?.addEventListener('abort', onExternalAbort, { once: true });

  const call = async (step: Step, method: 'GET' | 'POST', path: string, token: string, body?: unknown, headers?: Record<string, string>): Promise<Answer> => {
    let result: ApiResult;
    try {
      result = await api.request(method, path, token, body, headers);
    } catch (error) {
      const kind = error instanceof ApiUnreachable ? `${step}: no answer` : `${step}: ${String(error)}`;
      errors.add(kind);
      log.debug({ err: error, path }, 'call failed');
      return { ok: false, outcome: `error:${kind}` };
    }
    latency[step].recordUs(result.latencyUs);
    monitor.httpAnswer(`${method} ${path}`, result.status, result.problem);
    if (result.status < 300) return { ok: true, result };
    if (CONTRACT_STATUS.has(result.status)) return { ok: false, outcome: `failed:${step}:${result.problem}` };
    const kind = `${step}: ${result.status} ${result.problem}`;
    errors.add(kind);
    return { ok: false, outcome: `error:${kind}` };
  };

  const findVehicle = async (token: string): Promise<FoundVehicle | Answer> => {
    const angle = random() * 2 * Math.PI;
    const distance = settings.radiusM * Math.sqrt(random());
    const lat = settings.centre.lat + (distance * Math.cos(angle)) / METRES_PER_DEGREE;
    const lon = settings.centre.lon + (distance * Math.sin(angle)) / (METRES_PER_DEGREE * Math.cos((settings.centre.lat * Math.PI) / 180));
    let found: FoundVehicle[] = [];
    // Nearby first (a small area is also a cheap query on a dense fleet); nothing there, then four times as far, as an app would.
    for (const radiusM of [settings.searchRadiusM, Math.min(100_000, settings.searchRadiusM * 4)]) {
      const answer = await call('search', 'GET', `/vehicles?near=${lat.toFixed(6)},${lon.toFixed(6)}&radiusM=${radiusM}&status=AVAILABLE&limit=20`, token);
      if (!answer.ok) return answer;
      const items = isRecord(answer.result.body) && Array.isArray(answer.result.body.items) ? answer.result.body.items : [];
      found = items.flatMap((item) => (isRecord(item) && typeof item.id === 'string' && item.id.startsWith(settings.vehiclePrefix) ? [{ id: item.id, type: vehicleType(item.type) }] : []));
      if (found.length > 0) break;
    }
    if (found.length === 0) return { ok: false, outcome: 'failed:search:no-vehicle-nearby' };
    // The nearest one nobody in this run is on; when all are, the nearest (and a likely 409).
    return found.find((vehicle) => !claimed.has(vehicle.id)) ?? found[0]!;
  };

  const book = async (customer: string, vehicleId: string, key = randomUUID()): Promise<Answer & { bookingId?: string }> => {
    const answer = await call('book', 'POST', '/bookings', tokens(customer, 'customer'), { vehicleId }, { 'idempotency-key': key });
    if (!answer.ok) return answer;
    const bookingId = isRecord(answer.result.body) && typeof answer.result.body.id === 'string' ? answer.result.body.id : null;
    if (answer.result.status !== 201 || bookingId === null) {
      errors.add(`book: ${answer.result.status} without a booking id`);
      return { ok: false, outcome: 'error:book: no booking id' };
    }
    monitor.bookingConfirmed(bookingId, vehicleId);
    return { ...answer, bookingId };
  };

  const cancel = async (customer: string, bookingId: string): Promise<Answer> => {
    monitor.bookingReleasing(bookingId);
    return call('cancel', 'POST', `/bookings/${encodeURIComponent(bookingId)}/cancel`, tokens(customer, 'customer'));
  };

  const end = async (customer: string, bookingId: string): Promise<Answer> => {
    monitor.bookingReleasing(bookingId);
    // One retry: a lock that timed out leaves the ride ACTIVE, and a customer tries again before leaving.
    let answer = await call('end', 'POST', `/bookings/${encodeURIComponent(bookingId)}/end`, tokens(customer, 'customer'));
    if (!answer.ok && answer.outcome.startsWith('failed:end:lock-timed-out')) answer = await call('end', 'POST', `/bookings/${encodeURIComponent(bookingId)}/end`, tokens(customer, 'customer'));
    // The operating area refused the end where the vehicle stands, or has no fresh fix of it (docs/gbfs.md):
    // the trip goes on, so the rider rides on and tries again, as a person would, before giving up.
    const refusedForWhere = (refused: Answer) => !refused.ok && AREA_REFUSALS.some((slug) => refused.outcome === `failed:end:${slug}`);
    for (let attempt = 0; attempt < END_ATTEMPTS_IN_AREA && refusedForWhere(answer); attempt += 1) {
      await pause(AREA_RETRY_MS, stopping.signal);
      answer = await call('end', 'POST', `/bookings/${encodeURIComponent(bookingId)}/end`, tokens(customer, 'customer'));
    }
    return answer;
  };

  /** After an unlock that did not succeed: cancel; if the vehicle opened after all (ACTIVE), end the ride. */
  const cleanUp = async (customer: string, bookingId: string): Promise<void> => {
    monitor.bookingReleasing(bookingId);
    const cancelled = await cancel(customer, bookingId);
    if (cancelled.ok) return;
    const booking = await api.request('GET', `/bookings/${encodeURIComponent(bookingId)}`, tokens(customer, 'customer')).catch(() => null);
    if (isRecord(booking?.body) && booking.body.status === 'ACTIVE') await end(customer, bookingId);
  };

  /**
   * The rider rides the vehicle to `place` (the device reports it there) and waits until the server
   * shows it there: the end is judged on that fix. False: not shown within PLACE_WAIT_MS.
   */
  const rideTo = async (customer: string, vehicleId: string, place: GeoPoint): Promise<boolean> => {
    const deadline = Date.now() + PLACE_WAIT_MS;
    let resendAt = 0;
    while (Date.now() < deadline) {
      if (Date.now() >= resendAt) {
        deps.rideTo(vehicleId, place);
        resendAt = Date.now() + PLACE_RESEND_MS;
      }
      const seen = await api.request('GET', `/vehicles/${encodeURIComponent(vehicleId)}`, tokens(customer, 'customer')).catch(() => null);
      const location = isRecord(seen?.body) && isRecord(seen.body.location) ? seen.body.location : null;
      if (location?.lat === place.lat && location.lon === place.lon) return true;
      await pause(PLACE_POLL_MS);
    }
    return false;
  };

  /**
   * The `outside` journey: ride to where the type may not end a ride and try to end there. `refused`:
   * as it must be (the ride goes on); `not-refused`: no try, or another answer (the ride goes on too);
   * `ended`: the end was accepted, an invariant violation, and the ride is over.
   */
  const tryEndOutside = async (customer: string, vehicleId: string, type: VehicleType, bookingId: string): Promise<OutsideTry> => {
    const place = settings.places?.outside(type, random) ?? null;
    if (place === null) {
      area.notPlaced.add(`no place where a ${type} may not end`);
      return 'not-refused';
    }
    if (!(await rideTo(customer, vehicleId, place))) {
      area.notPlaced.add('the server did not show the vehicle outside');
      return 'not-refused';
    }
    area.outsideTries += 1;
    monitor.bookingReleasing(bookingId);
    const answer = await call('end', 'POST', `/bookings/${encodeURIComponent(bookingId)}/end`, tokens(customer, 'customer'));
    if (answer.ok) {
      area.outsideAccepted += 1;
      monitor.endOutsideAccepted(bookingId, vehicleId, place);
      return 'ended';
    }
    if (answer.outcome === RIDE_END_NOT_ALLOWED) {
      area.outsideRefused += 1;
      return 'refused';
    }
    area.outsideOther.add(answer.outcome);
    return 'not-refused';
  };

  const ride = async (customer: string, vehicle: FoundVehicle, bookingId: string, kind: JourneyKind): Promise<string> => {
    const vehicleId = vehicle.id;
    if (kind === 'cancel') {
      const cancelled = await cancel(customer, bookingId);
      return cancelled.ok ? 'cancelled' : cancelled.outcome;
    }
    const unlocked = await call('unlock', 'POST', `/bookings/${encodeURIComponent(bookingId)}/unlock`, tokens(customer, 'customer'));
    if (!unlocked.ok) {
      await cleanUp(customer, bookingId);
      return unlocked.outcome;
    }
    const body = unlocked.result.body;
    monitor.unlockSucceeded(bookingId, isRecord(body) && typeof body.vehicleId === 'string' ? body.vehicleId : vehicleId);
    await pause(settings.ride.sampleMs(random), stopping.signal);
    // Where the area restricts the end, the rider ends at a place where the type may (and, of the
    // `outside` kind, first tries one where it may not); elsewhere wherever the vehicle stands.
    const { places } = settings;
    const type = vehicle.type;
    let triedOutside: OutsideTry | null = null;
    if (kind === 'outside' && (places === null || type === null || !places.restricts(type))) area.notPlaced.add('no area forbids an end to this type');
    if (places !== null && type !== null && places.restricts(type)) {
      if (kind === 'outside') {
        triedOutside = await tryEndOutside(customer, vehicleId, type, bookingId);
        if (triedOutside === 'ended') return 'completed';
      }
      const inside = places.inside(type, random);
      if (inside === null) area.notPlaced.add(`no place where a ${type} may end`);
      else if (await rideTo(customer, vehicleId, inside)) area.riddenInside += 1;
      else area.notPlaced.add('the server did not show the vehicle inside');
    }
    const ended = await end(customer, bookingId);
    if (ended.ok && triedOutside === 'refused') area.endedInsideAfterRefusal += 1;
    return ended.ok ? 'completed' : ended.outcome;
  };

  const journey = async (kind: JourneyKind): Promise<string> => {
    const customer = `sim-c${++customerSeq}`;
    const found = await findVehicle(tokens(customer, 'customer'));
    if ('ok' in found) return found.ok ? 'error:search' : found.outcome;
    claimed.add(found.id);
    try {
      if (kind === 'race') {
        const racers = Array.from({ length: settings.raceSize }, (_, index) => `${customer}-r${index}`);
        const answers = await Promise.all(racers.map((racer) => book(racer, found.id)));
        const winners = answers.flatMap((answer, index) => (answer.ok && answer.bookingId ? [{ racer: racers[index]!, bookingId: answer.bookingId }] : []));
        // More than one winner is a double booking (the monitor saw it); give every extra one back.
        for (const extra of winners.slice(1)) await cancel(extra.racer, extra.bookingId);
        const winner = winners[0];
        if (!winner) {
          const lost = answers.find((answer): answer is { ok: false; outcome: string } => !answer.ok);
          return lost?.outcome ?? 'error:race';
        }
        return await ride(winner.racer, found, winner.bookingId, kind);
      }
      const key = randomUUID();
      const booked = await book(customer, found.id, key);
      if (!booked.ok || !booked.bookingId) return booked.ok ? 'error:book' : booked.outcome;
      if (kind === 'retry') {
        const again = await book(customer, found.id, key);
        if (!again.ok || again.bookingId !== booked.bookingId) {
          errors.add('book: a retry with the same Idempotency-Key got another answer');
          await cleanUp(customer, booked.bookingId);
          return 'error:idempotency';
        }
      }
      return await ride(customer, found, booked.bookingId, kind);
    } finally {
      claimed.delete(found.id);
    }
  };

  const launch = (): Promise<void> => {
    offered += 1;
    const kind = pickJourneyKind(settings.mix, random);
    const running: Promise<void> = journey(kind)
      .catch((error: unknown) => {
        errors.add(`journey: ${String(error)}`);
        return 'error:exception';
      })
      .then((outcome) => {
        inFlight.delete(running);
        // Already counted as unfinished when the drain gave up on it.
        if (abandoned) return;
        outcomes.add(outcome);
        if (outcome.startsWith('error:')) monitor.journeyUnfinished(`a ${kind} journey ended in ${outcome}`);
        finished += 1;
      });
    inFlight.add(running);
    return running;
  };

  // Open loop: arrival instants are fixed in advance on the clock; a late timer launches every arrival
  // it missed at once instead of quietly offering less.
  const deadline = started + settings.durationMs;
  let nextArrival = settings.ratePerS > 0 ? started + exponentialGapMs(settings.ratePerS, random) : Number.POSITIVE_INFINITY;
  let arrivalTimer: NodeJS.Timeout | undefined;
  const arrive = (): void => {
    const now = Date.now();
    while (nextArrival <= now && nextArrival < deadline && !stopping.signal.aborted) {
      void launch();
      nextArrival += exponentialGapMs(settings.ratePerS, random);
    }
    if (nextArrival < deadline && !stopping.signal.aborted) arrivalTimer = setTimeout(arrive, nextArrival - now);
  };
  if (settings.ratePerS > 0) arrive();

  const closedLoops = Array.from({ length: settings.customers }, async () => {
    while (!stopping.signal.aborted && Date.now() < deadline) await launch();
  });

  const snapshot = (): JourneySnapshot => ({
    elapsedMs: Date.now() - started,
    offered,
    finished,
    inFlight: inFlight.size,
    outcomes: outcomes.toJSON(),
    errors: errors.toJSON(),
    steps: Object.fromEntries(STEPS.map((step) => [step, latency[step].summary()])) as Record<Step, LatencySummary>,
    area: { restricted: settings.places !== null, ...area, outsideOther: area.outsideOther.toJSON(), notPlaced: area.notPlaced.toJSON() },
  });

  const done = (async () => {
    await pause(settings.durationMs, stopping.signal);
    clearTimeout(arrivalTimer);
    // Rides in progress end now; nothing new starts.
    stopping.abort();
    await Promise.all(closedLoops);
    const drained = await Promise.race([Promise.all([...inFlight]).then(() => true), pause(settings.drainMs).then(() => false)]);
    if (!drained) {
      abandoned = true;
      for (let left = inFlight.size; left > 0; left -= 1) {
        outcomes.add('error:unfinished');
        monitor.journeyUnfinished(`a journey still running ${settings.drainMs} ms after the end`);
      }
    }
    deps.signal?.removeEventListener('abort', onExternalAbort);
    return snapshot();
  })();
  return { done, snapshot };
}

const VEHICLE_TYPES: ReadonlySet<string> = new Set<VehicleType>(['car', 'scooter', 'bike']);
const vehicleType = (value: unknown): VehicleType | null => (typeof value === 'string' && VEHICLE_TYPES.has(value) ? (value as VehicleType) : null);
