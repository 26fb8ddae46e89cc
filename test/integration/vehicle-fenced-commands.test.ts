import { afterEach, describe, expect, it } from 'vitest';
import { VEHICLE, vehicleBehaviour, type DeviceLink } from '../../actors/vehicle/actor.js';
import type { BatchReplicator } from '../../persistence/journal-replication.js';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { rootContext } from '../../runtime/ground/trace-context.js';
import { startActorSystem, type ActorSystem } from '../../runtime/kernel/actor-system.js';
import { ActorDirectory } from '../../runtime/kernel/directory.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A paused cluster node's window (docs/cluster.md): after SIGCONT it still runs a shard another node
 * took, until its first commit is fenced. No device command may leave it meanwhile. The vehicle sends a
 * command only once the command's event is committed, and in cluster mode a commit is the journal of
 * record's Kafka transaction (persistence/journal-engine.ts `replicateTo`), which the fence refuses.
 * Here that journal of record is a stand-in that commits until it is "fenced", then refuses.
 */
describe('device commands of a fenced shard', () => {
  let temp: TempDbFile;
  let db: Db;
  let system: ActorSystem;
  let journal: SqliteJournalEngine;
  let directory: ActorDirectory;
  let fenced = false;
  const sent: Array<{ vehicleId: string; type: string }> = [];
  const device: DeviceLink = {
    send: (vehicleId, command) => {
      sent.push({ vehicleId, type: command.type });
      return Promise.resolve();
    },
    watch: () => {},
    unwatch: () => {},
  };
  let offset = 0;
  const replicator: BatchReplicator = {
    replicate: () => (fenced ? Promise.reject(Object.assign(new Error('producer fenced'), { name: 'KafkaJSProtocolError', type: 'PRODUCER_FENCED' })) : Promise.resolve((offset += 1))),
  };

  const start = () => {
    temp = tempDbFile();
    db = openDatabase(temp.file);
    journal = new SqliteJournalEngine(db);
    journal.replicateTo(replicator);
    const logger = createLogger('silent');
    system = startActorSystem(journal, logger);
    directory = new ActorDirectory({ system, logger, passivateAfterMs: 60_000, askTimeoutMs: 2_000, snapshotEvery: 100 });
    directory.register(
      VEHICLE,
      vehicleBehaviour({
        device,
        conditionsOf: () => ({ online: true, battery: null }),
        everSeen: () => true,
        notifyUnlocked: () => {},
        notifyLocked: () => {},
        // Short: the deadline of a command sent before the fence fires within the test.
        unlockTimeoutMs: 300,
      }),
    );
  };
  const ask = (id: string, message: unknown) =>
    directory.ask({ kind: VEHICLE, id }, message as never, 'test', rootContext()).then(
      (answer) => answer as { ok: boolean },
      (error: unknown) => ({ ok: false, thrown: error }),
    );
  const reserved = async (id: string, bookingId: string) => {
    expect(await ask(id, { type: 'RegisterVehicle', vehicleType: 'car', model: 'Zoe', location: { lat: 52.52, lon: 13.405 } })).toMatchObject({ ok: true });
    expect(await ask(id, { type: 'ReserveVehicle', bookingId })).toMatchObject({ ok: true });
  };

  afterEach(async () => {
    directory?.stopAll();
    system?.stop();
    await journal?.close().catch(() => undefined);
    db?.close();
    temp?.cleanup();
    fenced = false;
    sent.length = 0;
  });

  it('sends an UNLOCK while its commits go through, and none once they are fenced: not for a new unlock, a lock, nor at a deadline', async () => {
    start();
    await reserved('v-before', 'b-before');
    await reserved('v-after', 'b-after');
    // Committed: the command goes out (its deadline passes unanswered, the device here never replies).
    void ask('v-before', { type: 'UnlockVehicle', bookingId: 'b-before' });
    await waitFor(() => sent.length === 1, { what: 'the UNLOCK sent before the fence' });
    expect(sent).toEqual([{ vehicleId: 'v-before', type: 'UNLOCK' }]);

    fenced = true;
    expect(await ask('v-after', { type: 'UnlockVehicle', bookingId: 'b-after' })).toMatchObject({ ok: false });
    expect(await ask('v-after', { type: 'LockVehicle', bookingId: 'b-after' })).toMatchObject({ ok: false });
    // The first command's deadline fires after the fence: it records a failure (refused), and sends nothing.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(await ask('v-before', { type: 'UnlockVehicle', bookingId: 'b-before' })).toMatchObject({ ok: false });
    expect(sent).toEqual([{ vehicleId: 'v-before', type: 'UNLOCK' }]);
  });
});
