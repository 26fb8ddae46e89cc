import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BAD_ARGUMENTS, badArgumentLine, parseCommandLine } from '../runtime/ground/command-line.js';
import { ClusterUsageError, DEFAULTS, clusterStatus, startCluster, stopCluster, summaryOf } from './cluster-lib.js';

/**
 * `npm run cluster -- start [--nodes 3] [--shards 6] [--port 4000] [--json]`, `stop`, `status [--json]`:
 * Kafka, Mosquitto (dynamic security) and N nodes of one cluster on this machine, everything under
 * CLUSTER_HOME (default <repo>/.cluster). docs/cluster.md.
 */
const usage = `usage: npm run cluster -- start [--nodes N] [--shards S] [--port P] [--json]
       npm run cluster -- stop
       npm run cluster -- status [--json]
  --nodes   nodes to start (default ${DEFAULTS.nodes}), on consecutive ports from --port
  --shards  shards of the cluster (default ${DEFAULTS.shards}; fixed once the cluster exists)
  --port    the first node's HTTP port (default ${DEFAULTS.port})
  --json    print { nodes: [{ id, url, pid }], kafka, mqtt, home }
Everything (data, logs, Kafka, Mosquitto) lives under CLUSTER_HOME (default .cluster in the repository).
Every node gets the rest of this environment (e.g. FLEET_SEED=100 for demo vehicles).`;

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function whole(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new ClusterUsageError(`--${name} must be a whole number (got ${JSON.stringify(value)})`);
  return Number(value);
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandLine('cluster', usage, {
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: { nodes: { type: 'string' }, shards: { type: 'string' }, port: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  const home = resolve(process.env.CLUSTER_HOME ?? join(repoRoot, '.cluster'));
  const [command, ...extra] = positionals;
  if (extra.length > 0) throw new ClusterUsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const say = values.json ? () => {} : (line: string) => console.log(line);
  switch (command) {
    case 'start': {
      const state = await startCluster({
        home,
        ...(values.nodes !== undefined && { nodes: whole('nodes', values.nodes)! }),
        ...(values.shards !== undefined && { shards: whole('shards', values.shards)! }),
        ...(values.port !== undefined && { port: whole('port', values.port)! }),
        // --json: stdout carries the JSON document only.
        ...(!values.json && { log: say }),
        ...(process.env.KAFKA_LIB && { kafkaLib: process.env.KAFKA_LIB }),
      });
      if (values.json) console.log(JSON.stringify(summaryOf(state)));
      else {
        console.log(`cluster ${state.name}: ${state.nodes.length} nodes, ${state.shards} shards, every shard serving (home ${state.home})`);
        for (const node of state.nodes) console.log(`  ${node.id}  ${node.url}  pid ${node.pid}`);
        console.log(`  kafka ${state.kafka}   mqtt ${state.mqtt}   logs ${join(state.home, 'logs')}`);
        console.log(`  operator token: FLEET_JWT_SECRET=$(node -p "require('${join(state.home, 'cluster.json')}').jwtSecret") npm run token -- --sub ops --role operator`);
      }
      return 0;
    }
    case 'stop': {
      if (values.nodes !== undefined || values.shards !== undefined || values.port !== undefined) throw new ClusterUsageError('stop takes no --nodes, --shards or --port');
      const stopped = await stopCluster(home, say);
      if (!stopped) say(`no cluster in ${home}`);
      return 0;
    }
    case 'status': {
      const status = await clusterStatus(home);
      if (!status) {
        if (values.json) console.log(JSON.stringify(null));
        else console.log(`no cluster in ${home}`);
        return 3;
      }
      const { state, nodes } = status;
      if (values.json) console.log(JSON.stringify({ ...summaryOf(state), nodes: nodes.map(({ id, url, pid, running, serving }) => ({ id, url, pid, running, serving })) }));
      else {
        console.log(`cluster ${state.name}: ${state.shards} shards (home ${state.home}; kafka ${state.kafka}; mqtt ${state.mqtt})`);
        for (const node of nodes) console.log(`  ${node.id}  ${node.url}  ${node.running ? `running (pid ${node.pid}), serving shards ${node.serving.join(', ') || 'none'}` : 'stopped'}`);
      }
      return nodes.every((node) => node.running) ? 0 : 3;
    }
    case undefined:
      throw new ClusterUsageError('name a command: start, stop or status');
    default:
      throw new ClusterUsageError(`unknown command ${JSON.stringify(command)}: start, stop or status`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    console.error(error instanceof ClusterUsageError ? badArgumentLine('cluster', message) : `cluster: ${message}`);
    process.exit(error instanceof ClusterUsageError ? BAD_ARGUMENTS : 1);
  },
);
