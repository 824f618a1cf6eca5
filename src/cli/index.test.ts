import { describe, expect, it } from 'vitest';
import { EXIT_USAGE, runCli, type CliIo } from './index.ts';

function captureIo(): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: { write: (text: string) => (io.out += text) },
    stderr: { write: (text: string) => (io.err += text) },
  };
  return io;
}

describe('runCli', () => {
  it('prints the version from package.json and exits 0', async () => {
    const io = captureIo();
    expect(await runCli(['--version'], io)).toBe(0);
    expect(io.out).toMatch(/^\d+\.\d+\.\d+\S*\n$/);
  });

  it('prints usage on stdout for --help and exits 0', async () => {
    const io = captureIo();
    expect(await runCli(['--help'], io)).toBe(0);
    expect(io.out).toContain('Usage: latentsight');
    expect(io.err).toBe('');
  });

  it('rejects an unknown command on stderr with exit code 2', async () => {
    const io = captureIo();
    expect(await runCli(['frobnicate'], io)).toBe(EXIT_USAGE);
    expect(io.err).toContain("unknown command 'frobnicate'");
    expect(io.out).toBe('');
  });

  it('prints usage on stderr with exit code 2 when no command is given', async () => {
    const io = captureIo();
    expect(await runCli([], io)).toBe(EXIT_USAGE);
    expect(io.err).toContain('Usage: latentsight');
  });
});
