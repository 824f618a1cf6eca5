/**
 * The CLI's batch mode and `analyze` command, run in-process through `runCli`. `analyze` talks real
 * HTTP to a local node:http server standing in for the edge (the real edge is exercised by the e2e
 * tests; here the point is what the CLI sends, prints and exits with).
 */
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBitstream } from '../../src/bitstream/index.ts';
import { type CliIo, runCli } from '../../src/cli/index.ts';
import { progressBar } from '../../src/cli/progress.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = { out: '', err: '' };
  const sink: CliIo = { stdout: { write: (t: string) => (io.out += t) }, stderr: { write: (t: string) => (io.err += t) } };
  const code = await runCli(args, sink);
  return { code, ...io };
}

let dir: string;
let server: Server;
let endpoint: string;
const received: { path: string; auth: string | undefined; bytes: number }[] = [];
/** What the stand-in answers: 'ok', or a problem status. */
let mode: 'ok' | 401 | 503 = 'ok';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latentsight-batch-'));
  await copyFile(join(FIXTURES, 'kodim23-64x48.png'), join(dir, 'a.png'));
  await copyFile(join(FIXTURES, 'kodim15-37x21.png'), join(dir, 'b.png'));
  await writeFile(join(dir, 'broken.png'), 'not an image');
  await writeFile(join(dir, 'notes.txt'), 'ignored: not an image');
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    received.push({ path: req.url!, auth: req.headers.authorization, bytes: body.length });
    if (mode !== 'ok') {
      res.writeHead(mode, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'https://latentsight.dev/problems/x', title: 'No', status: mode, detail: 'refused here', code: mode === 401 ? 'INVALID_API_KEY' : 'ORIGIN_UNAVAILABLE' }));
      return;
    }
    // Answers from the stream itself, so that the printed sizes prove which bytes arrived.
    const { header } = parseBitstream(new Uint8Array(body));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        request_id: 'req-1',
        codec: header.modelId,
        bpp: Number(((8 * body.length) / (header.width * header.height)).toFixed(4)),
        image: { width: header.width, height: header.height },
        results: {
          classify: { top: [{ label: `label-${header.width}`, id: 'n1', score: 0.75 }, { label: 'other', id: 'n2', score: 0.1 }] },
          segment: { width: header.width, height: header.height, classes: [{ index: 0, id: 'sky', name: 'Sky', color: '#8080ff' }], mask: '', fractions: { sky: 0.6 } },
        },
        models: { codec: { id: header.modelId, version: '1' }, classify: { id: 'cls', version: '1' }, segment: { id: 'seg', version: '1' } },
        cache: 'miss',
        timings_ms: { total: 1 },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

describe('latentsight encode DIR', () => {
  it('encodes every image into OUTDIR, lists the broken one, prints the summary and exits 9', async () => {
    const out = join(dir, 'out');
    const r = await cli('encode', dir, '-o', out, '--concurrency', '2');
    expect(r.code).toBe(9);
    expect((await readdir(out)).sort()).toEqual(['a.lsb', 'b.lsb']);
    // The same bytes as encoding the file alone.
    expect((await cli('encode', join(dir, 'a.png'), '-o', join(dir, 'single.lsb'))).code).toBe(0);
    expect(await readFile(join(out, 'a.lsb'))).toEqual(await readFile(join(dir, 'single.lsb')));
    expect(r.out).toMatch(/^file\s+size\s+original\s+bitstream\s+bpp\s+PSNR dB\s+of original\s+JPEG same PSNR\s+of JPEG$/m);
    expect(r.out).toMatch(/^a\.png\s+64x48\s/m);
    expect(r.out).toMatch(/^broken\.png \(failed: IMAGE_UNREADABLE\)/m);
    expect(r.out).toMatch(/^total\s+2\/3\s/m);
    expect(r.err).toContain('broken.png: IMAGE_UNREADABLE');
    // stderr is no terminal here: no progress bar.
    expect(r.err).not.toContain('\r');
  });

  it('prints JSON with the JPEG of equal PSNR per image', async () => {
    await rm(join(dir, 'broken.png'));
    try {
      const r = await cli('encode', dir, '-o', join(dir, 'out2'), '--json');
      expect(r.code).toBe(0);
      const report = JSON.parse(r.out) as { items: { input: string; bytes: number; psnr: number; jpegBytes: number | null; jpegPsnr: number | null }[] };
      expect(report.items).toHaveLength(2);
      for (const item of report.items) {
        expect(item.bytes).toBe((await readFile(join(dir, 'out2', item.input.endsWith('a.png') ? 'a.lsb' : 'b.lsb'))).length);
        if (item.jpegBytes !== null) expect(item.jpegPsnr!).toBeGreaterThanOrEqual(item.psnr);
      }
    } finally {
      await writeFile(join(dir, 'broken.png'), 'not an image');
    }
  });

  it('rejects a bad --concurrency as a usage error', async () => {
    expect(await cli('encode', dir, '-o', join(dir, 'x'), '--concurrency', '0')).toMatchObject({ code: 2 });
  });
});

describe('latentsight analyze', () => {
  it('sends an image encoded here and prints its labels and class shares', async () => {
    mode = 'ok';
    received.length = 0;
    const r = await cli('analyze', join(dir, 'a.png'), '--endpoint', endpoint, '--key', 'ls_cli_test_key', '--tasks', 'classify,segment');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ path: '/v1/analyze?tasks=classify%2Csegment', auth: 'Bearer ls_cli_test_key' });
    expect(r.out).toContain(`${received[0].bytes} bytes`);
    expect(r.out).toMatch(/75\.0%\s+label-64 \(n1\)/);
    expect(r.out).toMatch(/60\.0%\s+Sky/);
  });

  it('sends a bitstream file as it is and prints the JSON with --json', async () => {
    const stream = join(dir, 'out', 'b.lsb');
    const r = await cli('analyze', stream, '--endpoint', endpoint, '--key', 'ls_cli_test_key', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ image: { width: 37, height: 21 }, results: { classify: { top: [{ label: 'label-37' }, { label: 'other' }] } } });
    expect(received.at(-1)!.bytes).toBe((await readFile(stream)).length);
  });

  it('analyses a folder of images and bitstreams into a table of sizes and labels', async () => {
    const folder = join(dir, 'mixed');
    await cli('encode', join(dir, 'b.png'), '-o', join(dir, 'b-stream.lsb'));
    await rm(folder, { recursive: true, force: true });
    await mkdir(folder);
    await copyFile(join(dir, 'a.png'), join(folder, 'a.png'));
    await copyFile(join(dir, 'b-stream.lsb'), join(folder, 'b.lsb'));
    const r = await cli('analyze', folder, '--endpoint', endpoint, '--key', 'ls_cli_test_key', '--concurrency', '2');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^file\s+bitstream\s+bpp\s+of original\s+JPEG same PSNR\s+of JPEG\s+top label\s+largest segment$/m);
    expect(r.out).toMatch(/^a\.png\s.*label-64 75%\s+Sky 60%$/m);
    expect(r.out).toMatch(/^b\.lsb\s.*label-37 75%\s+Sky 60%$/m);
    expect(r.out).toMatch(/^total \(2\/2 ok\)/m);
  });

  it('exits 7 when the API refuses the key and 8 when it stays unavailable', async () => {
    try {
      mode = 401;
      const refused = await cli('analyze', join(dir, 'out', 'b.lsb'), '--endpoint', endpoint, '--key', 'ls_wrong_key');
      expect(refused.code).toBe(7);
      expect(refused.err).toContain('INVALID_API_KEY: No: refused here');
      mode = 503;
      const down = await cli('analyze', join(dir, 'out', 'b.lsb'), '--endpoint', endpoint, '--key', 'ls_cli_test_key', '--retries', '0');
      expect(down.code).toBe(8);
      expect(down.err).toContain('ORIGIN_UNAVAILABLE');
    } finally {
      mode = 'ok';
    }
  });

  it('needs an endpoint and a key (usage error, exit 2)', async () => {
    const saved = process.env.LATENTSIGHT_API_KEY;
    delete process.env.LATENTSIGHT_API_KEY;
    try {
      const r = await cli('analyze', join(dir, 'a.png'), '--endpoint', endpoint);
      expect(r.code).toBe(2);
      expect(r.err).toContain('missing --key');
    } finally {
      if (saved !== undefined) process.env.LATENTSIGHT_API_KEY = saved;
    }
  });

  it('documents itself, its exit codes included', async () => {
    const r = await cli('analyze', '--help');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain('Usage: latentsight analyze');
    const top = await cli('--help');
    expect(top.out).toMatch(/7 {2}the API refused/);
    expect(top.out).toMatch(/8 {2}the API was unreachable/);
  });
});

describe('progressBar', () => {
  it('draws on a terminal and stays silent otherwise', () => {
    let tty = '';
    const bar = progressBar({ isTTY: true, columns: 100, write: (t: string) => (tty += t) }, 2, 'encode');
    bar.tick('a.png');
    bar.tick('b.png', true);
    bar.done();
    expect(tty).toContain('2/2, 1 failed b.png');
    expect(tty).toContain('\r');
    let piped = '';
    const quiet = progressBar({ isTTY: false, write: (t: string) => (piped += t) }, 2, 'encode');
    quiet.tick('a.png');
    quiet.done();
    expect(piped).toBe('');
  });
});
