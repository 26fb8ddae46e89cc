import { describe, expect, it } from 'vitest';
import { deadStart, processStart } from '../../server/cluster/peer-watch.js';

describe('when a lost channel proves a peer\'s process dead (server/cluster/peer-watch.ts)', () => {
  const lost = processStart('n2', 'aaaa');

  it('dead: nothing listens at its address any more (connection refused)', () => {
    expect(deadStart(lost, { opened: false, refused: true })).toBe(lost);
  });

  it('dead: another start of the same node answers there (it was restarted)', () => {
    expect(deadStart(lost, { opened: true, start: processStart('n2', 'bbbb') })).toBe(lost);
  });

  it('not known dead: the same start answers again (the socket dropped, the process lives)', () => {
    expect(deadStart(lost, { opened: true, start: lost })).toBeNull();
  });

  it('not known dead: the address reaches another node, or a node that names no start', () => {
    expect(deadStart(lost, { opened: true, start: processStart('n3', 'cccc') })).toBeNull();
    expect(deadStart(lost, { opened: true, start: null })).toBeNull();
  });

  it('not known dead: the new channel failed some other way (a timeout, a paused or unreachable host, a refused upgrade)', () => {
    expect(deadStart(lost, { opened: false, refused: false })).toBeNull();
  });

  it('names its node: a node id holds no "/", so the node is what comes before the last one', () => {
    expect(processStart('node-1.eu', 'x')).toBe('node-1.eu/x');
    expect(deadStart(processStart('node-1.eu', 'x'), { opened: true, start: processStart('node-1.eu', 'y') })).toBe('node-1.eu/x');
  });
});
