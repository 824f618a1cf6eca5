import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBitstream, writeBitstream } from '../../src/bitstream/index.ts';
import { type CliIo, runCli } from '../../src/cli/index.ts';
import { decodeBitstreamLatents, encodeImage, loadCodecFromDir, readImageFile } from '../../src/codec/node.ts';
import { encodeLatents } from '../../src/entropy/index.ts';

const crop = fileURLToPath(new URL('../fixtures/kodim23-64x48.png', import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = { out: '', err: '' };
  const sink: CliIo = { stdout: { write: (t: string) => (io.out += t) }, stderr: { write: (t: string) => (io.err += t) } };
  const code = await runCli(args, sink);
  return { code, ...io };
}

let dir: string;
let stream: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latentsight-cli-'));
  stream = join(dir, 'crop.lsb');
  expect((await cli('encode', crop, '-o', stream)).code).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('latentsight encode, decode and inspect', () => {
  it('encodes an image and reports its size in bits per pixel', async () => {
    const r = await cli('encode', crop, '-o', join(dir, 'again.lsb'), '--codec', 'ls-f8-q3');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/again\.lsb: \d+ bytes, [\d.]+ bpp, 64x48, codec ls-f8-q3/);
    expect(await readFile(join(dir, 'again.lsb'))).toEqual(await readFile(stream));
  });

  it('refuses a decode-only codec with CODEC_DECODE_ONLY and exit 5, naming its successor, and writes nothing', async () => {
    const out = join(dir, 'retired.lsb');
    const r = await cli('encode', crop, '-o', out, '--codec', 'ls-f8-q2');
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/CODEC_DECODE_ONLY: Codec 'ls-f8-q2' is decode-only .*'ls-f8-q3'/);
    await expect(readFile(out)).rejects.toMatchObject({ code: 'ENOENT' });
    const folder = await cli('encode', dirname(crop), '-o', join(dir, 'retired'), '--codec', 'ls-f8-q2');
    expect(folder.code).toBe(5);
    expect(folder.err).toMatch(/CODEC_DECODE_ONLY/);
  });

  it('decodes a bitstream to a PNG of the original size', async () => {
    const png = join(dir, 'crop.png');
    expect(await cli('decode', stream, '-o', png)).toMatchObject({ code: 0, err: '' });
    const image = await readImageFile(png);
    expect([image.width, image.height]).toEqual([64, 48]);
  });

  it('prints the header, bpp and latent statistics as JSON', async () => {
    const r = await cli('inspect', stream);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.header).toMatchObject({ width: 64, height: 48, stride: 8, channels: 64, modelId: 'ls-f8-q3' });
    expect(report.bpp).toBeCloseTo((report.bytes * 8) / (64 * 48));
    expect(report.codec).toMatchObject({ id: 'ls-f8-q3', streamTables: 'current' });
    expect(report.latents.elements).toBe(64 * 6 * 8);
  });

  it("decodes and inspects a stream coded with the codec's earlier tables (legacy_tables)", async () => {
    // A stream stored by ls-f8-q2, the codec that has legacy tables (decode-only now).
    const codec = await loadCodecFromDir(undefined, 'ls-f8-q2', { threads: 1 });
    const [hash] = codec.legacyTableHashes;
    const q2stream = join(dir, 'q2.lsb');
    await writeFile(q2stream, await encodeImage(await readImageFile(crop), codec, { allowDecodeOnly: true }));
    const { header, latents } = decodeBitstreamLatents(await readFile(q2stream), codec);
    const shape = { channels: header.channels, height: header.latentHeight, width: header.latentWidth };
    const old = join(dir, 'legacy.lsb');
    await writeFile(old, writeBitstream({ ...header, tableHash: hash, latents: encodeLatents(latents, shape, codec.tablesFor(hash)!) }));
    await codec.release();

    const inspected = JSON.parse((await cli('inspect', old)).out);
    expect(inspected.header.tableHash).toBe(hash);
    expect(inspected.codec.streamTables).toMatch(/^legacy \d+\.\d+\.\d+$/);
    expect(inspected.latents).toEqual(JSON.parse((await cli('inspect', q2stream)).out).latents);
    const [png, reference] = [join(dir, 'legacy.png'), join(dir, 'current.png')];
    expect(await cli('decode', old, '-o', png)).toMatchObject({ code: 0, err: '' });
    expect(await cli('decode', q2stream, '-o', reference)).toMatchObject({ code: 0, err: '' });
    expect(await readFile(png)).toEqual(await readFile(reference));
  });

  it.each(['encode', 'decode', 'inspect'])('prints help for %s on stdout and exits 0', async (command) => {
    const r = await cli(command, '--help');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain(`Usage: latentsight ${command}`);
  });
});

describe('latentsight errors', () => {
  it('exits 3 with IMAGE_UNREADABLE for a file that is not an image', async () => {
    const text = join(dir, 'notes.png');
    await writeFile(text, 'not an image');
    const r = await cli('encode', text, '-o', join(dir, 'x.lsb'));
    expect(r.code).toBe(3);
    expect(r.err).toContain('IMAGE_UNREADABLE');
  });

  it('exits 3 with FILE_UNREADABLE for a bitstream that does not exist', async () => {
    const r = await cli('decode', join(dir, 'missing.lsb'), '-o', join(dir, 'x.png'));
    expect(r.code).toBe(3);
    expect(r.err).toContain('FILE_UNREADABLE');
  });

  it('exits 5 with UNKNOWN_CODEC and the known ids for an unknown --codec', async () => {
    const r = await cli('encode', crop, '-o', join(dir, 'x.lsb'), '--codec', 'ls-nope');
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/UNKNOWN_CODEC: .*ls-nope.*known: .*ls-f8-q2/);
  });

  it('exits 5 on decode, and inspect prints the header alone, for a stream naming a codec not in the manifest', async () => {
    const { header, latents } = parseBitstream(new Uint8Array(await readFile(stream)));
    const foreign = join(dir, 'foreign.lsb');
    await writeFile(foreign, writeBitstream({ ...header, modelId: 'someone-elses', latents }));
    const decoded = await cli('decode', foreign, '-o', join(dir, 'x.png'));
    expect(decoded.code).toBe(5);
    expect(decoded.err).toContain("UNKNOWN_CODEC: No codec 'someone-elses'");
    const inspected = await cli('inspect', foreign);
    expect(inspected.code).toBe(0);
    expect(JSON.parse(inspected.out)).toMatchObject({ header: { modelId: 'someone-elses' }, codec: null, latents: null });
  });

  it('exits 4 with CHECKSUM_MISMATCH for a corrupted bitstream', async () => {
    const bytes = new Uint8Array(await readFile(stream));
    bytes[bytes.length - 10] ^= 0xff;
    const bad = join(dir, 'corrupt.lsb');
    await writeFile(bad, bytes);
    const r = await cli('decode', bad, '-o', join(dir, 'x.png'));
    expect(r.code).toBe(4);
    expect(r.err).toContain('CHECKSUM_MISMATCH');
  });

  it('exits 4 with BAD_MAGIC for a file that is not a bitstream, and inspect does too', async () => {
    for (const args of [['decode', crop, '-o', join(dir, 'x.png')], ['inspect', crop]]) {
      const r = await cli(...args);
      expect(r.code, args[0]).toBe(4);
      expect(r.err).toContain('BAD_MAGIC');
    }
  });

  it('exits 4 with TRUNCATED for a bitstream cut short', async () => {
    const cut = join(dir, 'cut.lsb');
    await writeFile(cut, (await readFile(stream)).subarray(0, 60));
    const r = await cli('decode', cut, '-o', join(dir, 'x.png'));
    expect(r.code).toBe(4);
    expect(r.err).toContain('TRUNCATED');
  });

  it('exits 6 with INVALID_MANIFEST when --models holds no manifest', async () => {
    const r = await cli('encode', crop, '-o', join(dir, 'x.lsb'), '--models', dir);
    expect(r.code).toBe(6);
    expect(r.err).toContain('INVALID_MANIFEST');
  });

  it('exits 2 for a missing -o or an unknown option', async () => {
    expect((await cli('encode', crop)).code).toBe(2);
    const r = await cli('decode', stream, '--frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toContain("latentsight decode --help");
  });
});
