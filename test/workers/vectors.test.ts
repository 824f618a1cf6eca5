// The golden vectors decoded inside workerd: the edge must get exactly the latents that Node and the
// Python reference get from the same bytes (integer-only decoding makes that hold by construction).
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { parseBitstream } from '../../src/bitstream/index.ts';
import { decodeLatents, encodeLatents, parseTables } from '../../src/entropy/index.ts';

const files = (env as unknown as { TEST_VECTORS: Record<string, string> }).TEST_VECTORS;
const bytes = (name: string) => Uint8Array.from(atob(files[name]), (c) => c.charCodeAt(0));
const index = JSON.parse(new TextDecoder().decode(bytes('vectors.json'))) as {
  cases: { name: string; tables: string; table_hash: string; model_id: string; stream: string; latents: string; lanes: number }[];
};

describe('golden vectors inside workerd', () => {
  it('are all present', () => {
    expect(index.cases.length).toBeGreaterThanOrEqual(8);
  });

  it.each(index.cases)('$name decodes to the stored latents and re-encodes to the same payload', async (c) => {
    const tableBytes = bytes(c.tables);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', tableBytes));
    const hash = [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
    expect(hash).toBe(c.table_hash);
    const tables = parseTables(tableBytes);
    const stream = parseBitstream(bytes(c.stream), { models: (id) => (id === c.model_id ? { tableHash: hash } : undefined) });
    const { channels, latentHeight: height, latentWidth: width } = stream.header;
    const raw = bytes(c.latents);
    const expected = new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
    const latents = decodeLatents(stream.latents, { channels, height, width }, tables);
    expect(latents).toEqual(expected);
    expect(encodeLatents(latents, { channels, height, width }, tables, { lanes: c.lanes })).toEqual(stream.latents);
  });
});
