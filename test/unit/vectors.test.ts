// Golden vectors written by the Python reference (training/reference/gen_vectors.py): the
// TypeScript reader, decoder, encoder and writer must agree with it byte for byte.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc32c, parseBitstream, writeBitstream } from '../../src/bitstream/index.ts';
import { decodeLatents, encodeLatents, parseTables } from '../../src/entropy/index.ts';

const dir = new URL('../vectors/', import.meta.url);
const read = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
const index = JSON.parse(readFileSync(new URL('vectors.json', dir), 'utf8')) as {
  crc32c: { input: string; crc: number }[];
  cases: {
    name: string; tables: string; table_hash: string; model_id: string; width: number; height: number;
    stride: number; shape: [number, number, number]; lanes: number; stream: string; latents: string;
    extra_parts: { tag: string; hex: string }[];
  }[];
};

describe('golden vectors from the Python reference', () => {
  it('include every feature the format has', () => {
    expect(index.cases.length).toBeGreaterThanOrEqual(8);
    expect(new Set(index.cases.map((c) => c.lanes))).toEqual(new Set([1, 2, 3, 4, 8]));
  });

  it.each(index.crc32c)('crc32c($input) is $crc', ({ input, crc }) => {
    expect(crc32c(new TextEncoder().encode(input))).toBe(crc);
  });

  it.each(index.cases)('$name: decodes to the stored latents and re-encodes to the same bytes', (c) => {
    const tableBytes = read(c.tables);
    expect(createHash('sha256').update(tableBytes).digest('hex').slice(0, 16)).toBe(c.table_hash);
    const tables = parseTables(tableBytes);
    const stream = read(c.stream);
    const raw = read(c.latents);
    const expected = new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);

    const parsed = parseBitstream(stream, { models: (id) => (id === c.model_id ? { tableHash: c.table_hash } : undefined) });
    const [channels, height, width] = c.shape;
    expect([parsed.header.channels, parsed.header.latentHeight, parsed.header.latentWidth]).toEqual(c.shape);
    expect(decodeLatents(parsed.latents, { channels, height, width }, tables)).toEqual(expected);

    const body = encodeLatents(expected, { channels, height, width }, tables, { lanes: c.lanes });
    expect(body).toEqual(parsed.latents);
    const rewritten = writeBitstream({
      width: c.width, height: c.height, stride: c.stride, channels, modelId: c.model_id, tableHash: c.table_hash,
      latents: body,
      extraParts: c.extra_parts.map((p) => ({ tag: p.tag, body: Uint8Array.from(Buffer.from(p.hex, 'hex')) })),
    });
    expect(rewritten).toEqual(stream);
  });
});

describe('the vector generator', () => {
  it('is deterministic: rerunning the Python reference rewrites the committed vectors byte for byte', () => {
    const out = mkdtempSync(join(tmpdir(), 'vectors-'));
    try {
      execFileSync('python3', [new URL('../../training/reference/gen_vectors.py', import.meta.url).pathname, '--out', out]);
      const files = readdirSync(out).sort();
      expect(files).toEqual(readdirSync(dir).sort());
      for (const f of files) expect(new Uint8Array(readFileSync(join(out, f))), f).toEqual(read(f));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
