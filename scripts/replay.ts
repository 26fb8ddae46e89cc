import { exitBadArgument, parseCommandLine } from '../runtime/ground/command-line.js';
import { ConfigError, loadConfig } from '../server/config.js';
import { isReplayKind, renderReplay, REPLAY_KINDS } from '../traces/replay.js';
import { replayFromFleetDb, ReplaySourceError } from '../server/replay-source.js';

/**
 * `npm run replay -- vehicle|booking|payment <id> [--until <seq>] [--full] [--json]`: rebuilds one
 * actor's state from its shard's journal with the actor's own `evolve`, event by event. Reads FLEET_DB
 * like the server, read-only, so it runs next to a running server.
 */
const USAGE = `usage: npm run replay -- ${REPLAY_KINDS.join('|')} <id> [--until <seq>] [--full] [--json]

  --until SEQ   stop after the event with this sequence number (the state the actor had then)
  --full        the whole state after every event (default: the fields each event changed)
  --json        the replay as JSON (every step with its event and state)

  Reads the journal of the shard that holds the actor, beside FLEET_DB (default ./data/fleet.db).`;

function main(): number {
  const { values, positionals } = parseCommandLine('replay', USAGE, {
    options: { until: { type: 'string' }, full: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  const [kind, id] = positionals;
  if (kind === undefined) exitBadArgument('replay', `the actor kind is missing (${REPLAY_KINDS.join(', ')})`);
  if (!isReplayKind(kind)) exitBadArgument('replay', `unknown actor kind ${JSON.stringify(kind)} (${REPLAY_KINDS.join(', ')})`);
  if (id === undefined) exitBadArgument('replay', `the ${kind} id is missing`);
  if (positionals.length > 2) exitBadArgument('replay', `unexpected argument ${JSON.stringify(positionals[2])}`);
  const until = values.until === undefined ? undefined : Number(values.until);
  if (until !== undefined && (!Number.isInteger(until) || until < 1)) {
    exitBadArgument('replay', `--until must be a sequence number (1, 2, …), not ${JSON.stringify(values.until)}`);
  }
  try {
    const config = loadConfig(process.env);
    const { source, replay } = replayFromFleetDb(config.db.file, kind, id, until);
    if (values.json) {
      console.log(JSON.stringify({ ...replay, shard: source.shard, file: source.file }, null, 2));
      return 0;
    }
    if (replay.steps.length === 0) {
      console.error(`no events for ${kind}/${id} in ${source.file} (shard ${source.shard} of ${source.shardCount})`);
      return 1;
    }
    console.log(`(shard ${source.shard} of ${source.shardCount}: ${source.file})`);
    console.log(renderReplay(replay, { full: values.full === true }));
    return 0;
  } catch (error) {
    if (error instanceof ReplaySourceError || error instanceof ConfigError) {
      console.error(`replay: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = main();
