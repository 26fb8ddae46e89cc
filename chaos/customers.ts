import { signToken } from '../api/auth.js';
import { PROBLEM_CONTENT_TYPE } from '../api/problems.js';
import { seededRandom, type Random } from '../simulator/random.js';

/**
 * The customers of a chaos run: a small driver of the harness's own (the simulator is being reworked
 * elsewhere) that books, unlocks, ends, cancels or lets a booking expire, and writes down every answer
 * it was given. Those records are the clients' side of the checks: what was acknowledged must exist.
 */
export interface AckedBooking {
  readonly id: string;
  readonly vehicleId: string;
  readonly customerId: string;
  /** Epoch ms when the 201 arrived. */
  readonly ackedAt: number;
}

export interface ClientRecords {
  /** Every booking answered 201, by id. */
  readonly bookings: Map<string, AckedBooking>;
  /** Booking id → epoch ms of its 200 SUCCESS unlock. */
  readonly unlocks: Map<string, number>;
  /** Bookings whose end was answered 200 (COMPLETED). */
  readonly ends: Set<string>;
  /** Bookings whose cancel was answered 200 (CANCELLED). */
  readonly cancels: Set<string>;
  /** `201`, `409 vehicle-unavailable`, `503 shard-unavailable`, `unreachable`, … → count. */
  readonly answers: Map<string, number>;
  /** Error answers (4xx/5xx) that were not application/problem+json with a `type`. */
  readonly notProblems: string[];
}

export const emptyRecords = (): ClientRecords => ({ bookings: new Map(), unlocks: new Map(), ends: new Set(), cancels: new Set(), answers: new Map(), notProblems: [] });

export interface Answer {
  /** 0 when no HTTP answer came (connection refused or reset: the server was being killed). */
  readonly status: number;
  readonly body: Record<string, unknown> | null;
  /** Last segment of the problem `type`, e.g. `storage-full`. */
  readonly problem: string | null;
}

/** One HTTP client for the run; counts requests in flight (a kill with some in flight is a kill mid-commit). */
export class Api {
  inFlight = 0;
  constructor(
    readonly baseUrl: string,
    private readonly secret: string,
    readonly records: ClientRecords,
  ) {}

  token(sub: string, role: 'customer' | 'operator'): string {
    return signToken({ sub, role, ttlSeconds: 24 * 3600 }, this.secret);
  }

  async call(method: 'GET' | 'POST', path: string, token: string | null, body?: unknown): Promise<Answer> {
    this.inFlight += 1;
    try {
      const response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { ...(token && { authorization: `Bearer ${token}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await response.text();
      let parsed: Record<string, unknown> | null = null;
      try {
        parsed = text ? (JSON.parse(text) as Record<string, unknown>) : null;
      } catch {
        parsed = null;
      }
      const isProblem = (response.headers.get('content-type') ?? '').startsWith(PROBLEM_CONTENT_TYPE) && typeof parsed?.type === 'string';
      if (response.status >= 400 && !isProblem && path !== '/health') this.records.notProblems.push(`${method} ${path} → ${response.status} ${text.slice(0, 120)}`);
      const problem = isProblem ? String(parsed!.type).split('/').pop()! : null;
      this.count(problem ? `${response.status} ${problem}` : String(response.status));
      return { status: response.status, body: parsed, problem };
    } catch {
      this.count('unreachable');
      return { status: 0, body: null, problem: null };
    } finally {
      this.inFlight -= 1;
    }
  }

  private count(key: string): void {
    this.records.answers.set(key, (this.records.answers.get(key) ?? 0) + 1);
  }

  /** POST /bookings; a 201 is recorded as acknowledged. */
  async book(customerId: string, vehicleId: string): Promise<Answer> {
    const answer = await this.call('POST', '/bookings', this.token(customerId, 'customer'), { vehicleId });
    if (answer.status === 201 && typeof answer.body?.id === 'string') {
      this.records.bookings.set(answer.body.id, { id: answer.body.id, vehicleId, customerId, ackedAt: Date.now() });
    }
    return answer;
  }

  async unlock(customerId: string, bookingId: string): Promise<Answer> {
    const answer = await this.call('POST', `/bookings/${bookingId}/unlock`, this.token(customerId, 'customer'));
    if (answer.status === 200 && answer.body?.status === 'SUCCESS') this.records.unlocks.set(bookingId, Date.now());
    return answer;
  }

  async end(customerId: string, bookingId: string): Promise<Answer> {
    const answer = await this.call('POST', `/bookings/${bookingId}/end`, this.token(customerId, 'customer'));
    if (answer.status === 200 && answer.body?.status === 'COMPLETED') this.records.ends.add(bookingId);
    return answer;
  }

  async cancel(customerId: string, bookingId: string): Promise<Answer> {
    const answer = await this.call('POST', `/bookings/${bookingId}/cancel`, this.token(customerId, 'customer'));
    if (answer.status === 200 && answer.body?.status === 'CANCELLED') this.records.cancels.add(bookingId);
    return answer;
  }
}

export interface CustomerLoad {
  stop(): Promise<void>;
}

/**
 * `customers` loops, each: book a random vehicle, then unlock it (45 %; then end the ride in 60 % of
 * those), cancel it (20 %) or leave it to expire (35 %). A short pause between bookings keeps the CPU
 * for the server on a shared 2-core box; the run is about faults, not throughput.
 */
export function startCustomers(api: Api, vehicleIds: readonly string[], options: { customers: number; seed: number; pauseMs: number }): CustomerLoad {
  let stopped = false;
  const loops = Array.from({ length: options.customers }, (_, index) => customerLoop(api, vehicleIds, `chaos-customer-${index}`, seededRandom(options.seed + index), options.pauseMs, () => stopped));
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

async function customerLoop(api: Api, vehicleIds: readonly string[], customerId: string, random: Random, pauseMs: number, stopped: () => boolean): Promise<void> {
  while (!stopped()) {
    const vehicleId = vehicleIds[Math.floor(random() * vehicleIds.length)]!;
    const booked = await api.book(customerId, vehicleId);
    if (booked.status === 201) {
      const bookingId = String(booked.body!.id);
      const choice = random();
      if (choice < 0.45) {
        const unlocked = await api.unlock(customerId, bookingId);
        if (unlocked.status === 200 && random() < 0.6) await api.end(customerId, bookingId);
      } else if (choice < 0.65) {
        await api.cancel(customerId, bookingId);
      }
    }
    // An unreachable server is restarting, and a taken vehicle stays taken for a while: waiting longer
    // then leaves the CPU to the server instead of thousands of refusals.
    await new Promise((resolve) => setTimeout(resolve, booked.status === 0 ? pauseMs * 10 : booked.status === 409 ? pauseMs * 3 : pauseMs));
  }
}
