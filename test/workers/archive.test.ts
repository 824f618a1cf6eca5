import { describe, expect, it } from 'vitest';
import { bitstreamKey, storeBitstream } from '../../functions/edge/archive.ts';
import type { BitstreamHeader } from '../../src/bitstream/index.ts';

/** An R2 bucket in memory that counts its operations. */
function countingBucket(existing: string[] = []) {
  const objects = new Set(existing);
  const calls = { head: 0, put: 0 };
  const bucket = {
    async head(key: string) {
      calls.head++;
      return objects.has(key) ? { key } : null;
    },
    async put(key: string) {
      calls.put++;
      objects.add(key);
      return { key };
    },
  } as unknown as R2Bucket;
  return { bucket, calls, objects };
}

const header = { modelId: 'ls-f8-q2', tableHash: '0123456789abcdef', width: 64, height: 48 } as BitstreamHeader;
const bytes = new Uint8Array([1, 2, 3]);
const digest = (n: number) => n.toString(16).padStart(64, '0');

describe('storeBitstream', () => {
  it('writes a new bitstream once, then answers repeats without a HEAD or a write', async () => {
    const { bucket, calls, objects } = countingBucket();

    expect(await storeBitstream(bucket, 'acme', digest(1), bytes, header, 'req-1')).toBe(true);
    expect(await storeBitstream(bucket, 'acme', digest(1), bytes, header, 'req-2')).toBe(false);
    expect(await storeBitstream(bucket, 'acme', digest(1), bytes, header, 'req-3')).toBe(false);

    expect(calls).toEqual({ head: 1, put: 1 });
    expect([...objects]).toEqual([bitstreamKey('acme', digest(1))]);
  });

  it('does not rewrite what another isolate stored, and remembers it', async () => {
    const { bucket, calls } = countingBucket([bitstreamKey('other', digest(2))]);

    expect(await storeBitstream(bucket, 'other', digest(2), bytes, header, 'req-1')).toBe(false);
    expect(await storeBitstream(bucket, 'other', digest(2), bytes, header, 'req-2')).toBe(false);

    expect(calls).toEqual({ head: 1, put: 0 });
  });

  it('keeps tenants apart: the same bytes are stored for each tenant that sends them', async () => {
    const { bucket, calls } = countingBucket();

    expect(await storeBitstream(bucket, 'tenant-a', digest(3), bytes, header, 'req-1')).toBe(true);
    expect(await storeBitstream(bucket, 'tenant-b', digest(3), bytes, header, 'req-2')).toBe(true);

    expect(calls).toEqual({ head: 2, put: 2 });
  });
});
