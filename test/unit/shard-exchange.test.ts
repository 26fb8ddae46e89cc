import { MessageChannel, type MessagePort } from 'node:worker_threads';
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

  it('posts the calls of one turn in one message and their answers in one, fails only a call that cannot be cloned, and lets no halt overtake answers given before it', async () => {
    const { port1, port2 } = new MessageChannel();
    close = () => {
      port1.close();
      port2.close();
    };
    // What crosses each way (recorded once posted).
    const toShard: Array<{ t: string; calls?: unknown[] }> = [];
    const fromShard: Array<{ t: string; results?: unknown[] }> = [];
    const recorded = (port: MessagePort, into: unknown[]) => ({ postMessage: (message: unknown) => (port.postMessage(message), into.push(message)), on: port.on.bind(port), off: port.off.bind(port) });
    const link = new ShardLink<Exchange, { up: true }, never>(0);
    link.attach(recorded(port1, toShard));
    const shard: ShardServer = serveShard<Exchange, { up: true }, never>(
      recorded(port2, fromShard),
      {
        call: async (call: Call) => {
          // Halted in the turn that answers: the halt runs before that turn's answers would have left.
          if (call.op === 'double' && call.n === 60) setImmediate(() => shard.halt('a test stops it', false));
          return call.op === 'double' ? call.n * 2 : 'x';
        },
        stats: () => ({ up: true }),
        followEvents: () => undefined,
      },
      createLogger('silent'),
    );
    server = shard;
    shard.announceReady();
    await link.ready();

    expect(await Promise.all(Array.from({ length: 5 }, (_, n) => link.call({ op: 'double', n }, 1000)))).toEqual([0, 2, 4, 6, 8]);
    expect(toShard.filter((message) => message.t === 'calls').map((message) => message.calls?.length)).toEqual([5]);
    expect(fromShard.filter((message) => message.t === 'results').map((message) => message.results?.length)).toEqual([5]);

    // A function cannot be cloned: that call alone fails, at once; the one beside it is answered.
    const broken = link.call({ op: 'double', n: (() => 1) as unknown as number }, 60_000).catch((error: unknown) => error);
    expect(await link.call({ op: 'double', n: 7 }, 1000)).toBe(14);
    expect(await broken).toBeInstanceOf(Error);

    const answered = [link.call({ op: 'double', n: 50 }, 1000), link.call({ op: 'double', n: 60 }, 1000)];
    expect(await Promise.all(answered)).toEqual([100, 120]);
    await expect.poll(() => link.state).toBe('down');
    await expect(link.call({ op: 'double', n: 1 }, 1000)).rejects.toThrowError(/stopped: a test stops it/);
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
