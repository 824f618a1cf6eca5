import { describe, expect, it } from 'vitest';
import { createLogger } from './log.ts';

describe('createLogger', () => {
  it('writes one JSON object per line, with level and message, above the minimum level only', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => lines.push(l) });
    log.debug('hidden');
    log.info('request', { request_id: 'r1', status: 200 });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 'info', msg: 'request', request_id: 'r1', status: 200 });
    expect(JSON.parse(lines[0]).ts).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('redacts secret-looking fields and never writes tensor data', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    log.warn('x', { hmac_secret: 'abc', signature: 'v1=00', latents: new Int16Array([1, 2, 3]) });
    const entry = JSON.parse(lines[0]);
    expect(entry).toMatchObject({ hmac_secret: '[redacted]', signature: '[redacted]', latents: '[Int16Array of 6 bytes]' });
  });

  it('writes errors with their name, message and code', () => {
    const lines: string[] = [];
    createLogger({ level: 'info', write: (l) => lines.push(l) }).error('boom', { error: Object.assign(new Error('bad'), { code: 'E1' }) });
    expect(JSON.parse(lines[0]).error).toMatchObject({ name: 'Error', message: 'bad', code: 'E1' });
  });
});
