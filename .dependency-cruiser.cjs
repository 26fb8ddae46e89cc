/**
 * The house rule (docs/architecture.md, "Floors"): every folder imports only floors below it, nothing
 * forms a cycle, and nact is known to the actor kernel alone. `npm run lint` runs this; a climbing
 * import fails CI.
 */
const PROJECT = '^(actors|adapters|api|persistence|runtime|server|simulator|traces|scripts|bench|test|docs)/';
const only = (name, from, allowed, comment) => ({
  name,
  severity: 'error',
  comment,
  from: { path: from },
  to: { path: PROJECT, pathNot: allowed },
});

module.exports = {
  forbidden: [
    only('ground-imports-nothing', '^runtime/ground/', '^runtime/ground/', 'The ground floor (logger, clock, closers, metrics, trace context) imports nothing of the project.'),
    only('kernel-knows-no-domain', '^runtime/kernel/', '^runtime/(ground|kernel)/', 'The actor kernel is generic: what it needs from above comes in as parameters and ports.'),
    only('contract-on-ground', '^actors/contract/', '^(runtime/ground|actors/contract)/', 'The contract (views, rejections, event catalog, device protocol) is written once, on the ground floor only.'),
    only('domain-below-adapters', '^actors/', '^(runtime/(ground|kernel)|actors)/', 'The domain (deciders, workflows, actor shells) knows the kernel and the contract, never storage, brokers or HTTP.'),
    only('adapters-below-edges', '^(persistence|adapters)/', '^(runtime/(ground|kernel)|actors|persistence|adapters)/', 'Adapters (SQLite, MQTT, Kafka, telemetry) implement the domain\'s ports; they never reach the edges or the composition root.'),
    only('traces-below-api', '^traces/', '^(runtime/(ground|kernel)|actors|traces)/', 'Trace presentation (diagram, stepper, replay) reads recorded steps and folds journals with the domain\'s evolve.'),
    only('api-on-contract', '^api/', '^(runtime/ground|actors/contract|traces|api|docs)/', 'The HTTP edge speaks the contract and its own ports; the composition root hands it everything else.'),
    only('simulator-on-contract', '^simulator/', '^(runtime/ground|actors/contract|simulator)/', 'The simulator is an outside client: the contract and the ground floor only.'),
    {
      name: 'nact-only-in-the-kernel',
      severity: 'error',
      comment: 'nact 7.6 is unmaintained: the rest of the code depends on the kernel, not on nact.',
      from: { pathNot: '^(runtime/kernel|test|bench)/' },
      to: { path: 'node_modules/nact/' },
    },
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
