import { describe, expect, it } from 'vitest';
import { describeListenError, ListenAddressError, listenOn } from '../../server/listen-errors.js';

const http = { port: 'PORT', host: 'HOST' };
const failure = (code: string) => Object.assign(new Error(`listen ${code}`), { code });

describe('listen errors', () => {
  it.each([
    ['EADDRINUSE', 'PORT', 'PORT=3000 is in use: another process listens on 127.0.0.1:3000. Stop it, or start with another PORT (0 picks a free port).'],
    ['EACCES', 'PORT', 'PORT=3000 needs privileges this process does not have (ports below 1024). Choose a port above 1023.'],
    ['EADDRNOTAVAIL', 'HOST', 'HOST=127.0.0.1 is not an address of this machine. Use one of its addresses, 127.0.0.1 or 0.0.0.0.'],
  ])('%s names %s', (code, variable, message) => {
    const error = describeListenError(failure(code), http, '127.0.0.1', 3000);
    expect(error).toBeInstanceOf(ListenAddressError);
    expect(error).toMatchObject({ variable, message });
  });

  it('brackets an IPv6 host', () => {
    expect(describeListenError(failure('EADDRINUSE'), http, '::1', 3000)?.message).toContain('listens on [::1]:3000.');
  });

  it('passes any other failure through unchanged', async () => {
    const other = failure('ECONNRESET');
    await expect(listenOn(http, '127.0.0.1', 3000, () => Promise.reject(other))).rejects.toBe(other);
    expect(describeListenError(failure('EADDRNOTAVAIL'), { port: 'MQTT_PORT' }, '127.0.0.1', 1884)).toBeNull();
    await expect(listenOn(http, '127.0.0.1', 3000, async () => 'listening')).resolves.toBe('listening');
  });
});
