import { kafkajsPrototype } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4 looks up a transactional producer's coordinator (a FindCoordinator request) before
 * every AddPartitionsToTxn and every EndTxn (`findTransactionCoordinator` in
 * `src/producer/eosManager/index.js`): two of the five requests of every journal transaction, and a
 * third when the broker answers CONCURRENT_TRANSACTIONS and the send is retried. Measured on this box
 * (kafkajs 2.2.4, Kafka 4.1, 1,000 back-to-back transactions of 4 rows and 1 event): 2.3 lookups per
 * transaction, 2.0 ms of the client's CPU and 2.6–3.6 ms of the broker's per transaction; with the
 * coordinator kept (and the journal's settle pause, journal-of-record.ts): 3 requests, 1.6 ms and 2.0 ms.
 *
 * The Java client keeps the transaction coordinator until a request to it fails, and only then looks
 * it up again (its TransactionManager marks it unknown on NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE).
 * This does the same for kafkajs: a transaction-coordinator lookup is answered from the last one made
 * by the same client, until any call on the broker it named fails (a moved coordinator, a lost
 * connection, CONCURRENT_TRANSACTIONS): the caller's retry then looks it up again. Group-coordinator
 * lookups (consumers) are left as they are.
 *
 * kafkajs has no hook for this, so its cluster's `findGroupCoordinator` is wrapped once per process.
 * The wrap is checked against the installed kafkajs: an unknown shape leaves kafkajs untouched.
 */

const TRANSACTION_COORDINATOR = 1;
const WRAPPED = Symbol.for('fleetactors.kafkajs.transactionCoordinatorCache');

interface LookupArgs {
  readonly groupId: string;
  readonly coordinatorType?: number;
}
type Lookup = (this: object, args: LookupArgs) => Promise<object>;
interface ClusterPrototype {
  findGroupCoordinator: Lookup & { [WRAPPED]?: true };
}

/** Per kafkajs cluster (one per producer): transactional id → the coordinator's broker, as a proxy that forgets itself on failure. */
const coordinators = new WeakMap<object, Map<string, Promise<object>>>();

/** Wraps kafkajs' coordinator lookup once; true when the cache is in effect. */
export function keepTransactionCoordinators(): boolean {
  const prototype = kafkajsPrototype<ClusterPrototype>('cluster/index.js', 'findGroupCoordinator');
  if (prototype === null) return false;
  const lookup = prototype.findGroupCoordinator;
  if (lookup[WRAPPED] === true) return true;
  const cached: Lookup & { [WRAPPED]?: true } = function (this: object, args: LookupArgs): Promise<object> {
    if (args.coordinatorType !== TRANSACTION_COORDINATOR) return lookup.call(this, args);
    let known = coordinators.get(this);
    if (known === undefined) coordinators.set(this, (known = new Map()));
    const hit = known.get(args.groupId);
    if (hit !== undefined) return hit;
    const forget = (): void => {
      if (known.get(args.groupId) === found) known.delete(args.groupId);
    };
    const found = lookup.call(this, args).then((broker) => forgettingOnFailure(broker, forget));
    found.catch(forget);
    known.set(args.groupId, found);
    return found;
  };
  cached[WRAPPED] = true;
  prototype.findGroupCoordinator = cached;
  return true;
}

/** The broker, whose every call that fails (thrown or rejected) also drops it from the cache. */
function forgettingOnFailure(broker: object, forget: () => void): object {
  return new Proxy(broker, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        try {
          const result: unknown = Reflect.apply(value, target, args);
          if (result instanceof Promise) {
            return result.catch((error: unknown) => {
              forget();
              throw error;
            });
          }
          return result;
        } catch (error) {
          forget();
          throw error;
        }
      };
    },
  });
}
