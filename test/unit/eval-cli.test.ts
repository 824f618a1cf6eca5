import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/index.ts';

const fixtures = new URL('../fixtures/', import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), 'eval-cli-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
// The two small crops only, so the test stays quick.
const images = join(out, 'images');
mkdirSync(images);
for (const name of ['kodim15-37x21.png', 'kodim23-64x48.png']) copyFileSync(join(fixtures, name), join(images, name));

function io() {
  const captured = { out: '', err: '' };
  return {
    captured,
    stdout: { write: (s: string) => (captured.out += s) },
    stderr: { write: (s: string) => (captured.err += s) },
  };
}

describe('latentsight eval rd', () => {
  it('measures our codec and a reference sweep on real files and writes a plot', async () => {
    const cli = io();
    const plot = join(out, 'rd.svg');
    const code = await runCli(['eval', 'rd', '--images', images, '--references', 'jpeg', '--plot', plot, '--json'], cli);
    expect(cli.captured.err).toContain('[2/2]');
    expect(code).toBe(0);
    const report = JSON.parse(cli.captured.out);
    expect(report.images).toBe(2);
    const shipped = (JSON.parse(readFileSync(new URL('../../models/manifest.json', import.meta.url), 'utf8')) as { models: { id: string; kind: string }[] }).models;
    expect(Object.keys(report.codecs)).toEqual([...shipped.filter((m) => m.kind === 'codec').map((m) => m.id), 'jpeg']);
    expect(report.codecs.jpeg).toHaveLength(11);
    const [ours] = report.codecs['ls-f8-q2'];
    expect(ours.bpp).toBeGreaterThan(0);
    expect(ours.psnr).toBeGreaterThan(10);
    // JPEG's curve rises with bits: more bits, higher PSNR.
    const jpeg = report.codecs.jpeg as { bpp: number; psnr: number }[];
    for (let i = 1; i < jpeg.length; i++) expect(jpeg[i].bpp).toBeGreaterThan(jpeg[i - 1].bpp);
    expect(jpeg.at(-1)!.psnr).toBeGreaterThan(jpeg[0].psnr);
    expect(report.savings['ls-f8-q2']).toHaveProperty('jpeg');
    expect(readFileSync(plot, 'utf8')).toMatch(/^<svg[\s\S]*ls-f8-q2[\s\S]*<\/svg>$/);
  }, 60_000);

  it('rejects an unknown reference codec and a missing folder with usage and file errors', async () => {
    const a = io();
    expect(await runCli(['eval', 'rd', '--images', fixtures, '--references', 'gif'], a)).toBe(2);
    expect(a.captured.err).toContain("unknown reference codec 'gif'");
    const b = io();
    expect(await runCli(['eval', 'rd', '--images', join(out, 'nope')], b)).toBe(3);
    expect(b.captured.err).toContain('ENOENT');
    const c = io();
    expect(await runCli(['eval', 'nonsense'], c)).toBe(2);
  });
});
