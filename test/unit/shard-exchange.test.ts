import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { createLogger } from '../../runtime/ground/logger.js';
import { serveShard, type ShardServer } from '../../runtime/kernel/shard-host.js';
import { ShardLink } from '../../runtime/kernel/shard-link.js';
import type { AnswerOf } from '../../runtime/kernel/shard-protocol.js';
import type { EventScan, FleetExchange, ShardAnswer, ShardStats } from '../../server/shard-calls.js';
import type { VehicleView } from '../../actors/contract/views.js';
import type { Outcome } from '../../actors/contract/rejections.js';

/** A tiny exchange of the kernel's own: calls by `op`, reads by name, each with its answer. */
type Exchange =
  | { readonly call: { readonly op: 'double'; readonly n: number }; readonly answer: number }
  | { readonly call: { readonly op: 'read'; readonly read: { readonly read: 'name'; readonly id: string } }; readonly answer: string }
  | { readonly call: { readonly op: 'read'; readonly read: { readonly read: 'size'; readonly id: string } }; readonly answer: { readonly bytes: number } };
type Call = Exchange['call'];

describe('typed answers across the shard boundary', () => {
  let server: ShardServer | undefined;
  let close: (() => void) | undefined;
  afterEach(() => {
    server?.close();
    close?.();
  });

  it('answers each call with its exchange\'s answer, typed from the call without a cast', async () => {
    const { port1, port2 } = new MessageChannel();
    close = () => {
      port1.close();
      port2.close();
    };
    const link = new ShardLink<Exchange, { up: true }, never>(0);
    link.attach(port1);
    server = serveShard<Exchange, { up: true }, never>(
      port2,
      {
        call: async (call: Call) => (call.op === 'double' ? call.n * 2 : call.read.read === 'name' ? `vehicle ${call.read.id}` : { bytes: call.read.id.length }),
        stats: () => ({ up: true }),
        followEvents: () => undefined,
      },
      createLogger('silent'),
    );
    server.announceReady();
    await link.ready();

    const doubled = link.call({ op: 'double', n: 21 }, 1000);
    const named = link.call({ op: 'read', read: { read: 'name', id: 'v-1' } }, 1000);
    const sized = link.call({ op: 'read', read: { read: 'size', id: 'v-123' } }, 1000);
    expectTypeOf(doubled).resolves.toEqualTypeOf<number>();
    expectTypeOf(named).resolves.toEqualTypeOf<string>();
    expectTypeOf(sized).resolves.toEqualTypeOf<{ readonly bytes: number }>();
    expect(await doubled).toBe(42);
    expect(await named).toBe('vehicle v-1');
    expect(await sized).toEqual({ bytes: 5 });
  });

  it('a union of calls answers the union of their answers', () => {
    type Either = { readonly op: 'read'; readonly read: { readonly read: 'name'; readonly id: string } } | { readonly op: 'double'; readonly n: number };
    expectTypeOf<AnswerOf<Exchange, Either>>().toEqualTypeOf<string | number>();
  });

  it('the fleet\'s map types its reads and ops', () => {
    expectTypeOf<ShardAnswer<{ op: 'read'; read: { read: 'events'; after: number; limit: number } }>>().toEqualTypeOf<EventScan>();
    expectTypeOf<ShardAnswer<{ op: 'read'; read: { read: 'vehicle'; id: string } }>>().toEqualTypeOf<VehicleView | null>();
    expectTypeOf<ShardAnswer<{ op: 'read'; read: { read: 'live-bookings'; customerId: string; exceptBookingId: string } }>>().toEqualTypeOf<string[]>();
    expectTypeOf<ShardAnswer<{ op: 'stats' }>>().toEqualTypeOf<ShardStats>();
    expectTypeOf<ShardAnswer<{ op: 'stop' }>>().toEqualTypeOf<null>();
    expectTypeOf<AnswerOf<FleetExchange, { op: 'ask'; target: { kind: string; id: string }; message: { type: 'X' }; from: string; trace: { traceId: string; spanId: string } }>>().toEqualTypeOf<Outcome<unknown>>();
  });
});
